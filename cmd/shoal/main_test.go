package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain runs the command itself when a test starts this binary with
// SHOAL_TEST_MAIN=1, so that tests can signal a real shoal process.
func TestMain(m *testing.M) {
	if os.Getenv("SHOAL_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type codeErr int

func (c codeErr) Error() string { return fmt.Sprintf("code %d", int(c)) }
func (c codeErr) ExitCode() int { return int(c) }

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"plain error", errors.New("boom"), 2},
		{"findings", codeErr(1), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestRootRegistersSubcommands(t *testing.T) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"demo", "get", "hpa", "image", "lint", "load", "rollout", "up"} {
		if !strings.Contains(out.String(), "\n  "+sub+" ") {
			t.Errorf("shoal --help does not list %q:\n%s", sub, out.String())
		}
	}
	root = newRootCommand()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"no-such-command"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
}

// TestInterruptStopsTune runs `shoal hpa tune` as a process on a week of
// demand through an HPA of up to 100 pods (minutes of work), waits for
// its progress line, and interrupts it as Ctrl-C does: it must stop
// promptly, saying where, with a non-zero status.
func TestInterruptStopsTune(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "hpa.yaml")
	if err := os.WriteFile(spec, []byte(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 100
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("time,value\n")
	for i := 0; i < 7*24*60; i++ {
		fmt.Fprintf(&csv, "%d,%.2f\n", i*60, 20+15*math.Sin(float64(i)/(24*60)*2*math.Pi))
	}
	curve := filepath.Join(dir, "week.csv")
	if err := os.WriteFile(curve, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "hpa", "tune", "-f", spec, "--csv", curve, "--pod-capacity", "0.1")
	cmd.Env = append(os.Environ(), "SHOAL_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var seen []string
	for lines.Scan() {
		seen = append(seen, lines.Text())
		if strings.HasPrefix(lines.Text(), "tune: ") {
			break
		}
	}
	if len(seen) == 0 || !strings.HasPrefix(seen[len(seen)-1], "tune: ") {
		t.Fatalf("no progress line before the output ended: %q", seen)
	}
	interrupted := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		seen = append(seen, lines.Text())
	}
	err = cmd.Wait()
	took := time.Since(interrupted)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v after the interrupt, want status 2; stderr %q", err, seen)
	}
	if ctx.Err() != nil {
		t.Fatalf("still running %s after the interrupt", took)
	}
	last := seen[len(seen)-1]
	if !strings.Contains(last, "stopped at") || !strings.Contains(last, "context canceled") {
		t.Errorf("last stderr line %q, want where it stopped and why", last)
	}
	if stdout.Len() != 0 {
		t.Errorf("an interrupted search printed a result: %q", stdout.String())
	}
	t.Logf("stopped %s after the interrupt: %q", took.Round(time.Millisecond), seen)
}

// TestInterruptStopsLint runs `shoal lint` as a process on a folder of
// thousands of objects (seconds of work, more under -race) and interrupts
// it once its signal handling is in place: it must stop with status 2
// saying so, not print a report and pass.
func TestInterruptStopsLint(t *testing.T) {
	dir := t.TempDir()
	for f := range 40 {
		var b strings.Builder
		for i := range 100 {
			fmt.Fprintf(&b, `apiVersion: apps/v1
kind: Deployment
metadata: {name: d%[1]d-%[2]d}
spec:
  selector: {matchLabels: {app: a%[1]d-%[2]d}}
  template:
    metadata: {labels: {app: a%[1]d-%[2]d}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Service
metadata: {name: s%[1]d-%[2]d}
spec: {selector: {app: a%[1]d-%[2]d}, ports: [{port: 80}]}
---
`, f, i)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", f)), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// main asks for SIGINT first thing; until then an interrupt kills the
	// process. Each try waits longer before it interrupts, until one lands
	// after main's start: that one must stop the lint, not let it finish.
	for wait := time.Millisecond; ; wait *= 2 {
		killed, stdout, stderr, err := interruptLint(t, dir, wait)
		if killed {
			if wait > 10*time.Second {
				t.Fatal("each interrupt killed the process before main")
			}
			continue
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr, "lint: stopped: context canceled") {
			t.Fatalf("exit %v after an interrupt %s in, want status 2 saying it stopped; stderr %q", err, wait, stderr)
		}
		if stdout != "" {
			t.Errorf("an interrupted lint printed a report: %.200q", stdout)
		}
		t.Logf("stopped by an interrupt %s after the start", wait)
		return
	}
}

// interruptLint starts `shoal lint dir`, interrupts it after wait, and
// returns how it ended: killed by the signal, or its output and error.
func interruptLint(t *testing.T, dir string, wait time.Duration) (killed bool, stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "lint", dir)
	cmd.Env = append(os.Environ(), "SHOAL_TEST_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(wait)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("still running two minutes after the interrupt")
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == -1 {
		return true, "", "", nil
	}
	return false, out.String(), errOut.String(), err
}
