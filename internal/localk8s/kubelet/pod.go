package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Errors callers can branch on with errors.Is.
var (
	// ErrPortInUse: a containerPort could not be bound on the pod IP.
	ErrPortInUse = errors.New("in use")
	// ErrInvalidPod: the pod cannot be run as given (unknown image, bad
	// environment reference, unknown named port, unsupported field...).
	ErrInvalidPod = errors.New("invalid pod")
)

// Config describes the pod to run. Name, IP, Spec and Binary are required;
// every other field has a usable zero value.
type Config struct {
	Name, Namespace, UID string
	// IP is the pod's loopback IP, e.g. 127.0.1.5. Containers are expected
	// to listen on it; HTTP and TCP probes connect to it.
	IP netip.Addr
	// Spec is the pod's spec: containers, probes, lifecycle hooks,
	// restartPolicy and terminationGracePeriodSeconds are honoured.
	Spec corev1.PodSpec
	// Labels and Annotations feed the downward API.
	Labels, Annotations map[string]string

	// Binary resolves a container image to the path of an executable that
	// is already built. Required.
	Binary func(image string) (string, error)
	// Lookup resolves secretKeyRef and configMapKeyRef; kind is "Secret" or
	// "ConfigMap". If nil, such references are errors.
	Lookup func(kind, name, key string) (string, error)
	// LookupAll returns every key of a Secret or ConfigMap, for envFrom. If
	// nil, envFrom is an error.
	LookupAll func(kind, name string) (map[string]string, error)

	// BaseEnv is the NAME=VALUE environment every container starts with,
	// before the manifest's env. If nil, it is PATH (the container runtime
	// default) and HOME=/root.
	BaseEnv []string
	// ResolvConf is a file bind-mounted over /etc/resolv.conf in a private
	// mount namespace for each container. It takes effect only when running
	// as root; otherwise a warning is logged. "" means none.
	ResolvConf string
	// LogDir receives each container's stdout and stderr, appended to
	// LogDir/<pod>_<container>.log. "" discards the output.
	LogDir string
	// Logger receives the pod's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// OnEvent is called with the events the kubelet would record about the
	// pod (Started, Killing, Unhealthy, BackOff, ...). It must not block for
	// long and must not call Terminate. If nil, events are dropped.
	OnEvent func(Event)
	// OnChange is called, without locks held, after any change of Status.
	OnChange func()

	// BackOff is the first restart delay after the first immediate restart
	// of a crashing container, doubling up to MaxBackOff. Defaults: 10s and
	// 5m, the kubelet's.
	BackOff, MaxBackOff time.Duration
	// NodeCPU and NodeMemory are what resourceFieldRef reports for a limit
	// that is not set, as the kubelet reports the node's allocatable.
	// Defaults: runtime.NumCPU() and MemTotal of /proc/meminfo.
	NodeCPU    int
	NodeMemory int64
	// Now is the clock for status times. Default time.Now.
	Now func() time.Time
}

// Event is something that happened to the pod, as the kubelet records it.
type Event struct {
	Type    string // "Normal" or "Warning"
	Reason  string // Started, Killing, Unhealthy, BackOff, Failed, ...
	Message string
}

// Status is a snapshot of a pod's state.
type Status struct {
	// Phase is Pending, Running, Succeeded or Failed.
	Phase corev1.PodPhase
	// Reason is what kubectl prints under STATUS: ContainerCreating,
	// Running, CrashLoopBackOff, RunContainerError, Error, Completed or
	// Terminating.
	Reason string
	// Ready is the Ready condition: every container ready and the pod not
	// terminating. Started is true once every startup probe has passed.
	Ready, Started bool
	Terminating    bool
	// Restarts sums the containers' restart counts.
	Restarts int32
	// StartTime is when the pod was started; ReadyTime when the Ready
	// condition last changed (zero until it first becomes true).
	StartTime, ReadyTime time.Time
	Containers           []ContainerStatus
}

// ContainerStatus is one container's state.
type ContainerStatus struct {
	Name string
	// PID is the process ID while running, else 0.
	PID              int
	Running, Started bool
	Ready            bool
	Restarts         int32
	// State is Waiting, Running or Terminated; Reason explains Waiting and
	// Terminated (ContainerCreating, CrashLoopBackOff, Error, Completed).
	State, Reason string
	// StartedAt is when the current or last process started.
	StartedAt time.Time
	// LastExit describes how the last process ended, e.g.
	// "Error (exit code 2)"; "" if none has ended.
	LastExit string
}

// Pod is a running pod. Its methods are safe for concurrent use.
type Pod struct {
	cfg    Config
	log    *slog.Logger
	grace  time.Duration
	wrap   []string // unshare prefix, nil when not isolating resolv.conf
	nsExec []string // nsenter prefix for exec hooks and probes, nil when not isolated

	containers []*container

	terminating chan struct{} // closed by Terminate
	hardKill    chan struct{} // closed when Terminate's context ends: SIGKILL now
	done        chan struct{} // closed when every supervisor has returned after Terminate
	termOnce    sync.Once
	killOnce    sync.Once
	wg          sync.WaitGroup

	mu        sync.Mutex
	termStart time.Time
	termAt    time.Time // termStart on the monotonic clock, for the grace period
	ready     bool
	readyTime time.Time
	startTime time.Time
	cpuMax    time.Duration
}

