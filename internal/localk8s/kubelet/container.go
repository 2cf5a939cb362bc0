package kubelet

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// minKillGrace is the least time the kubelet leaves between SIGTERM and
// SIGKILL, even when a preStop hook used up the grace period.
const minKillGrace = 2 * time.Second

// container is one container of a pod and the supervisor of its processes.
type container struct {
	pod     *Pod
	spec    *corev1.Container
	bin     string // the image's binary
	argv    []string
	env     []string
	dir     string
	ports   map[string]int32 // containerPort by name
	killReq chan string      // a probe or hook asking for a restart, with the reason
	path    string           // the container's PATH, for exec hooks and probes

	// Guarded by pod.mu.
	proc      *process
	state     string // Waiting, Running, Terminated
	reason    string
	started   bool
	ready     bool
	startedAt time.Time
	restarts  int32
	lastExit  string
	cpuDone   time.Duration

	// probeEpoch is when the first process started. The kubelet's probe
	// workers tick from then on, across restarts, so a restarted
	// container is first probed at the next tick, not at once.
	probeEpoch time.Time
}

func (p *Pod) newContainer(spec *corev1.Container) (*container, error) {
	cfg := &p.cfg
	bin, err := cfg.Binary(spec.Image)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", spec.Image, err)
	}
	declared, err := cfg.resolveEnv(spec)
	if err != nil {
		return nil, err
	}
	full := &envList{}
	for _, kv := range cfg.BaseEnv {
		k, v, _ := strings.Cut(kv, "=")
		full.set(k, v)
	}
	for _, k := range declared.names {
		full.set(k, declared.values[k])
	}
	if _, ok := declared.values["HOST"]; !ok {
		// Shoal's services bind to $HOST; pods own their loopback IP.
		full.set("HOST", cfg.IP.String())
	}
	c := &container{
		pod:     p,
		spec:    spec,
		bin:     bin,
		env:     full.environ(),
		dir:     spec.WorkingDir,
		ports:   map[string]int32{},
		killReq: make(chan string, 1),
		state:   "Waiting",
		reason:  "ContainerCreating",
	}
	c.path, _ = full.lookup("PATH")
	if c.dir == "" {
		c.dir = "/"
	}
	// The manifest's command replaces the image's entrypoint (the binary)
	// and args replace its (empty) default arguments.
	args := make([]string, 0, len(spec.Command)+len(spec.Args))
	for _, a := range spec.Command {
		args = append(args, expand(a, declared.lookup))
	}
	for _, a := range spec.Args {
		args = append(args, expand(a, declared.lookup))
	}
	if len(spec.Command) == 0 {
		c.argv = append([]string{bin}, args...)
	} else {
		exe, err := c.executable(args[0])
		if err != nil {
			return nil, fmt.Errorf("command: %w", err)
		}
		c.argv = append([]string{exe}, args[1:]...)
	}
	for _, port := range spec.Ports {
		if port.ContainerPort < 1 || port.ContainerPort > 65535 {
			return nil, fmt.Errorf("containerPort %d out of range", port.ContainerPort)
		}
		if port.Name != "" {
			c.ports[port.Name] = port.ContainerPort
		}
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"startupProbe", spec.StartupProbe}, {"readinessProbe", spec.ReadinessProbe}, {"livenessProbe", spec.LivenessProbe}}
	for _, pr := range probes {
		if pr.probe == nil {
			continue
		}
		if err := c.validateHandler(pr.probe.ProbeHandler); err != nil {
			return nil, fmt.Errorf("%s: %w", pr.name, err)
		}
	}
	if l := spec.Lifecycle; l != nil {
		for name, h := range map[string]*corev1.LifecycleHandler{"postStart": l.PostStart, "preStop": l.PreStop} {
			if h == nil {
				continue
			}
			if err := c.validateLifecycle(h); err != nil {
				return nil, fmt.Errorf("lifecycle.%s: %w", name, err)
			}
		}
	}
	return c, nil
}

