package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	quietPeers()
	goleak.VerifyTestMain(m,
		// The peers start these when their packages initialize or their
		// shedders are first made, and never stop them.
		goleak.IgnoreAnyFunction("github.com/zeromicro/go-zero/core/proc.init.1.func1"),
		goleak.IgnoreAnyFunction("github.com/zeromicro/go-zero/core/stat.init.1.func1"),
		goleak.IgnoreAnyFunction("github.com/zeromicro/go-zero/core/load.(*SheddingStat).loop"),
		// go-zero's stat.Metrics flushes drops on a goroutine that ends
		// only after a minute idle.
		goleak.IgnoreAnyFunction("github.com/zeromicro/go-zero/core/executors.(*PeriodicalExecutor).backgroundFlush.func1"),
		goleak.IgnoreAnyFunction("github.com/go-kratos/aegis/ratelimit/bbr.cpuproc"),
		goleak.IgnoreAnyFunction("github.com/go-kratos/aegis/internal/cpu.init.0.func1"),
	)
}

func ms2d(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func TestQuantile(t *testing.T) {
	tests := []struct {
		name string
		in   []float64 // ms, sorted
		q    float64
		want float64
	}{
		{"empty", nil, 0.99, 0},
		{"one", []float64{7}, 0.5, 7},
		{"median of four", []float64{1, 2, 3, 4}, 0.5, 2},
		{"p99 of a hundred", seq(100), 0.99, 99},
		{"p99 of ten is the largest", seq(10), 0.99, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d []time.Duration
			for _, v := range tt.in {
				d = append(d, ms2d(v))
			}
			if got := quantile(d, tt.q); got != ms2d(tt.want) {
				t.Fatalf("quantile(%v, %g) = %v, want %vms", tt.in, tt.q, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one", []float64{7}, 7},
		{"odd, unsorted", []float64{300, 200, 250}, 250},
		{"even: the mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
		{"one outlier does not move it", []float64{200, 210, 205, 400, 190}, 205},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Fatalf("median(%v) = %g, want %g", tt.in, got, tt.want)
			}
		})
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

// steady returns one sample every 10ms over [from, to) with the latency
// and outcome given.
func steady(from, to time.Duration, latency time.Duration, out outcome) []sample {
	var ss []sample
	for at := from; at < to; at += 10 * time.Millisecond {
		ss = append(ss, sample{at: at, latency: latency, out: out})
	}
	return ss
}

func TestSummarize(t *testing.T) {
	var ss []sample
	ss = append(ss, steady(0, time.Second, ms2d(99), answered)...) // warm-up: outside the step
	ss = append(ss, steady(time.Second, 2*time.Second, ms2d(5), answered)...)
	ss = append(ss, steady(time.Second+5*time.Millisecond, 2*time.Second, ms2d(1), rejected)...)
	ss = append(ss, sample{at: 1500 * time.Millisecond, latency: time.Second, out: timedOut})
	s := summarize(ss, time.Second, time.Second)
	if s.total != 201 || s.answered != 100 || s.rejected != 100 || s.timedOut != 1 || s.failed != 0 {
		t.Fatalf("counts %+v", s)
	}
	if s.goodput != 100 || s.p50 != ms2d(5) || s.p99 != ms2d(5) {
		t.Fatalf("goodput %v, p50 %v, p99 %v; want 100/s, 5ms, 5ms", s.goodput, s.p50, s.p99)
	}
}

func TestSettleTime(t *testing.T) {
	const (
		w     = 100 * time.Millisecond
		dur   = 2 * time.Second
		limit = 10 * time.Millisecond
	)
	slow, fast := ms2d(50), ms2d(5)
	tests := []struct {
		name        string
		samples     []sample
		want        time.Duration
		wantSettled bool
	}{
		{"never over", steady(0, dur, fast, answered), 0, true},
		{"over for the first 300ms", append(steady(0, 300*time.Millisecond, slow, answered), steady(300*time.Millisecond, dur, fast, answered)...), 300 * time.Millisecond, true},
		{"a late excursion counts", append(append(steady(0, time.Second, fast, answered), steady(time.Second, 1100*time.Millisecond, slow, answered)...), steady(1100*time.Millisecond, dur, fast, answered)...), 1100 * time.Millisecond, true},
		{"still over at the end", steady(0, dur, slow, answered), dur, false},
		{"timeouts are infinitely slow", append(steady(0, dur, fast, answered), sample{at: 450 * time.Millisecond, out: timedOut}), 500 * time.Millisecond, true},
		{"rejections do not count", append(steady(0, dur, fast, answered), steady(0, dur, slow, rejected)...), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The samples' times are from the step's onset at 1s.
			for i := range tt.samples {
				tt.samples[i].at += time.Second
			}
			got, settled := settleTime(tt.samples, time.Second, dur, w, limit)
			if got != tt.want || settled != tt.wantSettled {
				t.Fatalf("settleTime = %v, %v; want %v, %v", got, settled, tt.want, tt.wantSettled)
			}
		})
	}
}

func TestWindowsOver(t *testing.T) {
	const w = 100 * time.Millisecond
	ss := append(steady(0, 2*time.Second, ms2d(5), answered), sample{at: 1550 * time.Millisecond, out: timedOut}, sample{at: 250 * time.Millisecond, out: timedOut})
	ss = append(ss, steady(0, 2*time.Second, ms2d(1), rejected)...)
	over, judged := windowsOver(ss, 0, time.Second, 2*time.Second, w, ms2d(10))
	if over != 1 || judged != 10 {
		t.Fatalf("windowsOver = %d of %d, want 1 of 10 (the window before 1s is not counted)", over, judged)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config
		wantErr string
	}{
		{"defaults", config{}, ""},
		{"unknown variant", config{variants: []string{"envoy"}}, `unknown variant "envoy"`},
		{"zero level", config{levels: []float64{0}}, "level 0 is not positive"},
		{"bad box", config{box: "maybe"}, `box "maybe"`},
		{"over budget", config{step: time.Minute}, "over its budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.withDefaults().validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestSmoke runs the whole benchmark, briefly, with the servers in this
// process, and checks that every variant answered and every output is
// well formed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers for a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := run(ctx, config{
		inProcess: true,
		levels:    []float64{1, 4},
		// Two connections: under -race on a busy machine eight at once
		// took longer than the timeout, and a capacity of 0 ends the run.
		capacityConns: 2,
		capacityWarm:  200 * time.Millisecond,
		capacityTime:  500 * time.Millisecond,
		warm:          400 * time.Millisecond,
		step:          600 * time.Millisecond,
		timeout:       time.Second,
		progress:      t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Three periods at the start, one after each level's round.
	if got, want := len(res.capacityPeriods), defaultCapacityRuns+2; got != want {
		t.Errorf("%d capacity periods, want %d", got, want)
	}
	if want := median(res.capacityRates()); res.capacity != want {
		t.Errorf("capacity %g, want the median of the periods, %g", res.capacity, want)
	}
	rep := newReport(res)
	if len(rep.rows) != len(allVariants)*2 {
		t.Fatalf("%d rows, want %d", len(rep.rows), len(allVariants)*2)
	}
	// Only the shape is checked: under -race on a busy machine a short
	// step may well answer nothing at 4×.
	for _, r := range rep.rows {
		if r.total == 0 || r.total != r.answered+r.rejected+r.timedOut+r.failed {
			t.Errorf("%s at %g×: %d requests: %d answered, %d rejected, %d timed out, %d failed", r.variant, r.level, r.total, r.answered, r.rejected, r.timedOut, r.failed)
		}
		if r.level == 1 && r.answered == 0 {
			t.Errorf("%s at 1×: nothing answered of %d", r.variant, r.total)
		}
		if r.level == 1 && r.statsEnd == nil {
			t.Errorf("%s at 1×: no stats from the server", r.variant)
		}
		// Work was admitted through the step, and in flight over the
		// limit is at most a little above 1 on average.
		if r.variant == variantShoal && r.statsOnset != nil && r.statsEnd != nil && r.answered > 0 && !(r.utilization > 0 && r.utilization < 2) {
			t.Errorf("shoal at %g×: utilization %g over the step, want in (0, 2)", r.level, r.utilization)
		}
	}

	var md, csvOut, svg bytes.Buffer
	for _, w := range []struct {
		out   io.Writer
		write func(io.Writer) error
	}{{&md, rep.writeMarkdown}, {&csvOut, rep.writeCSV}, {&svg, rep.writeSVG}} {
		if err := w.write(w.out); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(md.String(), "| variant | offered |") || !strings.Contains(md.String(), "Goals for shoal") {
		t.Errorf("markdown lacks the table or the goals:\n%s", md.String())
	}
	records, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(records) != 1+len(rep.rows) {
		t.Errorf("CSV: %d records, %v; want a header and %d rows", len(records), err, len(rep.rows))
	}
	dec := xml.NewDecoder(&svg)
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}
