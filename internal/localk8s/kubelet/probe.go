package kubelet

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxProbeOutput bounds how much of an exec probe's output or an HTTP
// probe's body is read, as the kubelet bounds it (10 KiB).
const maxProbeOutput = 10 << 10

type probeKind string

const (
	startupProbe   probeKind = "Startup"
	readinessProbe probeKind = "Readiness"
	livenessProbe  probeKind = "Liveness"
)

// startProbes starts the probe workers of one process; they stop when ctx
// ends. A container without a startupProbe is started at once; one without
// a readinessProbe is ready once started.
func (c *container) startProbes(ctx context.Context, workers *sync.WaitGroup, pr *process) {
	if c.probeEpoch.IsZero() {
		c.probeEpoch = pr.started
	}
	started := make(chan struct{})
	if sp := c.spec.StartupProbe; sp != nil {
		w := c.newProbeWorker(startupProbe, sp, pr, started)
		workers.Go(func() { w.run(ctx) })
	} else {
		close(started)
	}
	if rp := c.spec.ReadinessProbe; rp != nil {
		w := c.newProbeWorker(readinessProbe, rp, pr, started)
		workers.Go(func() { w.run(ctx) })
	}
	if lp := c.spec.LivenessProbe; lp != nil {
		w := c.newProbeWorker(livenessProbe, lp, pr, started)
		workers.Go(func() { w.run(ctx) })
	}
	if h := c.lifecycle().PostStart; h != nil {
		workers.Go(func() {
			if err := c.runLifecycle(ctx, h, pr); err != nil && ctx.Err() == nil {
				c.pod.event("Warning", "FailedPostStartHook", fmt.Sprintf("PostStartHook failed for container %s: %v", c.spec.Name, err))
				c.requestKill("FailedPostStartHook")
			}
		})
	}
}

func (c *container) requestKill(why string) {
	select {
	case c.killReq <- why:
	default: // a request is already pending
	}
}

// probeWorker runs one probe of one process with the kubelet's semantics:
// nothing before initialDelaySeconds, then every periodSeconds; a result
// counts once it repeats successThreshold or failureThreshold times in a
// row.
type probeWorker struct {
	c     *container
	kind  probeKind
	probe *corev1.Probe
	proc  *process
	// started is closed once the container has started. The startup
	// probe's worker closes it when the probe passes (startProbes closes
	// it at once when there is none); readiness and liveness workers
	// wait for it before probing.
	started chan struct{}

	period, timeout     time.Duration
	successes, failures int // the thresholds, defaulted
}

func (c *container) newProbeWorker(kind probeKind, probe *corev1.Probe, proc *process, started chan struct{}) *probeWorker {
	w := &probeWorker{
		c: c, kind: kind, probe: probe, proc: proc, started: started,
		period:    seconds(probe.PeriodSeconds, 10),
		timeout:   seconds(probe.TimeoutSeconds, 1),
		successes: int(max(probe.SuccessThreshold, 1)),
		failures:  int(probe.FailureThreshold),
	}
	if w.failures < 1 {
		w.failures = 3
	}
	if kind != readinessProbe {
		w.successes = 1 // the API requires 1 for liveness and startup probes
	}
	return w
}

// run probes until ctx ends, a liveness or startup probe fails for good
// (and asks for a restart), or the startup probe passes.
func (w *probeWorker) run(ctx context.Context) {
	if w.kind != startupProbe {
		select {
		case <-w.started:
		case <-ctx.Done():
			return
		}
	}
	var results resultRun
	next := w.firstProbeAt()
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		err := w.c.probeOnce(ctx, w.probe.ProbeHandler, w.timeout, w.proc)
		if ctx.Err() != nil {
			return
		}
		if !w.handle(err, results.add(err)) {
			return
		}
		next = time.Now().Add(w.period)
	}
}