// Start validates cfg, checks that the pod's containerPorts are free on its
// IP, starts every container and returns. On error nothing is left running.
// The pod then runs, and restarts its containers, until Terminate; the
// caller owns it and must call Terminate to stop its goroutines.
func Start(cfg Config) (*Pod, error) {
	p, err := newPod(cfg)
	if err != nil {
		return nil, err
	}
	if err := p.checkPorts(); err != nil {
		return nil, err
	}
	procs := make([]*process, len(p.containers))
	for i, c := range p.containers {
		proc, err := c.start()
		if err != nil {
			for _, started := range procs[:i] {
				started.kill()
				<-started.done
				started.closeLog()
			}
			return nil, fmt.Errorf("kubelet: pod %s: container %s: %w", cfg.Name, c.spec.Name, err)
		}
		procs[i] = proc
	}
	p.mu.Lock()
	p.startTime = p.now()
	for i, c := range p.containers {
		c.setRunningLocked(procs[i])
	}
	p.mu.Unlock()
	for i, c := range p.containers {
		p.event("Normal", "Started", "Started container "+c.spec.Name)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c.supervise(procs[i])
		}()
	}
	// Done is closed only after Terminate: containers that end by
	// themselves (restartPolicy Never) leave a pod that still exists.
	go func() {
		<-p.terminating
		p.wg.Wait()
		close(p.done)
	}()
	p.changed()
	return p, nil
}

func newPod(cfg Config) (*Pod, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("kubelet: pod %s: %w: %s", cfg.Name, ErrInvalidPod, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Name == "":
		return nil, fmt.Errorf("kubelet: %w: no name", ErrInvalidPod)
	case !cfg.IP.IsValid():
		return nil, invalid("no IP")
	case cfg.Binary == nil:
		return nil, invalid("no Binary resolver")
	case len(cfg.Spec.Containers) == 0:
		return nil, invalid("no containers")
	case len(cfg.Spec.InitContainers) > 0:
		return nil, invalid("initContainers are not supported")
	}
	switch cfg.Spec.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		return nil, invalid("unknown restartPolicy %q", cfg.Spec.RestartPolicy)
	}
	if cfg.BackOff <= 0 {
		cfg.BackOff = 10 * time.Second
	}
	if cfg.MaxBackOff <= 0 {
		cfg.MaxBackOff = 5 * time.Minute
	}
	if cfg.MaxBackOff < cfg.BackOff {
		cfg.MaxBackOff = cfg.BackOff
	}
	if cfg.BaseEnv == nil {
		cfg.BaseEnv = []string{"PATH=" + defaultPath, "HOME=/root"}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pod{
		cfg:         cfg,
		log:         log.With("pod", cfg.Name),
		grace:       30 * time.Second,
		terminating: make(chan struct{}),
		hardKill:    make(chan struct{}),
		done:        make(chan struct{}),
	}
	if g := cfg.Spec.TerminationGracePeriodSeconds; g != nil {
		if *g < 0 {
			return nil, invalid("negative terminationGracePeriodSeconds")
		}
		p.grace = time.Duration(*g) * time.Second
	}
	if cfg.ResolvConf != "" {
		if err := p.setUpResolvConf(); err != nil {
			return nil, fmt.Errorf("kubelet: pod %s: %w", cfg.Name, err)
		}
	}
	names := map[string]bool{}
	for i := range cfg.Spec.Containers {
		spec := &cfg.Spec.Containers[i]
		if spec.Name == "" || names[spec.Name] {
			return nil, invalid("container %d: missing or duplicate name %q", i, spec.Name)
		}
		names[spec.Name] = true
		c, err := p.newContainer(spec)
		if err != nil {
			return nil, fmt.Errorf("kubelet: pod %s: container %s: %w: %w", cfg.Name, spec.Name, ErrInvalidPod, err)
		}
		p.containers = append(p.containers, c)
	}
	return p, nil
}

// setUpResolvConf decides how containers get the pod's resolv.conf.
func (p *Pod) setUpResolvConf() error {
	if os.Geteuid() != 0 {
		p.log.Warn("not running as root: containers use the host's /etc/resolv.conf, cluster DNS names will not resolve")
		return nil
	}
	if _, err := os.Stat(p.cfg.ResolvConf); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	unshare, err := lookPath("unshare", defaultPath)
	if err != nil {
		return fmt.Errorf("resolv.conf needs unshare (util-linux): %w", err)
	}
	nsenter, err := lookPath("nsenter", defaultPath)
	if err != nil {
		return fmt.Errorf("resolv.conf needs nsenter (util-linux): %w", err)
	}
	mount, err := lookPath("mount", defaultPath)
	if err != nil {
		return fmt.Errorf("resolv.conf needs mount: %w", err)
	}
	// unshare and sh exec, so the container's PID is the program's: the one
	// the kubelet would signal. mount is passed as $0 because the
	// container's PATH is the manifest's.
	p.wrap = []string{unshare, "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", `"$0" --bind "$1" /etc/resolv.conf && shift && exec "$@"`, mount, p.cfg.ResolvConf}
	p.nsExec = []string{nsenter, "--mount", "--target"}
	return nil
}

