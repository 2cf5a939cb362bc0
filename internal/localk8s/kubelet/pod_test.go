package kubelet

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestProbesGateReadiness(t *testing.T) {
	t.Setenv("PODRUN_HOST_ONLY", "1") // must not reach the container
	h := newHarness(t, "127.42.0.2")
	c := h.container(corev1.EnvVar{Name: "READY_AFTER", Value: "1500ms"}, fieldEnv("POD_NAME", "metadata.name"))
	c.StartupProbe = httpProbe("/healthz", 1, 30)
	c.ReadinessProbe = httpProbe("/readyz", 1, 1)
	p := h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))

	if st := p.Status(); st.Ready || !st.ReadyTime.IsZero() {
		t.Fatalf("ready before the readiness probe passed: %+v", st)
	}
	st := h.waitFor("ready", func(s Status) bool { return s.Ready })
	if !st.Started || st.Phase != corev1.PodRunning || st.Reason != "Running" || st.ReadyTime.IsZero() {
		t.Errorf("ready pod status %+v", st)
	}
	env := strings.Split(h.mustGet("/env"), "\n")
	for _, want := range []string{"HOST=127.42.0.2", "POD_NAME=testpod-1", "PORT=" + strconv.Itoa(h.port)} {
		if !slices.Contains(env, want) {
			t.Errorf("container env lacks %s: %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "PODRUN_HOST_ONLY=") {
			t.Errorf("container inherited the host environment: %q", env)
		}
	}

	h.mustGet("/set?ready=0")
	h.waitFor("not ready", func(s Status) bool { return !s.Ready })
	found := false
	for _, e := range h.eventsWith("Unhealthy") {
		found = found || strings.Contains(e.Message, "Readiness probe failed: HTTP probe failed with statuscode: 503")
	}
	if !found {
		t.Errorf("no Unhealthy event for the readiness failure: %v", h.eventList())
	}
	h.mustGet("/set?ready=1")
	h.waitFor("ready again", func(s Status) bool { return s.Ready })
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy corev1.RestartPolicy
		exit   string
		want   func(Status) bool
	}{
		{"Never keeps a failed container", corev1.RestartPolicyNever, "3", func(s Status) bool {
			return s.Phase == corev1.PodFailed && s.Reason == "Error" && s.Containers[0].LastExit == "Error (exit code 3)"
		}},
		{"OnFailure keeps a completed container", corev1.RestartPolicyOnFailure, "0", func(s Status) bool {
			return s.Phase == corev1.PodSucceeded && s.Reason == "Completed" && s.Containers[0].LastExit == "Completed (exit code 0)"
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "127.42.1."+strconv.Itoa(i+2))
			c := h.container(corev1.EnvVar{Name: "EXIT", Value: tt.exit})
			p := h.start(h.config(corev1.PodSpec{RestartPolicy: tt.policy, Containers: []corev1.Container{c}}))
			h.waitFor("the container to end", tt.want)
			// Nothing more happens: the supervisor has returned, so the
			// status is final; Terminate still completes.
			if st := p.Status(); st.Restarts != 0 || st.Containers[0].Running {
				t.Errorf("status %+v, want no restart", st)
			}
		})
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	for i, policy := range []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure} {
		t.Run(string(policy), func(t *testing.T) {
			h := newHarness(t, "127.42.2."+strconv.Itoa(i+2))
			c := h.container(corev1.EnvVar{Name: "EXIT", Value: "1"})
			h.start(h.config(corev1.PodSpec{RestartPolicy: policy, Containers: []corev1.Container{c}}))
			st := h.waitFor("CrashLoopBackOff", func(s Status) bool { return s.Reason == "CrashLoopBackOff" })
			if st.Containers[0].State != "Waiting" || st.Containers[0].LastExit != "Error (exit code 1)" {
				t.Errorf("status in back-off: %+v", st.Containers[0])
			}
			h.waitFor("four restarts", func(s Status) bool { return s.Restarts >= 4 })
			// Restart 1 is immediate; then BackOff doubling to MaxBackOff.
			var delays []string
			for _, e := range h.eventsWith("BackOff") {
				f := strings.Fields(e.Message)
				delays = append(delays, f[1])
			}
			if len(delays) < 3 || !slices.Equal(delays[:3], []string{"200ms", "400ms", "400ms"}) {
				t.Errorf("back-off delays %q, want 200ms, 400ms, 400ms, ...", delays)
			}
		})
	}
}