// executable resolves argv[0] of a command run in the container: the
// image's binary when named by its file name (as it would be found inside
// the image), else a file found in the container's PATH.
func (c *container) executable(name string) (string, error) {
	if base := path.Base(name); base == path.Base(c.bin) || base == imageName(c.spec.Image) {
		return c.bin, nil
	}
	return lookPath(name, c.path)
}

// imageName is the last path element of an image reference without tag or
// digest: "ghcr.io/shoal-dev/thumbnailer:v1" -> "thumbnailer".
func imageName(image string) string {
	image, _, _ = strings.Cut(image, "@")
	name := path.Base(image)
	name, _, _ = strings.Cut(name, ":")
	return name
}

// port resolves a probe or hook port, given by number or by the name of a
// containerPort.
func (c *container) port(p intstr.IntOrString) (int, error) {
	if p.Type == intstr.String {
		if n, ok := c.ports[p.StrVal]; ok {
			return int(n), nil
		}
		if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n < 65536 {
			return n, nil
		}
		return 0, fmt.Errorf("port %q: no containerPort of that name", p.StrVal)
	}
	if p.IntVal < 1 || p.IntVal > 65535 {
		return 0, fmt.Errorf("port %d out of range", p.IntVal)
	}
	return int(p.IntVal), nil
}

// start starts one process of the container.
func (c *container) start() (*process, error) {
	return startProcess(c.argv, c.env, c.dir, c.pod.logPath(c.spec.Name), c.pod.wrap)
}

func (c *container) setRunningLocked(pr *process) {
	c.proc = pr
	c.state, c.reason = "Running", ""
	c.startedAt = c.pod.now()
	c.started = c.spec.StartupProbe == nil
	c.ready = c.started && c.spec.ReadinessProbe == nil
	c.pod.updateReadyLocked()
}

// supervise runs the container from its first process until the pod
// terminates or the restartPolicy says the container is done.
func (c *container) supervise(pr *process) {
	p := c.pod
	var (
		backOff     time.Duration
		lastExit    time.Time
		backOffSeen bool
	)
	for {
		if pr != nil {
			exitCode := c.run(pr)
			if p.isTerminating() || !c.restartable(exitCode) {
				return
			}
		} else if p.isTerminating() {
			return
		}
		// The kubelet's back-off: the first restart is immediate, the next
		// waits BackOff, doubling up to MaxBackOff; it starts over when the
		// last exit is more than twice MaxBackOff old.
		now := time.Now()
		var delay time.Duration
		if !backOffSeen || now.Sub(lastExit) > 2*p.cfg.MaxBackOff {
			backOff, backOffSeen = p.cfg.BackOff, true
		} else {
			delay = backOff
			backOff = min(2*backOff, p.cfg.MaxBackOff)
		}
		lastExit = now
		if delay > 0 {
			p.mu.Lock()
			c.state, c.reason = "Waiting", "CrashLoopBackOff"
			p.mu.Unlock()
			p.changed()
			p.event("Warning", "BackOff", fmt.Sprintf("Back-off %s restarting failed container %s in pod %s", delay, c.spec.Name, p.cfg.Name))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-p.terminating:
				t.Stop()
				return
			}
		}
		// Drop restart requests left by the previous process's probes.
		select {
		case <-c.killReq:
		default:
		}
		var err error
		pr, err = c.start()
		p.mu.Lock()
		c.restarts++
		if err != nil {
			c.state, c.reason = "Waiting", "RunContainerError"
			c.lastExit = "StartError: " + err.Error()
		} else {
			c.setRunningLocked(pr)
		}
		p.mu.Unlock()
		p.changed()
		if err != nil {
			p.event("Warning", "Failed", fmt.Sprintf("Error: container %s: %v", c.spec.Name, err))
		} else {
			p.event("Normal", "Started", "Started container "+c.spec.Name)
		}
	}
}

