//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The gRPC tests drive their load with the project's own `shoal load`, run
// as a process the way a user runs it, and read its JSON report: totals,
// errors by kind and each replica's share per time window.

// buildShoal returns the shoal that e2e.sh built from the repository
// (LAB_SHOAL), or builds cmd/shoal into a temporary folder when the tests
// run without it.
func buildShoal(t *testing.T, l *lab) string {
	t.Helper()
	if bin := os.Getenv("LAB_SHOAL"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("LAB_SHOAL: %v", err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "shoal")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/shoal")
	cmd.Dir = l.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build shoal: %v\n%s", err, out)
	}
	return bin
}

// loadReport is the part of `shoal load -o json`'s report the tests read.
type loadReport struct {
	Start       time.Time `json:"start"`
	Interrupted bool      `json:"interrupted"`
	Requests    struct {
		Scheduled, Sent, Dropped, Completed, OK int64
	} `json:"requests"`
	Errors        map[string]int64  `json:"errors"`
	ErrorSamples  map[string]string `json:"error_samples"`
	Replicas      []loadReplica     `json:"replicas"`
	WindowSeconds float64           `json:"window_seconds"`
	Windows       []struct {
		StartSeconds float64       `json:"start_seconds"`
		Scheduled    int64         `json:"scheduled"`
		Completed    int64         `json:"completed"`
		Errors       int64         `json:"errors"`
		Replicas     []loadReplica `json:"replicas"`
	} `json:"windows"`
}

type loadReplica struct {
	Name     string `json:"name"`
	Requests int64  `json:"requests"`
}

// loadKindCanceled is the error kind of the requests that the end of an
// interrupted run cut short: the test's own stop, not a lost call.
const loadKindCanceled = "canceled"

// loadTotals sums up the reports of clients run together.
type loadTotals struct {
	Scheduled, OK, Lost int64
	// LostKinds names each kind of loss with its count and first message.
	LostKinds string
	Replicas  map[string]int64
}

// sumReports adds up reports; a call is lost when it failed for any reason
// but the test stopping the run (dropped ones included).
func sumReports(reps ...*loadReport) loadTotals {
	tot := loadTotals{Replicas: map[string]int64{}}
	lost := map[string]int64{}
	sample := map[string]string{}
	for _, r := range reps {
		tot.Scheduled += r.Requests.Scheduled
		tot.OK += r.Requests.OK
		for kind, c := range r.Errors {
			if kind == loadKindCanceled {
				continue
			}
			lost[kind] += c
			if sample[kind] == "" {
				sample[kind] = r.ErrorSamples[kind]
			}
		}
		if r.Requests.Dropped > 0 && r.Errors["dropped"] == 0 {
			lost["dropped"] += r.Requests.Dropped
		}
		for _, rep := range r.Replicas {
			tot.Replicas[rep.Name] += rep.Requests
		}
	}
	var kinds []string
	for kind, c := range lost {
		tot.Lost += c
		kinds = append(kinds, fmt.Sprintf("%s=%d (%s)", kind, c, sample[kind]))
	}
	sort.Strings(kinds)
	tot.LostKinds = strings.Join(kinds, "; ")
	return tot
}

// shareSeries is the windows of one or more runs on one clock: several
// `shoal load` processes are several clients, each with its own windows.
type shareSeries struct {
	window time.Duration
	runs   int
	wins   []timedWindow
}

type timedWindow struct {
	start    time.Time
	replicas map[string]int64
}

func mergeReports(reps ...*loadReport) shareSeries {
	var s shareSeries
	for _, r := range reps {
		s.window = time.Duration(r.WindowSeconds * float64(time.Second))
		s.runs++
		for _, win := range r.Windows {
			tw := timedWindow{start: r.Start.Add(time.Duration(win.StartSeconds * float64(time.Second))), replicas: map[string]int64{}}
			for _, rep := range win.Replicas {
				tw.replicas[rep.Name] += rep.Requests
			}
			s.wins = append(s.wins, tw)
		}
	}
	return s
}

// counts sums the replicas' calls over the windows that lie wholly within
// [from, to), and returns them with the span covered (per run).
func (s shareSeries) counts(from, to time.Time) (map[string]int64, time.Duration) {
	out := map[string]int64{}
	var n int
	for _, w := range s.wins {
		if w.start.Before(from) || w.start.Add(s.window).After(to) {
			continue
		}
		n++
		for name, c := range w.replicas {
			out[name] += c
		}
	}
	if s.runs == 0 {
		return out, 0
	}
	return out, time.Duration(n) * s.window / time.Duration(s.runs)
}

// slots sums the runs' windows from from on by the window-long slot their
// start falls in, and returns the sums with the last slot's index (-1 for
// none).
func (s shareSeries) slots(from time.Time) (map[int]map[string]int64, int) {
	slots := map[int]map[string]int64{}
	last := -1
	for _, w := range s.wins {
		if w.start.Before(from) {
			continue
		}
		i := int(w.start.Sub(from) / s.window)
		if slots[i] == nil {
			slots[i] = map[string]int64{}
		}
		for name, c := range w.replicas {
			slots[i][name] += c
		}
		last = max(last, i)
	}
	return slots, last
}