// firstProbeAt is when the worker probes first: initialDelaySeconds after
// the process started and, for a restarted process, not before the
// worker's next tick, since the kubelet's workers tick on from the
// container's first start. A readiness probe behind a startup probe is
// the exception: the kubelet triggers it when the startup probe passes.
func (w *probeWorker) firstProbeAt() time.Time {
	at := w.proc.started.Add(seconds(w.probe.InitialDelaySeconds, 0))
	restarted := w.proc.started.After(w.c.probeEpoch)
	triggered := w.kind == readinessProbe && w.c.spec.StartupProbe != nil
	if restarted && !triggered {
		at = nextTick(w.c.probeEpoch, w.period, at)
	}
	return at
}

// handle acts on a probe's result err, the run-th in a row alike, once
// run reaches the threshold, and reports whether the worker goes on.
func (w *probeWorker) handle(err error, run int) bool {
	c, p := w.c, w.c.pod
	if err != nil {
		p.event("Warning", "Unhealthy", fmt.Sprintf("%s probe failed: %v", w.kind, err))
		if run < w.failures {
			return true
		}
		switch w.kind {
		case readinessProbe:
			p.mu.Lock()
			c.ready = false
			p.updateReadyLocked()
			p.mu.Unlock()
			p.changed()
		case livenessProbe, startupProbe:
			c.requestKill(fmt.Sprintf("Container %s failed %s probe, will be restarted", c.spec.Name, strings.ToLower(string(w.kind))))
			return false
		}
		return true
	}
	if run < w.successes {
		return true
	}
	switch w.kind {
	case startupProbe:
		p.mu.Lock()
		c.started = true
		c.ready = c.spec.ReadinessProbe == nil
		p.updateReadyLocked()
		p.mu.Unlock()
		p.changed()
		close(w.started)
		return false
	case readinessProbe:
		p.mu.Lock()
		changed := !c.ready
		c.ready = true
		p.updateReadyLocked()
		p.mu.Unlock()
		if changed {
			p.changed()
		}
	}
	return true
}

// resultRun counts a probe's latest results that are alike, all
// successes or all failures.
type resultRun struct {
	n       int // 0 before the first result
	failing bool
}

// add counts err, a probe's result, and returns the length of the run it
// ends.
func (r *resultRun) add(err error) int {
	if r.n > 0 && (err != nil) == r.failing {
		r.n++
	} else {
		r.n, r.failing = 1, err != nil
	}
	return r.n
}

// nextTick is the first time at or after t of a ticker started at epoch
// with the given period.
func nextTick(epoch time.Time, period time.Duration, t time.Time) time.Time {
	if !t.After(epoch) || period <= 0 {
		return t
	}
	n := (t.Sub(epoch) + period - 1) / period
	return epoch.Add(n * period)
}

func seconds(n int32, def int) time.Duration {
	if n <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(n) * time.Second
}

// sleepUntil waits until t and reports whether ctx is still alive.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// probeOnce runs a probe handler once; nil means success.
func (c *container) probeOnce(ctx context.Context, h corev1.ProbeHandler, timeout time.Duration, pr *process) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case h.Exec != nil:
		return c.execCommand(ctx, h.Exec.Command, pr)
	case h.HTTPGet != nil:
		return c.httpGet(ctx, h.HTTPGet)
	case h.TCPSocket != nil:
		return c.tcpDial(ctx, h.TCPSocket)
	case h.GRPC != nil:
		return c.grpcCheck(ctx, h.GRPC)
	}
	return errors.New("no handler") // ruled out by validateHandler
}

func (c *container) validateHandler(h corev1.ProbeHandler) error {
	n, err := c.validateExecHTTP(h.Exec, h.HTTPGet)
	if h.TCPSocket != nil {
		n++
		if _, perr := c.port(h.TCPSocket.Port); perr != nil {
			err = errors.Join(err, fmt.Errorf("tcpSocket: %w", perr))
		}
	}
	if h.GRPC != nil {
		n++
		// The API takes the port by number only: gRPC probes have no
		// named ports.
		if p := h.GRPC.Port; p < 1 || p > 65535 {
			err = errors.Join(err, fmt.Errorf("grpc: port %d out of range", p))
		}
	}
	if n != 1 {
		return fmt.Errorf("want exactly one of exec, httpGet, tcpSocket, grpc; have %d", n)
	}
	return err
}

