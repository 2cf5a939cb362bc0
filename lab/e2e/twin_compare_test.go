//go:build e2e

package e2e

import (
	"math"
	"testing"
	"time"
)

// These tests need no cluster: go test -tags e2e -run 'TestTwin' ./e2e/ (TestTwin itself is skipped without SHOAL_LAB_TWIN=1).

func TestTwinCompare(t *testing.T) {
	s := time.Second
	d := func(at time.Duration, r int32) decision { return decision{At: at, Replicas: r} }
	twin := []decision{d(2*s, 1), d(7*s, 1), d(12*s, 3), d(17*s, 3), d(22*s, 2)}
	tests := []struct {
		name string
		real []decision
		want comparison
	}{
		{name: "all equal", real: []decision{d(2*s, 1), d(7*s, 1), d(12*s, 3), d(17*s, 3), d(22*s, 2)},
			want: comparison{Decisions: 5, Equal: 5, Changes: 2, ChangesEqual: 2}},
		{name: "real a sync late", real: []decision{d(2*s, 1), d(7*s, 1), d(12*s, 1), d(17*s, 3), d(22*s, 3)},
			want: comparison{Decisions: 5, Equal: 3, WithinOne: 2, Changes: 1, ChangesWithinOne: 1}},
		{name: "real a sync early", real: []decision{d(2*s, 1), d(7*s, 3), d(12*s, 3), d(17*s, 2), d(22*s, 2)},
			want: comparison{Decisions: 5, Equal: 3, WithinOne: 2, Changes: 2, ChangesWithinOne: 2}},
		{name: "a value the twin never had near", real: []decision{d(2*s, 4), d(7*s, 1)},
			want: comparison{Decisions: 2, Equal: 1, Worse: 1, Changes: 1, Misses: []string{"at 2s: real 4, twin 1"}}},
		{name: "matched by nearest time, jitter inside half a period", real: []decision{d(2400*time.Millisecond, 1), d(11600*time.Millisecond, 3)},
			want: comparison{Decisions: 2, Equal: 2, Changes: 1, ChangesEqual: 1}},
		{name: "no twin sync near", real: []decision{d(40*s, 2)},
			want: comparison{Decisions: 1, Worse: 1, Misses: []string{"at 40s: real 2, no twin sync"}}},
		{name: "nothing to compare", want: comparison{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := compareDecisions(tt.real, twin, 5*s)
			if got.Decisions != tt.want.Decisions || got.Equal != tt.want.Equal || got.WithinOne != tt.want.WithinOne ||
				got.Worse != tt.want.Worse || got.Changes != tt.want.Changes || got.ChangesEqual != tt.want.ChangesEqual ||
				got.ChangesWithinOne != tt.want.ChangesWithinOne || len(got.Misses) != len(tt.want.Misses) {
				t.Fatalf("compareDecisions = %+v, want %+v", got, tt.want)
			}
			for i := range got.Misses {
				if got.Misses[i] != tt.want.Misses[i] {
					t.Errorf("miss %d = %q, want %q", i, got.Misses[i], tt.want.Misses[i])
				}
			}
		})
	}
}