// Status returns the pod's current state.
func (p *Pod) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{
		Ready:     p.ready,
		StartTime: p.startTime,
		ReadyTime: p.readyTime,
		Started:   true,
	}
	select {
	case <-p.terminating:
		st.Terminating = true
	default:
	}
	var running, waiting, failed, succeeded, everRan int
	waitReason := ""
	for _, c := range p.containers {
		cs := c.statusLocked()
		st.Containers = append(st.Containers, cs)
		st.Restarts += cs.Restarts
		st.Started = st.Started && cs.Started
		switch cs.State {
		case "Running":
			running++
		case "Waiting":
			waiting++
			if waitReason == "" || cs.Reason == "CrashLoopBackOff" {
				waitReason = cs.Reason
			}
		case "Terminated":
			if cs.Reason == "Completed" {
				succeeded++
			} else {
				failed++
			}
		}
		if cs.Restarts > 0 || cs.State != "Waiting" {
			everRan++
		}
	}
	switch {
	case running > 0 || (waiting > 0 && everRan > 0):
		st.Phase = corev1.PodRunning
	case waiting > 0:
		st.Phase = corev1.PodPending
	case failed > 0:
		st.Phase = corev1.PodFailed
	default:
		st.Phase = corev1.PodSucceeded
	}
	switch {
	case st.Terminating:
		st.Reason = "Terminating"
	case waitReason != "":
		st.Reason = waitReason // CrashLoopBackOff first, as kubectl shows it
	case running == 0 && failed > 0:
		st.Reason = "Error"
	case running == 0:
		st.Reason = "Completed"
	default:
		st.Reason = "Running"
	}
	return st
}

// CPUTime returns the CPU time (user plus system) used by the pod's
// container processes since the pod started: that of the running ones,
// read from /proc, plus that of every process that has exited. It never
// decreases, so a rate over two calls is meaningful.
func (p *Pod) CPUTime() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum time.Duration
	for _, c := range p.containers {
		sum += c.cpuLocked()
	}
	p.cpuMax = max(p.cpuMax, sum)
	return p.cpuMax
}

// Terminate stops the pod as the kubelet does when a pod is deleted: the pod
// stops being ready at once, probes and restarts stop, each running
// container's preStop hook runs, then its process gets SIGTERM, and SIGKILL
// (to its whole process group) when terminationGracePeriodSeconds (default
// 30s), counted from the first call, have passed; like the kubelet, a
// container whose preStop hook used up the grace period gets 2 more
// seconds after SIGTERM. Terminate returns when every process has exited.
// If ctx ends first, every process is killed at once and ctx's error is
// returned after they have exited. Terminate may be called more than once.
func (p *Pod) Terminate(ctx context.Context) error {
	p.termOnce.Do(func() {
		p.mu.Lock()
		p.termStart, p.termAt = p.now(), time.Now()
		close(p.terminating)
		p.updateReadyLocked()
		p.mu.Unlock()
		p.changed()
	})
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	p.killOnce.Do(func() { close(p.hardKill) })
	<-p.done
	return ctx.Err()
}

// Done is closed when, after Terminate, every process of the pod has exited.
func (p *Pod) Done() <-chan struct{} { return p.done }

func (p *Pod) now() time.Time {
	if p.cfg.Now != nil {
		return p.cfg.Now()
	}
	return time.Now()
}

func (p *Pod) isTerminating() bool {
	select {
	case <-p.terminating:
		return true
	default:
		return false
	}
}

// updateReadyLocked recomputes the Ready condition after a change.
func (p *Pod) updateReadyLocked() {
	ready := !p.isTerminating()
	for _, c := range p.containers {
		ready = ready && c.readyLocked()
	}
	if ready != p.ready {
		p.ready = ready
		p.readyTime = p.now()
	}
}

func (p *Pod) changed() {
	if p.cfg.OnChange != nil {
		p.cfg.OnChange()
	}
}

func (p *Pod) event(typ, reason, msg string) {
	if typ == "Warning" {
		p.log.Warn(msg, "reason", reason)
	} else {
		p.log.Info(msg, "reason", reason)
	}
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(Event{Type: typ, Reason: reason, Message: msg})
	}
}

func (cfg *Config) nodeCPU() int {
	if cfg.NodeCPU > 0 {
		return cfg.NodeCPU
	}
	return runtime.NumCPU()
}

func (cfg *Config) nodeMemory() int64 {
	if cfg.NodeMemory > 0 {
		return cfg.NodeMemory
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}

// logPath is where a container's output goes, "" for nowhere.
func (p *Pod) logPath(container string) string {
	if p.cfg.LogDir == "" {
		return ""
	}
	return filepath.Join(p.cfg.LogDir, p.cfg.Name+"_"+container+".log")
}
