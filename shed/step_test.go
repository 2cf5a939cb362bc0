package shed_test

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/shed"
)

// round admits up to offered requests, advances the clock by the latency a
// one-worker service of the given base latency gives them (they queue
// behind each other), and releases them. It returns how many it admitted.
func round(l *shed.Limiter, c *clock, base time.Duration, offered int) int {
	var releases []func(error)
	for range offered {
		release, ok := l.Acquire()
		if !ok {
			break
		}
		releases = append(releases, release)
	}
	c.Advance(base * time.Duration(max(len(releases), 1)))
	for _, r := range releases {
		r(nil)
	}
	return len(releases)
}

// TestOverloadStepSettles steps a one-worker service from one request at a
// time to far more than it can take, with the default windows. The limit
// must come down to what the worker carries within a second: requests
// admitted under the old limit count once, not once per window, and the
// long RTT has forgotten the slow first requests of a cold start.
func TestOverloadStepSettles(t *testing.T) {
	const (
		base = 10 * time.Millisecond
		cold = 40 * time.Millisecond
	)
	c := newClock()
	l := newLimiter(t, shed.Config{Now: c.Now}, nil)
	for range 10 { // a cold first window
		round(l, c, cold, 1)
	}
	for range 200 { // two seconds unloaded
		round(l, c, base, 1)
	}
	if got := l.Limit(); got != shed.DefaultInitialLimit {
		t.Fatalf("limit after an unloaded warm-up = %d, want the initial %d untouched", got, shed.DefaultInitialLimit)
	}
	onset := c.Now()
	settled := time.Duration(-1)
	var history []int
	for c.Now().Sub(onset) < 3*time.Second {
		round(l, c, base, 1000)
		history = append(history, l.Limit())
		switch {
		case l.Limit() > 3:
			settled = -1
		case settled < 0:
			settled = c.Now().Sub(onset)
		}
	}
	if settled < 0 || settled > time.Second {
		t.Fatalf("limit settled at %v after the step, want at most 3 within 1s; history %v", settled, history)
	}
}

// spin computes for d without blocking, as a CPU-bound handler does.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// burstCodes sends n requests at once to h, a handler behind a limiter
// that has already served enough requests one at a time to know how long
// they take, and returns their status codes.
func burstCodes(t *testing.T, h http.Handler, n int) []int {
	t.Helper()
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; { // a few windows
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	start := make(chan struct{})
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req := httptest.NewRequest("GET", "/", nil)
			rec := httptest.NewRecorder()
			<-start
			h.ServeHTTP(rec, req)
			codes[i] = rec.Code
		})
	}
	close(start)
	wg.Wait()
	return codes
}

// TestMiddlewareCountsRequestsWaitingForACPU: on one CPU a handler that
// computes without blocking runs to its end once scheduled, so requests
// waiting for the CPU meanwhile are never in flight. When handlers take a
// millisecond or more, the middleware yields after admitting, so those
// requests reach the limiter while the first is admitted and are turned
// away instead of each being admitted in turn. Cheaper handlers are not
// yielded for: turning their requests away would save the CPU nothing.
func TestMiddlewareCountsRequestsWaitingForACPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 8
	tests := []struct {
		name         string
		work         time.Duration
		limit        int
		wantRejected bool
	}{
		{"CPU-bound work is limited", 2 * time.Millisecond, 1, true},
		// A limit of 2, so that one request the OS happens to preempt
		// mid-work on a busy machine does not turn the next away.
		{"trivial work is not yielded for", 20 * time.Microsecond, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, shed.Config{InitialLimit: tt.limit, MaxLimit: tt.limit}, nil)
			h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				spin(tt.work) // shorter than a preemption slice (10ms)
			}))
			codes := burstCodes(t, h, n)
			var ok, rejected int
			for _, code := range codes {
				switch code {
				case http.StatusOK:
					ok++
				case http.StatusServiceUnavailable:
					rejected++
				}
			}
			if ok+rejected != n || ok < 1 || (rejected > 0) != tt.wantRejected {
				t.Fatalf("%d concurrent requests of %v with a limit of %d: %d answered, %d rejected (codes %v); want rejections: %v",
					n, tt.work, tt.limit, ok, rejected, codes, tt.wantRejected)
			}
		})
	}
}