func TestTwinSyncPhase(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		writes []time.Duration
		want   time.Duration
	}{
		{name: "on one phase", writes: []time.Duration{2300 * ms, 7300 * ms, 42300 * ms}, want: 2300 * ms},
		{name: "jitter around it", writes: []time.Duration{2200 * ms, 7400 * ms, 12300 * ms}, want: 2300 * ms},
		{name: "either side of the period", writes: []time.Duration{4900 * ms, 10100 * ms}, want: 0},
		{name: "either side, not balanced", writes: []time.Duration{4800 * ms, 10000 * ms, 15000 * ms, 20200 * ms}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := syncPhase(tt.writes, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if absDur(got-tt.want) > 2*ms && absDur(got-tt.want-5*time.Second) > 2*ms {
				t.Errorf("syncPhase = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := syncPhase(nil, 5*time.Second); err == nil {
		t.Error("syncPhase(nil) gave no error")
	}
}

func TestTwinSyncClock(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name        string
		writes      []time.Duration
		wantPhase   time.Duration
		wantPeriod  time.Duration
		wantErrText bool
	}{
		{name: "exact 5s", writes: []time.Duration{-8 * time.Second, 2 * time.Second, 7 * time.Second, 22 * time.Second}, wantPhase: 2 * time.Second, wantPeriod: 5 * time.Second},
		// 40 ms of work per sync: 15 s between writes is three syncs.
		{name: "drifting, writes skip syncs", writes: []time.Duration{5790 * ms, 20910 * ms, 25950 * ms, 36030 * ms, 61230 * ms},
			wantPhase: 750 * ms, wantPeriod: 5040 * ms},
		{name: "one write", writes: []time.Duration{time.Second}, wantErrText: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ph, p, err := syncClock(tt.writes, 5*time.Second)
			if tt.wantErrText {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if absDur(p-tt.wantPeriod) > 2*ms || absDur(ph-tt.wantPhase) > 10*ms {
				t.Errorf("syncClock = phase %v period %v, want %v and %v", ph, p, tt.wantPhase, tt.wantPeriod)
			}
		})
	}
}

func TestTwinAtSyncTimes(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	times := []time.Duration{2 * s, 7 * s, 12 * s, 17 * s}
	tests := []struct {
		name   string
		writes []decision
		want   []int32
	}{
		{name: "no writes hold the initial count", want: []int32{1, 1, 1, 1}},
		{name: "a write holds until the next", writes: []decision{{At: 7050 * ms, Replicas: 3}, {At: 17020 * ms, Replicas: 2}},
			want: []int32{1, 3, 3, 2}},
		{name: "a write just before its sync's time", writes: []decision{{At: 6990 * ms, Replicas: 4}}, want: []int32{1, 4, 4, 4}},
		{name: "two writes in one sync: the last", writes: []decision{{At: 12 * s, Replicas: 2}, {At: 12100 * ms, Replicas: 3}}, want: []int32{1, 1, 3, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := atSyncTimes(tt.writes, 1, times, 5*s)
			if len(got) != len(tt.want) {
				t.Fatalf("atSyncTimes = %v, want %d syncs", got, len(tt.want))
			}
			for i, g := range got {
				if g.At != times[i] || g.Replicas != tt.want[i] {
					t.Errorf("sync %d = %+v, want at %v replicas %d", i, g, times[i], tt.want[i])
				}
			}
		})
	}
}

func TestTwinCurves(t *testing.T) {
	for _, c := range twinCurves() {
		t.Run(c.Name, func(t *testing.T) {
			if c.Duration > 3*time.Minute || c.Steps[0].At != 0 {
				t.Errorf("curve runs %v from %v, want at most 3m from 0", c.Duration, c.Steps[0].At)
			}
			lo, hi := math.Inf(1), 0.0
			for i, st := range c.Steps {
				if i > 0 && st.At <= c.Steps[i-1].At || st.At%curveStep != 0 {
					t.Fatalf("step %d at %v: not after the last, or off the %v grid", i, st.At, curveStep)
				}
				lo, hi = math.Min(lo, st.Value), math.Max(hi, st.Value)
			}
			// Both directions within 1..4 replicas.
			if lo > 1 || hi < 3 || hi > 4 {
				t.Errorf("load from %v to %v pods' worth, want from at most 1 to 3..4", lo, hi)
			}
			for _, st := range c.scaled(2, 1) {
				if st.Value != math.Round(st.Value) {
					t.Errorf("scaled to whole requests, step %+v is not whole", st)
				}
			}
		})
	}
}

func TestTwinEvenSplit(t *testing.T) {
	tests := []struct {
		name string
		n    int
		pods []string
		now  map[string]int
		want map[string]int
	}{
		{name: "no pods", n: 3, want: map[string]int{}},
		{name: "even", n: 6, pods: []string{"a", "b", "c"}, want: map[string]int{"a": 2, "b": 2, "c": 2}},
		{name: "the remainder stays where it is", n: 7, pods: []string{"a", "b", "c"}, now: map[string]int{"c": 3, "a": 2, "b": 2},
			want: map[string]int{"a": 2, "b": 2, "c": 3}},
		{name: "a new pod takes its share", n: 7, pods: []string{"a", "b"}, now: map[string]int{"a": 7},
			want: map[string]int{"a": 4, "b": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evenSplit(tt.n, tt.pods, tt.now)
			if len(got) != len(tt.want) {
				t.Fatalf("evenSplit = %v, want %v", got, tt.want)
			}
			for p, n := range tt.want {
				if got[p] != n {
					t.Errorf("evenSplit = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestTwinInFlightTotal(t *testing.T) {
	s := time.Second
	scrapes := []podScrapes{
		{Pod: "a", At: []time.Duration{1 * s, 6 * s, 11 * s}, Value: []float64{2, 3, 4}},
		{Pod: "b", At: []time.Duration{4 * s, 9 * s}, Value: []float64{5, 6}}, // gone after 9s
	}
	tests := []struct {
		at     time.Duration
		want   float64
		wantOK bool
	}{
		{at: 0, wantOK: false},
		{at: 2 * s, want: 2, wantOK: true},
		{at: 5 * s, want: 7, wantOK: true},
		{at: 10 * s, want: 9, wantOK: true},
		{at: 16 * s, want: 4, wantOK: true}, // b stale
	}
	for _, tt := range tests {
		got, ok := inFlightTotal(scrapes, tt.at, 6*s)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("inFlightTotal(%v) = %v, %v; want %v, %v", tt.at, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestTwinCPUReadings(t *testing.T) {
	s := time.Second
	samples := []cpuSample{
		{Pod: "a", Measured: 10 * s, Window: 15 * s, Seen: 11 * s, Value: 40},
		{Pod: "b", Measured: 10 * s, Window: 15 * s, Seen: 11 * s, Value: 20},
		{Pod: "a", Measured: 25 * s, Window: 15 * s, Seen: 26 * s, Value: 50},
	}
	got := cpuReadings(samples, 10*s, 26*s, 8*s)
	want := []cpuReading{{At: 18 * s, Measured: 10 * s, Window: 15 * s, Value: 60}, {At: 26 * s, Measured: 25 * s, Window: 15 * s, Value: 70}}
	if len(got) != len(want) {
		t.Fatalf("cpuReadings = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reading %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestTwinScrapeModel measures each pod's scrape phase and discovery: the
// first pod was there before the warm-up, the second made during the run
// and first scraped 3.2 s after, the third never scraped (the medians).
func TestTwinScrapeModel(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	ready := func(d time.Duration) *time.Duration { return &d }
	pods := []twinPod{
		{Name: "old", Created: -2 * time.Minute, Deleted: ready(-time.Minute)}, // gone before the curve
		{Name: "a", Created: -time.Minute},
		{Name: "b", Created: 20 * s, Ready: ready(21 * s)},
		{Name: "c", Created: 50 * s},
	}
	scrapes := []podScrapes{
		{Pod: "a", At: []time.Duration{-9 * s, -4 * s, 1 * s, 6 * s}, Value: []float64{1, 1, 1, 1}},
		{Pod: "b", At: []time.Duration{23200 * ms, 28200 * ms, 33200 * ms}, Value: []float64{1, 1, 1}, Failed: []time.Duration{13200 * ms, 38200 * ms}, FailedFor: []time.Duration{0, 3 * s}},
	}
	m, err := scrapeModel(pods, scrapes, 5*s)
	if err != nil {
		t.Fatal(err)
	}
	want := []podClock{{Phase: s, Discovery: 0}, {Phase: 3200 * ms, Discovery: 700 * ms}, {Phase: m.Phase, Discovery: 700 * ms}}
	if len(m.Pods) != len(want) {
		t.Fatalf("clocks %+v, want %+v", m.Pods, want)
	}
	for i := range want {
		if absDur(m.Pods[i].Phase-want[i].Phase) > ms || m.Pods[i].Discovery != want[i].Discovery {
			t.Errorf("pod %d clock %+v, want %+v", i, m.Pods[i], want[i])
		}
	}
	if m.Delay != 0 || m.Resolution != 5*s {
		t.Errorf("model %+v, want no delay and a 5s resolution", m)
	}
	// b's failed scrapes join its samples in time order, readable once
	// they ended (the second took 3 s); the phase and discovery come
	// from its scrapes that worked.
	var failed []time.Duration
	for i, smp := range m.Pods[1].Samples {
		if i > 0 && smp.Seen < m.Pods[1].Samples[i-1].Seen {
			t.Errorf("b's samples out of order: %+v", m.Pods[1].Samples)
		}
		if smp.Failed {
			failed = append(failed, smp.At)
			if want := map[time.Duration]time.Duration{13200 * ms: 13200 * ms, 38200 * ms: 41200 * ms}[smp.At]; smp.Seen != want {
				t.Errorf("failed sample %+v readable at %v, want %v", smp, smp.Seen, want)
			}
		}
	}
	if len(failed) != 2 || failed[0] != 13200*ms || failed[1] != 38200*ms || len(m.Pods[1].Samples) != 5 {
		t.Errorf("b's samples %+v, want its 3 scrapes and the failed ones at 13.2 s and 38.2 s", m.Pods[1].Samples)
	}
}

// TestTwinSyncTimes spreads the syncs between the writes that pin them:
// the syncs drift by 10 ms each up to 22 s and by 50 ms each after.
func TestTwinSyncTimes(t *testing.T) {
	ms := time.Millisecond
	writes := []time.Duration{2000 * ms, 12020 * ms, 22040 * ms, 42240 * ms}
	phase, period, err := syncClock(writes, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := syncTimes(writes, phase, period, 50*time.Second)
	want := []time.Duration{2000 * ms, 7010 * ms, 12020 * ms, 17030 * ms, 22040 * ms, 27090 * ms, 32140 * ms, 37190 * ms, 42240 * ms, 47240*ms + (period - 5*time.Second)}
	if len(got) != len(want) {
		t.Fatalf("syncTimes = %v, want %v", got, want)
	}
	for i := range want {
		if absDur(got[i]-want[i]) > 2*ms {
			t.Errorf("sync %d at %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	real := atSyncTimes([]decision{{At: 12030 * ms, Replicas: 3}}, 1, got[:4], period)
	if real[1].Replicas != 1 || real[2].Replicas != 3 || real[3].Replicas != 3 {
		t.Errorf("atSyncTimes = %v, want 1 until the write at 12.03s, 3 from its sync", real)
	}
}

// TestTwinCurvePods numbers the pods as the twin does and dates a new pod
// from the sync that made it.
func TestTwinCurvePods(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	at := func(d time.Duration) *time.Duration { return &d }
	rec := twinRecord{Pods: []twinPod{
		{Name: "b", Created: 12100 * ms, Ready: at(12900 * ms)},
		{Name: "old", Created: -time.Minute, Deleted: at(-s)},
		{Name: "a", Created: -time.Minute, Ready: at(-time.Minute + s)},
		{Name: "c", Created: 40 * s},
	}}
	pods := rec.curvePods([]time.Duration{2 * s, 7 * s, 12 * s, 17 * s}, 5*s)
	if len(pods) != 3 || pods[0].Name != "a" || pods[1].Name != "b" || pods[2].Name != "c" {
		t.Fatalf("curvePods = %+v, want a, b, c", pods)
	}
	if pods[1].Created != 12*s || pods[2].Created != 40*s {
		t.Errorf("b made at %v, c at %v; want 12s (its sync) and 40s (no sync near)", pods[1].Created, pods[2].Created)
	}
	ups := podStartups(pods, 3*s)
	if ups[0] != 0 || ups[1] != 900*ms || ups[2] != 3*s {
		t.Errorf("podStartups = %v, want [0 900ms 3s]", ups)
	}
}

// TestTwinCompareSynthetic runs the twin's whole comparison (the sync
// clock, the pipeline models, the scenario files and `shoal hpa simulate`
// on them) on a made-up record of each autoscaler, without the lab: every
// real sync must find its twin.
func TestTwinCompareSynthetic(t *testing.T) {
	shoal := twinShoal(t, "../..")
	s, ms := time.Second, time.Millisecond
	at := func(d time.Duration) *time.Duration { return &d }
	c := twinCurves()[0]
	for _, a := range twinAutoscalers() {
		t.Run(a.name, func(t *testing.T) {
			rec := twinRecord{Curve: c.Name, Autoscaler: a.name, Steps: c.scaled(a.unit, a.quantum), Initial: 1,
				Pods: []twinPod{{Name: "p0", Created: -time.Minute, Ready: at(-59 * s)}, {Name: "p1", Created: 22500 * ms, Ready: at(23200 * ms)}}}
			for k := 0; ; k++ {
				w := -20*s + 1700*ms + time.Duration(k)*5020*ms
				if w > c.Duration {
					break
				}
				d := int32(1)
				if w > 22*s {
					d = 2
				}
				rec.Writes = append(rec.Writes, twinWrite{At: w, Desired: d})
			}
			pods := func(t time.Duration) float64 {
				if t > 23200*ms {
					return 2
				}
				return 1
			}
			if a.name == "cpu" {
				for m := -40*s + 7200*ms; m <= c.Duration; m += 15 * s {
					rec.CPU = append(rec.CPU, cpuSample{Pod: "p0", Measured: m, Window: 15 * s, Seen: m + 700*ms, Value: valueAt(rec.Steps, m) / pods(m)})
					if m-15*s > 22500*ms {
						rec.CPU = append(rec.CPU, cpuSample{Pod: "p1", Measured: m, Window: 15 * s, Seen: m + 700*ms, Value: valueAt(rec.Steps, m) / 2})
					}
				}
			} else {
				p0, p1 := podScrapes{Pod: "p0"}, podScrapes{Pod: "p1"}
				for m := -40*s + 1300*ms; m <= c.Duration; m += 5 * s {
					p0.At, p0.Value = append(p0.At, m), append(p0.Value, valueAt(rec.Steps, m)/pods(m))
					if m+2600*ms > 26*s {
						p1.At, p1.Value = append(p1.At, m+2600*ms), append(p1.Value, valueAt(rec.Steps, m+2600*ms)/2)
					}
				}
				rec.Scrapes = []podScrapes{p0, p1}
			}
			res := twinCompare(t, shoal, t.TempDir(), rec, c, a)
			if res.Modelled.Decisions < 30 || res.Recorded.Decisions < 30 || res.Modelled.Worse+res.Recorded.Worse == res.Modelled.Decisions+res.Recorded.Decisions {
				t.Errorf("modelled %+v, recorded %+v: want every sync compared", res.Modelled, res.Recorded)
			}
		})
	}
}