// firstShare returns, for each replica named, how long after from the
// first window-long slot began in which it served at least share of the
// calls ([shareSeries.slots]), or -1 if none did.
func (s shareSeries) firstShare(names []string, from time.Time, share float64) map[string]time.Duration {
	slots, last := s.slots(from)
	out := map[string]time.Duration{}
	for _, n := range names {
		out[n] = -1
	}
	for i := 0; i <= last; i++ {
		var total int64
		for _, c := range slots[i] {
			total += c
		}
		for name, c := range slots[i] {
			if d, ok := out[name]; (!ok || d < 0) && total > 0 && float64(c) >= share*float64(total) {
				out[name] = time.Duration(i) * s.window
			}
		}
	}
	return out
}

// timeline formats, for each window-long slot from from on (the runs'
// windows summed by the slot their start falls in), the calls each
// replica named served: what a failed share check shows, so the log says
// when a replica lost its share and whether it came back.
func (s shareSeries) timeline(names []string, from time.Time) string {
	slots, last := s.slots(from)
	var b strings.Builder
	fmt.Fprintf(&b, "%8s", "at")
	for i := range names {
		fmt.Fprintf(&b, " %6s", fmt.Sprintf("pod%d", i))
	}
	b.WriteString("\n")
	for i := 0; i <= last; i++ {
		fmt.Fprintf(&b, "%8s", time.Duration(i)*s.window)
		for _, n := range names {
			fmt.Fprintf(&b, " %6d", slots[i][n])
		}
		b.WriteString("\n")
	}
	for i, n := range names {
		fmt.Fprintf(&b, "pod%d = %s\n", i, n)
	}
	return b.String()
}

// loadProc is a running `shoal load`.
type loadProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan error
}

// startLoad starts `shoal load ARGS... -o json --quiet`; stop ends it.
// The process dies with ctx if the test never stops it.
func startLoad(ctx context.Context, t *testing.T, bin string, args ...string) *loadProc {
	t.Helper()
	p := &loadProc{done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, bin, append(append([]string{"load"}, args...), "-o", "json", "--quiet")...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start shoal load: %v", err)
	}
	t.Logf("shoal load %s", strings.Join(args, " "))
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop interrupts the run (SIGINT: shoal load stops scheduling, cancels
// what is in flight and writes its report) and returns the report.
func (p *loadProc) stop(t *testing.T) *loadReport {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("interrupt shoal load: %v", err)
	}
	return p.wait(t)
}

// wait waits for the run to end and returns its report; an exit status of
// 1 (more errors than --max-errors) still has a report.
func (p *loadProc) wait(t *testing.T) *loadReport {
	t.Helper()
	err := <-p.done
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("shoal load: %v\nstderr: %s", err, p.stderr.String())
	}
	var r loadReport
	if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
		t.Fatalf("shoal load report: %v\nstdout: %.2000s\nstderr: %s", err, p.stdout.String(), p.stderr.String())
	}
	return &r
}

func TestLoadReportCounts(t *testing.T) {
	const js = `{"start":"2026-01-01T00:00:00Z","window_seconds":1,
	"requests":{"scheduled":10,"dropped":1},
	"errors":{"canceled":3,"dropped":1,"Unavailable":2},"error_samples":{"Unavailable":"no pod"},
	"windows":[
	 {"start_seconds":0,"replicas":[{"name":"a","requests":10}]},
	 {"start_seconds":1,"replicas":[{"name":"a","requests":6},{"name":"b","requests":4}]},
	 {"start_seconds":2,"replicas":[{"name":"a","requests":5},{"name":"b","requests":5}]},
	 {"start_seconds":3,"replicas":[{"name":"b","requests":1}]}]}`
	var r loadReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	t0 := r.Start
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	two := r
	two.Start = sec(0.5)
	tests := []struct {
		name     string
		series   shareSeries
		from, to time.Time
		want     map[string]int64
		span     time.Duration
	}{
		{name: "all", series: mergeReports(&r), from: sec(0), to: sec(4), want: map[string]int64{"a": 21, "b": 10}, span: 4 * time.Second},
		{name: "partial windows left out", series: mergeReports(&r), from: sec(0.5), to: sec(3.5), want: map[string]int64{"a": 11, "b": 9}, span: 2 * time.Second},
		{name: "none", series: mergeReports(&r), from: sec(5), to: sec(9), want: map[string]int64{}, span: 0},
		{name: "two runs, span per run", series: mergeReports(&r, &two), from: sec(0.5), to: sec(4.5), want: map[string]int64{"a": 32, "b": 20}, span: 3500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, span := tt.series.counts(tt.from, tt.to)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || span != tt.span {
				t.Errorf("counts: got %v over %s, want %v over %s", got, span, tt.want, tt.span)
			}
		})
	}
	first := mergeReports(&r).firstShare([]string{"a", "b", "c"}, sec(0), 0.45)
	for name, want := range map[string]time.Duration{"a": 0, "b": 2 * time.Second, "c": -1} {
		if first[name] != want {
			t.Errorf("firstShare %s: got %v, want %v", name, first[name], want)
		}
	}
	tot := sumReports(&r, &two)
	if tot.Lost != 6 || tot.LostKinds != "Unavailable=4 (no pod); dropped=2 ()" || tot.Replicas["a"] != 0 {
		t.Errorf("sumReports: got %+v, want 6 lost, the canceled left out", tot)
	}
}
