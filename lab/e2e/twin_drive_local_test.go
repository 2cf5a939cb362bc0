//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTwinDriverHold runs the twin's in-flight driver against labecho
// processes on loopback (no cluster), with the pods' views scripted: the
// held requests follow the level, spread evenly, move to a pod when it
// turns ready and off one being deleted, and while moving the total never
// dips below the level. Each phase lasts 2.5 s, so that the state has
// settled when it is checked.
func TestTwinDriverHold(t *testing.T) {
	addrs := startLabechos(t, "a", "b", "c")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const phase = 2500 * time.Millisecond
	at := func(k float64) time.Duration { return time.Duration(k * float64(phase)) }
	t0 := time.Now().Add(at(1))
	steps := []loadStep{{0, 5}, {at(1), 9}, {at(3), 4}}
	ready := func(names ...string) map[string]podView {
		v := map[string]podView{}
		for _, n := range names {
			v[n] = podView{addr: addrs[n], ready: true}
		}
		return v
	}
	// The pods' views: a alone in the warm-up, b ready at t0, a deleted
	// and c ready at t0 + 2 phases.
	script := []struct {
		at   time.Duration
		view map[string]podView
	}{
		{-at(1), ready("a")},
		{0, ready("a", "b")},
		{at(2), func() map[string]podView {
			v := ready("b", "c")
			v["a"] = podView{addr: addrs["a"], ready: true, deleting: true}
			return v
		}()},
	}
	drv := &twinDriver{steps: steps, t0: t0, end: t0.Add(at(4)), inFlight: true,
		watch: func(ctx context.Context, views chan map[string]podView) {
			for _, s := range script {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(t0.Add(s.at))):
				}
				select {
				case <-views:
				default:
				}
				views <- s.view
			}
			<-ctx.Done()
		}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); drv.run(ctx) }()
	wg.Wait()

	held := drv.Held()
	countsAt := func(d time.Duration) map[string]int {
		c := map[string]int{}
		for _, h := range held {
			if h.At > d {
				break
			}
			c[h.Pod] += h.Delta
		}
		return c
	}
	var log strings.Builder
	for _, h := range held {
		fmt.Fprintf(&log, "%v %s %+d; ", h.At.Round(time.Millisecond), h.Pod, h.Delta)
	}
	// At the end of each phase: the level, spread evenly.
	for _, c := range []struct {
		at   time.Duration
		want map[string][2]int // pod: lowest and highest count
	}{
		{-at(0.05), map[string][2]int{"a": {5, 5}}},
		{at(0.95), map[string][2]int{"a": {2, 3}, "b": {2, 3}}},
		{at(1.95), map[string][2]int{"a": {4, 5}, "b": {4, 5}}},
		{at(2.95), map[string][2]int{"b": {4, 5}, "c": {4, 5}}},
		{at(3.95), map[string][2]int{"b": {2, 2}, "c": {2, 2}}},
	} {
		got := countsAt(c.at)
		for _, pod := range []string{"a", "b", "c"} {
			w := c.want[pod]
			if got[pod] < w[0] || got[pod] > w[1] {
				t.Errorf("at %v: held %v, want %v (log %s)", c.at, got, c.want, log.String())
				break
			}
		}
	}
	// While moving, a request ends only when the others hold the level.
	total := 0
	reached := false
	for _, h := range held {
		total += h.Delta
		level := int(valueAt(steps, h.At))
		if h.At < 0 {
			level = int(steps[0].Value)
		}
		reached = reached || total >= level
		if reached && h.Delta < 0 && total < level && h.At < at(4) {
			t.Errorf("at %v the total dipped to %d below the level %d (log %s)", h.At, total, level, log.String())
			break
		}
	}
}

// startLabechos builds labecho and runs one process per name on loopback,
// each stopped when the test ends, and returns their addresses once they
// answer.
func startLabechos(t *testing.T, names ...string) map[string]string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "labecho")
	build := exec.Command("go", "build", "-o", bin, "./cmd/labecho")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build labecho: %v\n%s", err, out)
	}
	addrs := map[string]string{}
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "PORT="+port, "POD_NAME="+name, "DRAIN_DELAY=100ms")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		addrs[name] = addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, addr := range addrs {
		err := poll(ctx, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
		if err != nil {
			t.Fatalf("labecho %s: %v", name, err)
		}
	}

	return addrs
}

// TestTwinDriverBurn runs the CPU driver against two labecho processes:
// level/twinBurn requests a second, in turn over the serving pods.
func TestTwinDriverBurn(t *testing.T) {
	addrs := startLabechos(t, "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	// 400 millicores for 2 s: 40 requests of 20 ms.
	drv := &twinDriver{steps: []loadStep{{0, 400}}, t0: t0, end: t0.Add(2 * time.Second),
		watch: func(ctx context.Context, views chan map[string]podView) {
			views <- map[string]podView{"a": {addr: addrs["a"], ready: true}, "b": {addr: addrs["b"], ready: true}, "x": {addr: "", ready: true}}
			<-ctx.Done()
		}}
	drv.run(ctx)
	total := map[string]int{}
	for name, addr := range addrs {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var line string
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "http_requests_total ") {
				line = l
			}
		}
		var n int
		if _, err := fmt.Sscanf(line, "http_requests_total %d", &n); err != nil {
			t.Fatalf("%s: no http_requests_total in %q", name, body)
		}
		total[name] = n
	}
	// The first tick may pass before the view arrives.
	if sum := total["a"] + total["b"]; sum < 36 || sum > 40 || total["a"]-total["b"] > 1 || total["b"]-total["a"] > 1 {
		t.Errorf("requests per pod %v, want 36 to 40 in all, in turn", total)
	}
}

// TestBurnsDue checks the CPU driver's credit: what the curve asks for
// over the time since the last tick, so a tick that came late (a ticker
// drops ticks while its reader is not scheduled) loses nothing.
func TestBurnsDue(t *testing.T) {
	s := time.Second
	steps := []loadStep{{0, 100}, {10 * s, 400}}
	for _, tt := range []struct {
		name     string
		from, to time.Duration
		want     float64
	}{
		{"one tick", 0, 50 * time.Millisecond, 0.25},
		{"a tick 300 ms late", 0, 350 * time.Millisecond, 1.75},
		{"across a step", 9500 * time.Millisecond, 10500 * time.Millisecond, 12.5},
		{"before the curve, its first step", -2 * s, -s, 5},
		{"after the last step", 20 * s, 21 * s, 20},
		{"nothing", 3 * s, 3 * s, 0},
	} {
		if got := burnsDue(steps, tt.from, tt.to); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: burnsDue(%v, %v) = %v, want %v", tt.name, tt.from, tt.to, got, tt.want)
		}
	}
}