func TestLivenessFailureRestartsLikeTermination(t *testing.T) {
	h := newHarness(t, "127.42.3.2")
	c := h.container()
	c.StartupProbe = httpProbe("/healthz", 1, 30)
	c.LivenessProbe = httpProbe("/healthz", 1, 1)
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"testpod", "mark", h.mark(), "prestop"}}}}
	h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))
	st := h.waitFor("ready", func(s Status) bool { return s.Ready })
	oldPID := st.Containers[0].PID
	h.waitFor("serving", func(Status) bool { _, err := h.get("/healthz"); return err == nil })

	h.mustGet("/set?live=0")
	st = h.waitFor("restart", func(s Status) bool {
		return s.Restarts == 1 && s.Containers[0].Running && s.Containers[0].PID != oldPID
	})
	killing := h.eventsWith("Killing")
	if len(killing) != 1 || killing[0].Message != "Container app failed liveness probe, will be restarted" {
		t.Errorf("Killing events %v", killing)
	}
	newPID := st.Containers[0].PID
	h.waitFor("new process up", func(Status) bool { return slices.Contains(h.marks(), "start_"+strconv.Itoa(newPID)) })
	m := h.marks()
	order := []string{"start_" + strconv.Itoa(oldPID), "prestop", "sigterm_" + strconv.Itoa(oldPID), "start_" + strconv.Itoa(newPID)}
	assertOrder(t, m, order)
}

// assertOrder checks that want appear in got in that order.
func assertOrder(t *testing.T, got, want []string) {
	t.Helper()
	last := -1
	for _, w := range want {
		i := slices.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("marks %q, want %q in this order", got, want)
		}
		last = i
	}
}

func TestTerminate(t *testing.T) {
	t.Run("preStop, SIGTERM, SIGKILL after the grace period", func(t *testing.T) {
		h := newHarness(t, "127.42.4.2")
		c := h.container(corev1.EnvVar{Name: "ON_SIGTERM", Value: "ignore"})
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Exec: &corev1.ExecAction{Command: []string{"testpod", "mark", h.mark(), "prestop"}}}}
		p := h.start(h.config(corev1.PodSpec{TerminationGracePeriodSeconds: grace(1), Containers: []corev1.Container{c}}))
		st := h.waitFor("ready", func(s Status) bool { return s.Ready })
		pid := strconv.Itoa(st.Containers[0].PID)
		h.waitFor("serving", func(Status) bool { _, err := h.get("/healthz"); return err == nil })

		began := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- p.Terminate(context.Background()) }()
		h.waitFor("terminating", func(s Status) bool { return s.Terminating && !s.Ready && s.Reason == "Terminating" })
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Terminate did not return")
		}
		<-p.Done()
		if took := time.Since(began); took < minKillGrace {
			t.Errorf("killed after %s, before the 2s the kubelet leaves after SIGTERM", took)
		}
		assertOrder(t, h.marks(), []string{"start_" + pid, "prestop", "sigterm_" + pid})
		st = p.Status()
		if exit := st.Containers[0].LastExit; exit != "Error (exit code 137, signal killed)" || st.Containers[0].Running {
			t.Errorf("container after the grace period: %+v", st.Containers[0])
		}
		if e := h.eventsWith("Killing"); len(e) != 1 || e[0].Message != "Stopping container app" {
			t.Errorf("Killing events %v", e)
		}
		if err := p.Terminate(context.Background()); err != nil {
			t.Errorf("second Terminate: %v", err)
		}
	})
	t.Run("graceful exit on SIGTERM", func(t *testing.T) {
		h := newHarness(t, "127.42.4.3")
		p := h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{h.container()}}))
		h.waitFor("serving", func(Status) bool { _, err := h.get("/healthz"); return err == nil })
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := p.Terminate(ctx); err != nil {
			t.Fatal(err)
		}
		if exit := p.Status().Containers[0].LastExit; exit != "Completed (exit code 0)" {
			t.Errorf("LastExit %q", exit)
		}
		if m := h.marks(); len(m) == 0 || !strings.HasPrefix(m[len(m)-1], "exit_") {
			t.Errorf("marks %q, want a clean exit last", m)
		}
	})
	t.Run("context end kills at once", func(t *testing.T) {
		h := newHarness(t, "127.42.4.4")
		c := h.container()
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 600}}}
		p := h.start(h.config(corev1.PodSpec{TerminationGracePeriodSeconds: grace(900), Containers: []corev1.Container{c}}))
		h.waitFor("running", func(s Status) bool { return s.Containers[0].Running })
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if err := p.Terminate(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Terminate = %v, want the context's error", err)
		}
		select {
		case <-p.Done():
		default:
			t.Fatal("Done not closed after Terminate returned")
		}
		if exit := p.Status().Containers[0].LastExit; exit != "Error (exit code 137, signal killed)" {
			t.Errorf("LastExit %q", exit)
		}
	})
}

