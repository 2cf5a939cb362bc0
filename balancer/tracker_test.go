package balancer

import (
	"log/slog"
	"slices"
	"testing"
	"time"
)

func newTestTracker(t *testing.T, cfg TrackerConfig) (*Tracker, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	cfg.Now, cfg.Rand = clk.Now, seqRand(1)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, clk
}

func mustEndpoint(t *testing.T, tr *Tracker, addr string) *Endpoint {
	t.Helper()
	e, ok := tr.Endpoint(addr)
	if !ok {
		t.Fatalf("%s not listed", addr)
	}
	return e
}

func TestTrackerValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  TrackerConfig
		ok   bool
	}{
		{name: "zero", ok: true},
		{name: "hash", cfg: TrackerConfig{Policy: ConsistentHash{Replicas: 10}}, ok: true},
		{name: "negative slow start", cfg: TrackerConfig{SlowStart: -time.Second}},
		{name: "negative failures", cfg: TrackerConfig{Ejection: Ejection{ConsecutiveFailures: -1}}},
		{name: "bad policy", cfg: TrackerConfig{Policy: PeakEWMA{Decay: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestTrackerUpdateKeepsStatistics: an endpoint listed again is the same
// *Endpoint; slow start applies only to endpoints after the first Update.
func TestTrackerUpdateKeepsStatistics(t *testing.T) {
	tr, clk := newTestTracker(t, TrackerConfig{Policy: PeakEWMA{}, SlowStart: 10 * time.Second})
	tr.Update([]string{"10.0.0.1:80", "10.0.0.2:80", "bad"})
	a := mustEndpoint(t, tr, "10.0.0.1:80")
	if _, ok := tr.Endpoint("bad"); ok {
		t.Error("an address without a port is listed")
	}
	if w := a.Weight(tr.Nanotime()); w != 1 {
		t.Errorf("first resolution's endpoint weight %v, want 1 (no slow start)", w)
	}
	tr.Start(a)
	clk.Advance(time.Millisecond)
	tr.Update([]string{"10.0.0.1:80", "10.0.0.3:80"})
	if mustEndpoint(t, tr, "10.0.0.1:80") != a || a.InFlight() != 1 {
		t.Error("a listed endpoint lost its statistics")
	}
	if _, ok := tr.Endpoint("10.0.0.2:80"); ok {
		t.Error("an endpoint no longer listed is still there")
	}
	c := mustEndpoint(t, tr, "10.0.0.3:80")
	if w := c.Weight(tr.Nanotime()); w >= 1 {
		t.Errorf("later endpoint's weight %v, want slow start below 1", w)
	}
	clk.Advance(10 * time.Second)
	if w := c.Weight(tr.Nanotime()); w != 1 {
		t.Errorf("weight after the window %v, want 1", w)
	}
	tr.Finish(a, 0, 0, OutcomeAbandoned)
	if a.InFlight() != 0 {
		t.Errorf("in flight %d after Finish, want 0", a.InFlight())
	}
}

// TestTrackerEjection drives outcomes through Finish, as package
// grpcclient does, and checks ejection as Ejection documents it.
func TestTrackerEjection(t *testing.T) {
	addrs := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}
	for _, tc := range []struct {
		name     string
		outcomes []Outcome
		ejected  bool
	}{
		{name: "successes", outcomes: []Outcome{OutcomeSuccess, OutcomeSuccess}},
		{name: "four failures", outcomes: slices.Repeat([]Outcome{OutcomeFailure}, 4)},
		{name: "five failures", outcomes: slices.Repeat([]Outcome{OutcomeFailure}, 5), ejected: true},
		{name: "failures broken by a success", outcomes: []Outcome{
			OutcomeFailure, OutcomeFailure, OutcomeFailure, OutcomeSuccess, OutcomeFailure, OutcomeFailure, OutcomeFailure}},
		{name: "three timeouts", outcomes: slices.Repeat([]Outcome{OutcomeTimeout}, 3), ejected: true},
		// Each success forgives a tenth of a timeout: 2.8 do not eject.
		{name: "timeouts between successes", outcomes: []Outcome{OutcomeTimeout, OutcomeSuccess, OutcomeTimeout, OutcomeSuccess, OutcomeTimeout}},
		{name: "refused", outcomes: []Outcome{OutcomeRefused}, ejected: true},
		{name: "shed and abandoned", outcomes: slices.Repeat([]Outcome{OutcomeShed, OutcomeAbandoned}, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, clk := newTestTracker(t, TrackerConfig{Policy: RoundRobin{}})
			tr.Update(addrs)
			e := mustEndpoint(t, tr, addrs[0])
			for _, o := range tc.outcomes {
				start := tr.PickInfo("").Now
				tr.Start(e)
				clk.Advance(time.Millisecond)
				tr.Finish(e, start, 0, o)
			}
			if got := len(tr.Ejected()) == 1; got != tc.ejected {
				t.Errorf("ejected %v, want %v", tr.Ejected(), tc.ejected)
			}
			if e.InFlight() != 0 {
				t.Errorf("in flight %d, want 0", e.InFlight())
			}
		})
	}
}

// TestTrackerMaxPercent: at most half the listed endpoints are ejected,
// and a refused endpoint listed again returns at once.
func TestTrackerMaxPercent(t *testing.T) {
	addrs := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}
	tr, _ := newTestTracker(t, TrackerConfig{})
	tr.Update(addrs)
	for _, a := range addrs {
		e := mustEndpoint(t, tr, a)
		tr.Start(e)
		tr.Finish(e, tr.Nanotime(), 0, OutcomeRefused)
	}
	if got := tr.Ejected(); len(got) != 2 {
		t.Fatalf("ejected %v, want 2 of 4 (MaxPercent 50)", got)
	}
	tr.Update(addrs)
	if got := tr.Ejected(); len(got) != 0 {
		t.Errorf("ejected %v after a resolution listing them again, want none", got)
	}
}

// TestTrackerBuildSeedsLatency: an endpoint not measured yet starts at
// its peers' mean latency, so peak EWMA tries it.
func TestTrackerBuildSeedsLatency(t *testing.T) {
	tr, clk := newTestTracker(t, TrackerConfig{Policy: PeakEWMA{}})
	tr.Update([]string{"10.0.0.1:80", "10.0.0.2:80"})
	a, b := mustEndpoint(t, tr, "10.0.0.1:80"), mustEndpoint(t, tr, "10.0.0.2:80")
	start := tr.Nanotime()
	tr.Start(a)
	clk.Advance(time.Millisecond)
	tr.Finish(a, start, 0, OutcomeSuccess)
	p := tr.Build([]*Endpoint{a, b})
	now := tr.Nanotime()
	if la, lb := a.Latency(now, float64(DefaultDecay)), b.Latency(now, float64(DefaultDecay)); la != lb {
		t.Errorf("latency of the unmeasured endpoint %v, want its peer's %v", lb, la)
	}
	seen := map[*Endpoint]int{}
	for range 100 {
		seen[p.Pick(tr.PickInfo(""))]++
	}
	if seen[b] == 0 {
		t.Errorf("the unmeasured endpoint got no pick: %v", seen)
	}
}

// TestTrackerKey: ConsistentHash takes the key from PickInfo.Key.
func TestTrackerKey(t *testing.T) {
	tr, _ := newTestTracker(t, TrackerConfig{Policy: ConsistentHash{}})
	addrs := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	tr.Update(addrs)
	eps := make([]*Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = mustEndpoint(t, tr, a)
	}
	p := tr.Build(eps)
	for _, key := range []string{"a", "b", "c", "sha256:00ff"} {
		first := p.Pick(tr.PickInfo(key))
		for range 20 {
			if e := p.Pick(tr.PickInfo(key)); e != first {
				t.Fatalf("key %q went to %s, then %s", key, first.Addr(), e.Addr())
			}
		}
	}
}
