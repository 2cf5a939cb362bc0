//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestNodeMeter burns CPU in real processes and reads the node with two
// meters over the same interval: one that counts the burner as the lab,
// one that does not. What the first leaves out is the burner's time.
func TestNodeMeter(t *testing.T) {
	tests := []struct {
		name string
		// start runs the burner; it returns the meter that counts it
		// as the lab and the PID whose /proc times grow by the burn.
		start func(t *testing.T, dir string) (*nodeMeter, int)
	}{
		{
			name: "a process the lab names",
			start: func(t *testing.T, dir string) (*nodeMeter, int) {
				cmd := burner(t, "while :; do :; done")
				pid := cmd.Process.Pid
				return &nodeMeter{Lab: func(p int, _ string) bool { return p == pid }}, pid
			},
		},
		{
			// kube-proxy's iptables runs: gone before the next read,
			// their time is in the component's reaped children.
			name: "children a component reaped",
			start: func(t *testing.T, dir string) (*nodeMeter, int) {
				cmd := burner(t, `while :; do sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; done`)
				pid := cmd.Process.Pid
				if err := os.WriteFile(filepath.Join(dir, "burner.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return &nodeMeter{PIDDir: dir}, pid
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lab, pid := tt.start(t, t.TempDir())
			all := &nodeMeter{}
			t0 := time.Now()
			for _, m := range []*nodeMeter{lab, all} {
				if _, _, _, err := m.read(t0); err != nil {
					t.Fatal(err)
				}
			}
			before := burnerTime(t, pid)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for burnerTime(t, pid)-before < 2*time.Second {
				select {
				case <-ctx.Done():
					t.Fatalf("the burner used %v of CPU in a minute", burnerTime(t, pid)-before)
				case <-time.After(100 * time.Millisecond):
				}
			}
			now := time.Now()
			inLab, _, _, err := lab.read(now)
			if err != nil {
				t.Fatal(err)
			}
			outside, _, _, err := all.read(now)
			if err != nil {
				t.Fatal(err)
			}
			burnt := burnerTime(t, pid) - before
			// The two reads of each meter are a few milliseconds apart;
			// the burner runs on between them.
			if d := outside - inLab; d < burnt-300*time.Millisecond || d > burnt+300*time.Millisecond {
				t.Errorf("counting the burner as the lab took %v off the time outside it (%v → %v); the burner used %v", d, outside, inLab, burnt)
			}
			if outside < burnt-300*time.Millisecond {
				t.Errorf("the node was busy %v outside the lab while the burner alone used %v", outside, burnt)
			}
		})
	}
}

// burner runs sh -c script until the test ends.
func burner(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// burnerTime is the CPU a process and the children it reaped used.
func burnerTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	st, err := readProcStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.own + st.reaped
}

func TestNodeBusy(t *testing.T) {
	at := func(s int, v float64) nodeReading { return nodeReading{At: time.Duration(s) * time.Second, Outside: v} }
	tests := []struct {
		name       string
		rs         []nodeReading
		mean, peak float64
	}{
		{"none", nil, 0, 0},
		{"shorter than a window", []nodeReading{at(1, 0.2), at(2, 0.4)}, 0.3, 0.3},
		{"quiet", []nodeReading{at(1, 0), at(2, 0.1), at(3, 0), at(4, 0.1)}, 0.05, 0.05},
		// A burst of two seconds at one core fills a 2 s window.
		{"burst", []nodeReading{at(1, 0), at(2, 0), at(3, 1), at(4, 1), at(5, 0), at(6, 0)}, 1.0 / 3, 1},
		{"a burst at the end counts no fuller than its window", []nodeReading{at(1, 0), at(2, 0), at(3, 0), at(4, 1)}, 0.25, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mean, peak := nodeBusy(tt.rs, 2*time.Second, time.Second)
			if !near(mean, tt.mean) || !near(peak, tt.peak) {
				t.Errorf("nodeBusy = %.3f, %.3f; want %.3f, %.3f", mean, peak, tt.mean, tt.peak)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestNodeLog runs the log on the real node until it holds two readings,
// then cuts them out relative to a record's start.
func TestNodeLog(t *testing.T) {
	l := &nodeLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx, &nodeMeter{}, 50*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.readings)
		l.mu.Unlock()
		if n >= 2 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the log held %d readings after 30s", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	l.mu.Lock()
	first, second := l.readings[0], l.readings[1]
	start := l.start
	l.mu.Unlock()
	if !(first.At > 0 && second.At > first.At) || first.Outside < 0 || first.Outside > 64 {
		t.Fatalf("readings %+v, %+v", first, second)
	}
	// A record whose T0 is the second reading, its span from the first.
	t0 := start.Add(second.At)
	got, err := l.between(t0, start.Add(first.At), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].At != first.At-second.At || got[1].At != 0 || got[0].Outside != first.Outside {
		t.Errorf("between = %+v, want the two readings at %v and 0", got, first.At-second.At)
	}
	if got, _ := l.between(t0, t0.Add(time.Hour), t0.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("between a span after the readings = %+v, want none", got)
	}
}
