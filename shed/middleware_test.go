package shed_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/shed"
)

// TestMiddlewareAdmitAllocsNothing fails if admitting a request through
// the middleware, and releasing it, allocates: the limiter sits in front of
// every request a service serves. It counts allocations, not time.
func TestMiddlewareAdmitAllocsNothing(t *testing.T) {
	tests := []struct {
		name string
		// work is how long the handler takes on the fake clock: from 1ms
		// on, the middleware yields before the handler (see Middleware).
		work time.Duration
	}{
		{"trivial handler", 0},
		{"handler yielded for", 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			l := newLimiter(t, shed.Config{Now: c.Now}, prometheus.NewRegistry())
			var served int
			h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.Advance(tt.work)
				served++
				w.WriteHeader(http.StatusNoContent)
			}))
			req := httptest.NewRequest("GET", "/", nil)
			w := discardWriter{h: http.Header{}}
			// Enough requests for windows to close and the handler's
			// work to be learned.
			for range 1000 {
				c.Advance(time.Millisecond)
				h.ServeHTTP(w, req)
			}
			served = 0
			allocs := testing.AllocsPerRun(1000, func() {
				c.Advance(time.Millisecond)
				h.ServeHTTP(w, req)
			})
			if served != 1001 { // AllocsPerRun runs the function once more to warm up
				t.Fatalf("%d requests served of 1001: the limiter turned some away", served)
			}
			if allocs != 0 {
				t.Fatalf("admitting a request allocates %.1f times, want 0", allocs)
			}
		})
	}
}

// TestMiddlewareCriticalShedLast: with Critical set, other requests are
// turned away while the reserve of the limit is still free, and a critical
// request takes it.
func TestMiddlewareCriticalShedLast(t *testing.T) {
	critical := func(r *http.Request) bool { return r.Header.Get("X-Critical") == "1" }
	tests := []struct {
		name      string
		limit     int
		reserve   float64
		wantOther int // others admitted before the first refusal
	}{
		{"a quarter of 8 kept", 8, 0, 6},
		{"at least one slot kept", 2, 0, 1},
		{"at least one slot left to others", 4, 0.9, 1},
		{"a share of the limit kept", 10, 0.5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(t, shed.Config{InitialLimit: tt.limit, MaxLimit: tt.limit, Critical: critical, Reserve: tt.reserve}, nil)
			hold := make(chan struct{})
			h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hold }))
			serve := func(crit bool) (code int, done chan struct{}) {
				req := httptest.NewRequest("GET", "/", nil)
				if crit {
					req.Header.Set("X-Critical", "1")
				}
				rec := httptest.NewRecorder()
				done = make(chan struct{})
				before := l.InFlight()
				go func() {
					defer close(done)
					h.ServeHTTP(rec, req)
				}()
				// Admitted (holding a slot) or answered at once.
				for l.InFlight() == before {
					select {
					case <-done:
						return rec.Code, done
					default:
						runtime.Gosched()
					}
				}
				return http.StatusOK, done
			}
			var running []chan struct{}
			defer func() {
				close(hold)
				for _, d := range running {
					<-d
				}
			}()
			others := 0
			for {
				code, done := serve(false)
				if code != http.StatusOK {
					break
				}
				running = append(running, done)
				others++
			}
			if others != tt.wantOther {
				t.Fatalf("%d other requests admitted with a limit of %d, want %d", others, tt.limit, tt.wantOther)
			}
			for i := others; i < tt.limit; i++ {
				code, done := serve(true)
				if code != http.StatusOK {
					t.Fatalf("critical request %d refused (%d) with %d of %d in flight", i-others+1, code, i, tt.limit)
				}
				running = append(running, done)
			}
			if code, _ := serve(true); code != http.StatusServiceUnavailable {
				t.Fatalf("critical request beyond the limit answered %d, want 503", code)
			}
		})
	}
}