func TestKilledProcessRestartsNotReadyUntilProbePasses(t *testing.T) {
	h := newHarness(t, "127.42.5.2")
	c := h.container(corev1.EnvVar{Name: "READY_AFTER", Value: "1500ms"})
	c.ReadinessProbe = httpProbe("/readyz", 1, 1)
	p := h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))
	st := h.waitFor("ready", func(s Status) bool { return s.Ready })
	pid := st.Containers[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = h.waitFor("restart", func(s Status) bool { return s.Restarts == 1 && s.Containers[0].Running })
	if st.Ready || st.Containers[0].Ready {
		t.Errorf("ready right after the restart, before its readiness probe passed: %+v", st)
	}
	if st.Containers[0].LastExit != "Error (exit code 137, signal killed)" {
		t.Errorf("LastExit %q", st.Containers[0].LastExit)
	}
	st = h.waitFor("ready again", func(s Status) bool { return s.Ready })
	if st.Containers[0].PID == pid || st.Restarts != 1 {
		t.Errorf("status %+v", st)
	}
	_ = p
}

func TestExecProbe(t *testing.T) {
	h := newHarness(t, "127.42.6.2")
	flag := filepath.Join(h.dir, "ready-flag")
	c := h.container()
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"testpod", "cat", flag}}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))
	h.waitFor("an exec probe failure", func(Status) bool {
		for _, e := range h.eventsWith("Unhealthy") {
			if strings.Contains(e.Message, "Readiness probe failed: command \"testpod cat") {
				return true
			}
		}
		return false
	})
	if h.pod.Status().Ready {
		t.Fatal("ready while the exec probe fails")
	}
	if err := os.WriteFile(flag, []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitFor("ready", func(s Status) bool { return s.Ready })
}

func TestStartupProbeFailureRestarts(t *testing.T) {
	h := newHarness(t, "127.42.7.2")
	c := h.container()
	c.StartupProbe = httpProbe("/nope", 1, 2)
	c.ReadinessProbe = httpProbe("/readyz", 1, 1)
	h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))
	st := h.waitFor("a restart", func(s Status) bool { return s.Restarts >= 1 })
	if st.Ready || st.Started {
		t.Errorf("pod whose startup probe never passed: %+v", st)
	}
	if e := h.eventsWith("Killing"); len(e) == 0 || e[0].Message != "Container app failed startup probe, will be restarted" {
		t.Errorf("Killing events %v", e)
	}
}

