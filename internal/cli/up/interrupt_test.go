package up_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// trapper is the "app" image of the interrupt test: it logs its start and
// its SIGTERM to $LOG, and runs until told to stop.
const trapper = `#!/bin/sh
echo "start $POD_NAME" >> "$LOG"
trap 'echo "sigterm $POD_NAME" >> "$LOG"; kill $child; exit 0' TERM
sleep 600 &
child=$!
wait $child
`

// trapManifest runs two trapper pods behind a Service; their preStop hook
// logs to the same file, so the file orders hook and signal.
const trapManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 2
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      terminationGracePeriodSeconds: 20
      containers:
        - name: app
          image: app
          env:
            - {name: LOG, value: "DIR/events.log"}
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports:
            - {name: http, containerPort: 8080}
          readinessProbe:
            exec: {command: ["/bin/sh", "-c", "grep -q \"start $POD_NAME\" \"$LOG\""]}
            periodSeconds: 1
            timeoutSeconds: 5
          lifecycle:
            preStop:
              exec: {command: ["/bin/sh", "-c", "echo \"prestop $POD_NAME\" >> \"$LOG\"; sleep 1"]}
---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: app}
  ports:
    - {name: http, port: 80, targetPort: http}
`

var dashboardLine = regexp.MustCompile(`dashboard\s+http://(\S+)/`)

// TestInterruptStopsInOrder runs the shoal command as a user would and
// interrupts it as Ctrl-C does, with SIGINT to its process group: it must
// stop its pods as the kubelet does (preStop hook, then SIGTERM), say so,
// leave no process and no listener, and exit 0.
func TestInterruptStopsInOrder(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("the cluster DNS on port 53 needs root")
	}
	n := netsOf("127.0.37.0/24", "127.0.38.0/24")
	dir := t.TempDir()
	script := filepath.Join(dir, "app.sh")
	if err := os.WriteFile(script, []byte(trapper), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(trapManifest, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cmd := exec.Command(bins.shoal, "up", "-f", manifest,
		"--image", "app="+script,
		"--addr", "127.0.0.1:0", "--ingress-addr", "-",
		"--pod-net", n.pod.String(), "--service-net", n.service.String(),
		"--run-dir", filepath.Join(dir, "run"), "--log-level", "warn")
	// Its own process group, as a terminal's foreground job: the SIGINT
	// below reaches every process in it, as Ctrl-C does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait() // after the last read of the pipe, as Wait wants
	}()
	t.Cleanup(func() {
		// A failed test leaves nothing running either.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for range lines {
		}
	})

	var out []string
	api := ""
	for api == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("shoal up ended before its summary: %v\n%s\n%s", <-exited, strings.Join(out, "\n"), stderr)
			}
			out = append(out, l)
			if m := dashboardLine.FindStringSubmatch(l); m != nil {
				api = m[1]
			}
		case <-ctx.Done():
			t.Fatalf("no summary from shoal up: %v\n%s\n%s", ctx.Err(), strings.Join(out, "\n"), stderr)
		}
	}
	client := newAPIClient(api)
	defer client.close()
	s, err := client.waitFor(ctx, "both pods ready", allReady)
	if err != nil {
		t.Fatal(err)
	}
	pods := podsOf(s, "app")
	if len(pods) != 2 {
		t.Fatalf("want 2 pods:\n%s", describe(s))
	}
	var pids []int
	for _, p := range pods {
		pids = append(pids, p.PIDs...)
	}
	// The /proc scan finds the pods' processes while they run, so that it
	// finding none at the end means something.
	running := processesUnder(t, dir)
	for _, pid := range pids {
		if !slices.ContainsFunc(running, func(p string) bool { return strings.HasPrefix(p, strconv.Itoa(pid)+" ") }) {
			t.Fatalf("pod PID %d not found by the /proc scan: %v", pid, running)
		}
	}
	if ln := socketsIn(t, n); !slices.Contains(ln, "tcp 127.0.38.11:80") || !slices.Contains(ln, "udp 127.0.38.10:53") {
		t.Fatalf("the /proc/net scan misses the Service front door or the DNS server: %v", ln)
	}

	interruptedAt := time.Now()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		out = append(out, l)
	}
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-ctx.Done():
		t.Fatalf("shoal up did not exit after SIGINT: %v\n%s", ctx.Err(), strings.Join(out, "\n"))
	}
	stopTime := time.Since(interruptedAt)
	t.Logf("exited %s after SIGINT: %v\nstdout:\n%s\nstderr:\n%s", stopTime.Round(time.Millisecond), exitErr, strings.Join(out, "\n"), stderr)
	if exitErr != nil {
		t.Errorf("exit: %v, want status 0", exitErr)
	}
	stopping := slices.IndexFunc(out, func(l string) bool { return strings.HasPrefix(l, "stopping") })
	stopped := slices.Index(out, "stopped")
	if stopping < 0 || stopped < stopping || stopped != len(out)-1 {
		t.Errorf("want a stopping line, then stopped last; got\n%s", strings.Join(out, "\n"))
	}

	// The kubelet's order, pod by pod: started, preStop hook, SIGTERM.
	events, err := os.ReadFile(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("events.log:\n%s", events)
	got := strings.Split(strings.TrimSpace(string(events)), "\n")
	for _, p := range pods {
		var order []string
		for _, l := range got {
			if what, name, _ := strings.Cut(l, " "); name == p.Name {
				order = append(order, what)
			}
		}
		if !slices.Equal(order, []string{"start", "prestop", "sigterm"}) {
			t.Errorf("pod %s: got %v, want [start prestop sigterm]", p.Name, order)
		}
	}
	if ps := processesUnder(t, dir); len(ps) > 0 {
		t.Errorf("processes left after exit:\n%s", strings.Join(ps, "\n"))
	}
	if ln := socketsIn(t, n); len(ln) > 0 {
		t.Errorf("sockets left on %s and %s: %v", n.pod, n.service, ln)
	}
}