// restartable says whether the restartPolicy restarts a container that
// exited with exitCode.
func (c *container) restartable(exitCode int) bool {
	switch c.pod.cfg.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// run watches one process until it exits, killing it when a probe asks for
// a restart or the pod terminates, and returns its exit code (128+signal
// when killed by a signal).
func (c *container) run(pr *process) int {
	p := c.pod
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	c.startProbes(ctx, &workers, pr)
	stopWorkers := func() {
		cancel()
		workers.Wait()
	}
	select {
	case <-pr.done:
	case why := <-c.killReq:
		stopWorkers()
		p.setNotReady(c)
		p.event("Normal", "Killing", why)
		grace := p.grace
		if lp := c.spec.LivenessProbe; lp != nil && lp.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*lp.TerminationGracePeriodSeconds) * time.Second
		}
		c.stop(pr, time.Now().Add(grace))
	case <-p.terminating:
		stopWorkers()
		p.event("Normal", "Killing", "Stopping container "+c.spec.Name)
		p.mu.Lock()
		deadline := p.termAt.Add(p.grace)
		p.mu.Unlock()
		c.stop(pr, deadline)
	}
	stopWorkers()
	<-pr.done
	pr.closeLog()

	code, desc := exitStatus(pr.state)
	p.mu.Lock()
	c.cpuDone += pr.cpu()
	c.proc = nil
	c.ready, c.started = false, false
	c.state, c.reason = "Terminated", "Error"
	if code == 0 {
		c.reason = "Completed"
	}
	c.lastExit = c.reason + " (" + desc + ")"
	p.updateReadyLocked()
	p.mu.Unlock()
	p.changed()
	p.log.Info("container exited", "container", c.spec.Name, "pid", pr.pid, "status", desc)
	return code
}

func exitStatus(st *os.ProcessState) (int, string) {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), "exit code " + strconv.Itoa(128+int(ws.Signal())) + ", signal " + ws.Signal().String()
	}
	return st.ExitCode(), "exit code " + strconv.Itoa(st.ExitCode())
}

// stop kills a process as the kubelet kills a container: preStop hook
// (bounded by the deadline), SIGTERM, then SIGKILL at the deadline but no
// sooner than minKillGrace after SIGTERM. A hard kill of the pod cuts every
// wait short.
func (c *container) stop(pr *process, deadline time.Time) {
	p := c.pod
	if h := c.lifecycle().PreStop; h != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		var watch sync.WaitGroup
		watch.Go(func() {
			select {
			case <-pr.done: // the kubelet abandons the hook when the container dies
			case <-p.hardKill:
			case <-ctx.Done():
			}
			cancel()
		})
		err := c.runLifecycle(ctx, h, pr)
		cancel()
		watch.Wait()
		if err != nil {
			p.event("Warning", "FailedPreStopHook", fmt.Sprintf("PreStopHook failed for container %s: %v", c.spec.Name, err))
		}
	}
	// A hard kill that came during the hook sends SIGKILL alone: SIGTERM
	// first would let a process that exits quickly on it finish cleanly,
	// which is not what the kubelet does when the grace period is over.
	select {
	case <-p.hardKill:
		pr.kill()
		return
	default:
	}
	wait := max(time.Until(deadline), minKillGrace)
	pr.signal(syscall.SIGTERM)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-pr.done:
		return
	case <-t.C:
	case <-p.hardKill:
	}
	pr.kill()
}

func (c *container) lifecycle() corev1.Lifecycle {
	if c.spec.Lifecycle == nil {
		return corev1.Lifecycle{}
	}
	return *c.spec.Lifecycle
}

func (p *Pod) setNotReady(c *container) {
	p.mu.Lock()
	c.ready = false
	p.updateReadyLocked()
	p.mu.Unlock()
	p.changed()
}

func (c *container) readyLocked() bool { return c.proc != nil && c.ready }

func (c *container) statusLocked() ContainerStatus {
	cs := ContainerStatus{
		Name:      c.spec.Name,
		Running:   c.proc != nil,
		Started:   c.started,
		Ready:     c.readyLocked(),
		Restarts:  c.restarts,
		State:     c.state,
		Reason:    c.reason,
		StartedAt: c.startedAt,
		LastExit:  c.lastExit,
	}
	if c.proc != nil {
		cs.PID = c.proc.pid
	}
	return cs
}

func (c *container) cpuLocked() time.Duration {
	t := c.cpuDone
	if c.proc != nil {
		t += c.proc.cpu()
	}
	return t
}