// TestMiddlewareCriticalRefusedStopsOthers: once a critical request was
// turned away, no other is admitted for a window, even with slots free.
func TestMiddlewareCriticalRefusedStopsOthers(t *testing.T) {
	c := newClock()
	l := newLimiter(t, shed.Config{InitialLimit: 4, MaxLimit: 4, Window: time.Second, Now: c.Now,
		Critical: func(r *http.Request) bool { return r.Header.Get("X-Critical") == "1" }}, nil)
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	var wg sync.WaitGroup
	defer wg.Wait()
	// start serves a request that holds its slot until its cancel is
	// called, or answers at once; it returns the code and the cancel.
	start := func(crit bool) (int, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
		if crit {
			req.Header.Set("X-Critical", "1")
		}
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		before := l.InFlight()
		wg.Go(func() {
			defer close(done)
			h.ServeHTTP(rec, req)
		})
		for l.InFlight() == before {
			select {
			case <-done:
				return rec.Code, cancel
			default:
				runtime.Gosched()
			}
		}
		return http.StatusOK, cancel
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	steps := []struct {
		what     string
		critical bool
		advance  time.Duration
		release  int // requests held so far to release first, oldest first
		want     int
	}{
		{what: "other", want: 200},
		{what: "critical", critical: true, want: 200},
		{what: "critical", critical: true, want: 200},
		{what: "critical", critical: true, want: 200},
		{what: "critical over the limit", critical: true, want: 503},
		{what: "other, two slots free, just after", release: 2, want: 503},
		{what: "other, most of a window later", advance: 999 * time.Millisecond, want: 503},
		{what: "other, a window later", advance: time.Millisecond, want: 200},
	}
	for i, st := range steps {
		for range st.release {
			cancels[0]()
			cancels = cancels[1:]
		}
		for n := len(cancels); l.InFlight() != n; {
			runtime.Gosched()
		}
		c.Advance(st.advance)
		code, cancel := start(st.critical)
		if code != st.want {
			t.Fatalf("step %d, %s: %d, want %d", i+1, st.what, code, st.want)
		}
		if code == http.StatusOK {
			cancels = append(cancels, cancel)
		} else {
			cancel()
		}
	}
}

// TestCheapHandlersLimitIsGentle: handlers that take well under a
// millisecond are not yielded for, and their latency, mostly the
// scheduler's delay, moves the limit as Gradient2 does: windows of a
// second, at most a tenth off per window. Six times the usual latency for
// a second must not read as overload the way it does for CPU-bound work.
func TestCheapHandlersLimitIsGentle(t *testing.T) {
	c := newClock()
	l := newLimiter(t, shed.Config{Now: c.Now}, nil)
	work := 100 * time.Microsecond
	h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { c.Advance(work) }))
	serveFor := func(d time.Duration) {
		for end := c.Now().Add(d); c.Now().Before(end); {
			h.ServeHTTP(discardWriter{h: http.Header{}}, httptest.NewRequest("GET", "/", nil))
			c.Advance(time.Millisecond - work)
		}
	}
	serveFor(3 * time.Second) // the usual latency learned
	// Half the limit held, so that windows count as loaded.
	var held []func(error)
	for range shed.DefaultInitialLimit / 2 {
		release, ok := l.Acquire()
		if !ok {
			t.Fatal("acquire refused under the initial limit")
		}
		held = append(held, release)
	}
	defer func() {
		for _, release := range held {
			release(context.Canceled)
		}
	}()
	work = 600 * time.Microsecond
	serveFor(time.Second + 50*time.Millisecond)
	if got, floor := l.Limit(), shed.DefaultInitialLimit*9/10; got < floor {
		t.Fatalf("limit %d after a second of 6x latency from a cheap handler, want at least %d", got, floor)
	}
}

// TestMiddlewareDropsStreamResetDuringYield: an HTTP/2 stream its client
// resets while the admitted request yields the CPU (handlers of a
// millisecond or more) is not served and gets no answer, and its slot
// comes back: under a rapid-reset flood thousands a second are reset
// there, and each would otherwise hold a slot through its handler.
func TestMiddlewareDropsStreamResetDuringYield(t *testing.T) {
	c := newClock()
	var resetNext func()
	l := newLimiter(t, shed.Config{Now: c.Now, Critical: func(*http.Request) bool {
		// Called as the request is admitted: the reset lands after the
		// middleware's own check and before the yield's end.
		if resetNext != nil {
			resetNext()
		}
		return false
	}}, nil)
	served := 0
	h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		served++
		c.Advance(5 * time.Millisecond)
	}))
	// Handlers of 5 ms: the middleware learns to yield for them.
	for range 200 {
		h.ServeHTTP(discardWriter{h: http.Header{}}, httptest.NewRequest("POST", "/", nil))
		c.Advance(time.Millisecond)
	}
	tests := []struct {
		name       string
		protoMajor int
		wantServed int
	}{
		{"HTTP/2 stream reset", 2, 0},
		// HTTP/1.1 has no stream to reset: a client gone before its
		// handler ran (a fire-and-forget POST) is still served.
		{"HTTP/1.1 client gone", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			served = 0
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resetNext = cancel
			defer func() { resetNext = nil }()
			r := httptest.NewRequest("POST", "/", nil).WithContext(ctx)
			r.ProtoMajor = tt.protoMajor
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if served != tt.wantServed {
				t.Errorf("handler ran %d times, want %d", served, tt.wantServed)
			}
			if tt.wantServed == 0 && (w.Body.Len() != 0 || len(w.Header()) != 0) {
				t.Errorf("answered %d %q, want no answer", w.Code, w.Body.String())
			}
			if n := l.InFlight(); n != 0 {
				t.Errorf("%d requests in flight after it, want 0", n)
			}
		})
	}
}