func (c *container) validateLifecycle(h *corev1.LifecycleHandler) error {
	n, err := c.validateExecHTTP(h.Exec, h.HTTPGet)
	if h.Sleep != nil {
		n++
		if h.Sleep.Seconds < 0 {
			err = errors.Join(err, errors.New("sleep: negative seconds"))
		}
	}
	if h.TCPSocket != nil {
		return errors.New("tcpSocket hooks are not supported (deprecated in Kubernetes)")
	}
	if n != 1 {
		return fmt.Errorf("want exactly one of exec, httpGet, sleep; have %d", n)
	}
	return err
}

// validateExecHTTP checks the exec and httpGet actions that probes and
// lifecycle hooks share, and counts those set.
func (c *container) validateExecHTTP(e *corev1.ExecAction, g *corev1.HTTPGetAction) (n int, err error) {
	if e != nil {
		n++
		if len(e.Command) == 0 {
			err = errors.New("exec: empty command")
		}
	}
	if g != nil {
		n++
		err = errors.Join(err, c.validateHTTP(g))
	}
	return n, err
}

func (c *container) validateHTTP(g *corev1.HTTPGetAction) error {
	if _, err := c.port(g.Port); err != nil {
		return fmt.Errorf("httpGet: %w", err)
	}
	switch strings.ToUpper(string(g.Scheme)) {
	case "", "HTTP", "HTTPS":
	default:
		return fmt.Errorf("httpGet: unknown scheme %q", g.Scheme)
	}
	return nil
}

// runLifecycle runs a postStart or preStop hook until it ends or ctx does.
func (c *container) runLifecycle(ctx context.Context, h *corev1.LifecycleHandler, pr *process) error {
	switch {
	case h.Exec != nil:
		return c.execCommand(ctx, h.Exec.Command, pr)
	case h.HTTPGet != nil:
		return c.httpGet(ctx, h.HTTPGet)
	case h.Sleep != nil:
		if !sleepUntil(ctx, time.Now().Add(time.Duration(h.Sleep.Seconds)*time.Second)) {
			return ctx.Err()
		}
		return nil
	}
	return errors.New("no handler")
}

// execCommand runs a command as if inside the container: its environment,
// its working directory and, when isolated, its mount namespace. Like the
// kubelet, it does not expand $(VAR) in the command.
func (c *container) execCommand(ctx context.Context, command []string, pr *process) error {
	exe, err := c.executable(command[0])
	if err != nil {
		return err
	}
	argv := append([]string{exe}, command[1:]...)
	if ns := c.pod.nsExec; ns != nil {
		argv = append(append(append([]string(nil), ns...), strconv.Itoa(pr.pid), "--"), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &limitedBuffer{max: maxProbeOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// A background child holding the output pipe must not hold up the probe.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		return fmt.Errorf("command %q timed out", strings.Join(command, " "))
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the command
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			return fmt.Errorf("command %q: %w: %s", strings.Join(command, " "), err, msg)
		}
		return fmt.Errorf("command %q: %w", strings.Join(command, " "), err)
	}
	return nil
}

// httpGet succeeds on a status from 200 to 399, as the kubelet's HTTP probe.
func (c *container) httpGet(ctx context.Context, g *corev1.HTTPGetAction) error {
	port, err := c.port(g.Port)
	if err != nil {
		return err
	}
	host := g.Host
	if host == "" {
		host = c.pod.cfg.IP.String()
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if p, q, ok := strings.Cut(path, "?"); ok {
		u.Path, u.RawQuery = p, q
	} else {
		u.Path = path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.34")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	transport := &http.Transport{
		DisableKeepAlives: true,                                  // a probe is one request, as the kubelet's
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does not verify probe certificates
		Proxy:             nil,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeOutput))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

func (c *container) tcpDial(ctx context.Context, t *corev1.TCPSocketAction) error {
	port, err := c.port(t.Port)
	if err != nil {
		return err
	}
	host := t.Host
	if host == "" {
		host = c.pod.cfg.IP.String()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