func TestPortInUse(t *testing.T) {
	h := newHarness(t, "127.42.8.2")
	l, err := net.Listen("tcp", net.JoinHostPort(h.ip.String(), strconv.Itoa(h.port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first := h.container()
	first.Name = "first"
	first.Ports = []corev1.ContainerPort{{ContainerPort: int32(h.port) + 1}}
	second := h.container()
	_, err = Start(h.config(corev1.PodSpec{Containers: []corev1.Container{first, second}}))
	want := "kubelet: pod testpod-1: containerPort " + strconv.Itoa(h.port) + " on 127.42.8.2 is in use: "
	if !errors.Is(err, ErrPortInUse) || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Start = %v, want ErrPortInUse %q...", err, want)
	}
	assertNoProcessWith(t, "MARK="+h.mark())
}

func TestStartFailureLeavesNothingRunning(t *testing.T) {
	h := newHarness(t, "127.42.9.2")
	notExe := filepath.Join(h.dir, "not-executable")
	if err := os.WriteFile(notExe, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := h.container()
	second.Name, second.Image, second.Ports = "broken", "broken", nil
	cfg := h.config(corev1.PodSpec{Containers: []corev1.Container{h.container(), second}})
	resolve := cfg.Binary
	cfg.Binary = func(image string) (string, error) {
		if image == "broken" {
			return notExe, nil
		}
		return resolve(image)
	}
	_, err := Start(cfg)
	if err == nil || !strings.Contains(err.Error(), "container broken: start") {
		t.Fatalf("Start = %v, want a start error for container broken", err)
	}
	assertNoProcessWith(t, "MARK="+h.mark())
}

// assertNoProcessWith fails if any process has kv in its environment.
func assertNoProcessWith(t *testing.T, kv string) {
	t.Helper()
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range envs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(b), "\x00"), kv) {
			t.Errorf("process %s still running with %s", filepath.Base(filepath.Dir(f)), kv)
		}
	}
}

func TestCPUTime(t *testing.T) {
	h := newHarness(t, "127.42.10.2")
	p := h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{h.container()}}))
	h.waitFor("serving", func(Status) bool { _, err := h.get("/healthz"); return err == nil })
	before := p.CPUTime()
	h.mustGet("/burn?ms=500")
	busy := p.CPUTime()
	// /proc counts in 10ms ticks, truncating utime and stime separately.
	if busy-before < 450*time.Millisecond {
		t.Errorf("CPU time grew by %s while the process burnt 500ms", busy-before)
	}
	_, _ = h.get("/crash?code=1") // the connection dies with the process
	h.waitFor("restart", func(s Status) bool { return s.Restarts == 1 && s.Containers[0].Running })
	if after := p.CPUTime(); after < busy {
		t.Errorf("CPU time fell from %s to %s when the process exited", busy, after)
	}
}

func TestResolvConf(t *testing.T) {
	h := newHarness(t, "127.42.11.2")
	resolv := filepath.Join(h.dir, "resolv.conf")
	content := "nameserver 127.0.2.10\nsearch test.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if err := os.WriteFile(resolv, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cat := h.container()
	cat.Name, cat.Ports = "cat", nil
	cat.Command = []string{"testpod", "cat", "/etc/resolv.conf"}
	// An exec probe runs in the container's mount namespace too.
	server := h.container(corev1.EnvVar{Name: "PATH", Value: "/nonexistent"})
	server.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"testpod", "grep", "/etc/resolv.conf", "search test.svc"}}},
		PeriodSeconds: 1,
	}
	cfg := h.config(corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{cat, server}})
	cfg.ResolvConf = resolv
	h.start(cfg)
	h.waitFor("cat to complete", func(s Status) bool { return s.Containers[0].Reason == "Completed" })
	out, err := os.ReadFile(filepath.Join(h.dir, "testpod-1_cat.log"))
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if string(out) != content {
			t.Errorf("container saw /etc/resolv.conf:\n%s\nwant:\n%s", out, content)
		}
		h.waitFor("the exec probe to see the pod's resolv.conf", func(s Status) bool { return s.Containers[1].Ready })
	} else if string(out) == content {
		t.Errorf("not root, yet the container saw the pod's resolv.conf")
	}
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(host) == content {
		t.Error("the host's /etc/resolv.conf was replaced")
	}
}

func TestPostStartFailureRestarts(t *testing.T) {
	h := newHarness(t, "127.42.12.2")
	c := h.container()
	c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"testpod", "exit", "7"}}}}
	h.start(h.config(corev1.PodSpec{Containers: []corev1.Container{c}}))
	h.waitFor("a restart", func(s Status) bool { return s.Restarts >= 1 })
	e := h.eventsWith("FailedPostStartHook")
	if len(e) == 0 || !strings.Contains(e[0].Message, "exit status 7") {
		t.Errorf("FailedPostStartHook events %v", e)
	}
}
