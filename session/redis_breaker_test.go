package session

import (
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func mustAllow(t *testing.T, b *breaker) bool {
	t.Helper()
	ok, trial := b.allow()
	if !ok {
		t.Fatal("breaker refused a call it should let through")
	}
	return trial
}

func TestBreaker(t *testing.T) {
	type step struct {
		name    string
		advance time.Duration
		call    outcome // outcome of an allowed call; refused calls ignore it
		want    string  // "pass", "trial" or "refuse"
		open    bool    // state after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"stays closed below the threshold", []step{
			{"fail 1", 0, failed, "pass", false},
			{"fail 2", 0, failed, "pass", false},
			{"answer resets", 0, answered, "pass", false},
			{"fail 1 again", 0, failed, "pass", false},
			{"fail 2 again", 0, failed, "pass", false},
		}},
		{"opens, refuses, then lets one trial through", []step{
			{"fail 1", 0, failed, "pass", false},
			{"fail 2", 0, failed, "pass", false},
			{"fail 3 opens", 0, failed, "pass", true},
			{"refused at once", 10 * time.Millisecond, answered, "refuse", true},
			{"still refused before the cooldown", 980 * time.Millisecond, answered, "refuse", true},
			{"trial after the cooldown fails", 10 * time.Millisecond, failed, "trial", true},
			{"refused for another cooldown", 500 * time.Millisecond, answered, "refuse", true},
			{"trial that answers closes", 500 * time.Millisecond, answered, "trial", false},
			{"closed again", 0, answered, "pass", false},
		}},
		{"a caller that gives up says nothing", []step{
			{"fail 1", 0, failed, "pass", false},
			{"fail 2", 0, failed, "pass", false},
			{"unknown does not count", 0, unknown, "pass", false},
			{"fail 3 opens", 0, failed, "pass", true},
			{"unknown trial releases the trial only", time.Second, unknown, "trial", true},
			{"next trial", 0, answered, "trial", false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			b := newBreaker(0, 0, clk.now)
			for _, s := range tt.steps {
				clk.add(s.advance)
				ok, trial := b.allow()
				got := "refuse"
				switch {
				case ok && trial:
					got = "trial"
				case ok:
					got = "pass"
				}
				if got != s.want {
					t.Fatalf("%s: allow = %s, want %s", s.name, got, s.want)
				}
				if ok {
					b.done(s.call, trial)
				}
				if b.open() != s.open {
					t.Fatalf("%s: open = %v, want %v", s.name, b.open(), s.open)
				}
			}
		})
	}
}

// TestBreakerOneTrialAtATime: while a trial is in flight, other calls are
// refused, so a hung store gets one call per cooldown, not a stampede.
func TestBreakerOneTrialAtATime(t *testing.T) {
	clk := newFakeClock()
	b := newBreaker(1, time.Second, clk.now)
	mustAllow(t, b)
	b.done(failed, false)
	clk.add(time.Second)
	if !mustAllow(t, b) {
		t.Fatal("first call after the cooldown is not the trial")
	}
	if ok, _ := b.allow(); ok {
		t.Fatal("a second call went through while the trial is in flight")
	}
	b.done(answered, true)
	if mustAllow(t, b) {
		t.Fatal("a call after the breaker closed is marked as a trial")
	}
}

// TestBreakerPingCloses: a health check's ping bypasses the breaker, and
// its success closes it at once.
func TestBreakerPingCloses(t *testing.T) {
	clk := newFakeClock()
	b := newBreaker(1, time.Minute, clk.now)
	mustAllow(t, b)
	b.done(failed, false)
	b.done(answered, false) // a ping
	if b.open() {
		t.Fatal("breaker still open after a ping answered")
	}
}
