package shed_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/shed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a fake time source advanced by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newLimiter(t testing.TB, cfg shed.Config, reg prometheus.Registerer) *shed.Limiter {
	t.Helper()
	l, err := shed.New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAcquireUpToLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := newLimiter(t, shed.Config{InitialLimit: 3, Now: newClock().Now}, reg)
	var releases []func(error)
	for i := range 3 {
		release, ok := l.Acquire()
		if !ok {
			t.Fatalf("acquire %d of 3 refused", i+1)
		}
		releases = append(releases, release)
	}
	release, ok := l.Acquire()
	if ok {
		t.Fatal("acquire beyond the limit admitted")
	}
	release(nil) // harmless on a refusal
	if l.InFlight() != 3 {
		t.Fatalf("in flight = %d, want 3", l.InFlight())
	}
	releases[0](nil)
	releases[0](nil) // a second release must not free a second slot
	if l.InFlight() != 2 {
		t.Fatalf("in flight after one release (twice) = %d, want 2", l.InFlight())
	}
	if _, ok := l.Acquire(); !ok {
		t.Fatal("freed slot not reusable")
	}
	if _, ok := l.Acquire(); ok {
		t.Fatal("limit exceeded after reuse")
	}
	want := `
# HELP shed_in_flight Requests currently admitted by the limiter.
# TYPE shed_in_flight gauge
shed_in_flight 3
# HELP shed_in_flight_seconds_total Requests admitted by the limiter, integrated over time.
# TYPE shed_in_flight_seconds_total counter
shed_in_flight_seconds_total 0
# HELP shed_limit Current adaptive concurrency limit.
# TYPE shed_limit gauge
shed_limit 3
# HELP shed_rejected_total Requests turned away because the concurrency limit was reached.
# TYPE shed_rejected_total counter
shed_rejected_total 2
# HELP shed_utilization_seconds_total Requests admitted over the concurrency limit, integrated over time: its rate is the average utilization.
# TYPE shed_utilization_seconds_total counter
shed_utilization_seconds_total 0
# HELP shed_utilization_ratio Requests admitted over the current concurrency limit; 1 is at the limit.
# TYPE shed_utilization_ratio gauge
shed_utilization_ratio 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// service models a server with k workers: a request's latency is base while
// at most k run at once and grows in proportion to the queue beyond that.
type service struct {
	k    int
	base time.Duration
}

func (s service) latency(inFlight int) time.Duration {
	if s.k == 0 || inFlight <= s.k {
		return s.base
	}
	return s.base * time.Duration(inFlight) / time.Duration(s.k)
}

// load drives l for n windows under a fake clock: each round offers
// `offered` concurrent requests, admits what the limit allows, advances the
// clock by the service latency at that concurrency, and releases them all
// with err. It returns the limit after each window.
func load(l *shed.Limiter, c *clock, svc service, offered, windows int, err error) []int {
	var limits []int
	for range windows {
		// Window 1s, at least 10 samples: 10 rounds of >= 100ms close it.
		for range 10 {
			var releases []func(error)
			for range offered {
				release, ok := l.Acquire()
				if !ok {
					break
				}
				releases = append(releases, release)
			}
			step := max(svc.latency(len(releases)), 100*time.Millisecond)
			c.Advance(step)
			for _, r := range releases {
				r(err)
			}
		}
		limits = append(limits, l.Limit())
	}
	return limits
}

func TestAdaptation(t *testing.T) {
	flat := service{base: 100 * time.Millisecond}
	tests := []struct {
		name  string
		cfg   shed.Config
		run   func(l *shed.Limiter, c *clock) []int
		check func(t *testing.T, limits []int)
	}{
		{
			name: "flat latency at the limit grows the limit",
			cfg:  shed.Config{InitialLimit: 10},
			run:  func(l *shed.Limiter, c *clock) []int { return load(l, c, flat, 1000, 20, nil) },
			check: func(t *testing.T, limits []int) {
				nondecreasing(t, limits)
				if last := limits[len(limits)-1]; last < 20 {
					t.Errorf("limit after 20 flat windows = %d, want well above the initial 10", last)
				}
			},
		},
		{
			name: "growth stops at MaxLimit",
			cfg:  shed.Config{InitialLimit: 10, MaxLimit: 15},
			run:  func(l *shed.Limiter, c *clock) []int { return load(l, c, flat, 1000, 40, nil) },
			check: func(t *testing.T, limits []int) {
				if last := limits[len(limits)-1]; last != 15 {
					t.Errorf("limit = %d, want MaxLimit 15", last)
				}
			},
		},
		{
			name: "an underused limit does not grow",
			cfg:  shed.Config{InitialLimit: 20},
			run:  func(l *shed.Limiter, c *clock) []int { return load(l, c, flat, 5, 20, nil) },
			check: func(t *testing.T, limits []int) {
				for i, v := range limits {
					if v != 20 {
						t.Fatalf("window %d: limit %d, want 20 while only 5 of 20 are used", i, v)
					}
				}
			},
		},
		{
			name: "queueing latency shrinks the limit toward capacity",
			cfg:  shed.Config{InitialLimit: 100, MinLimit: 1},
			run: func(l *shed.Limiter, c *clock) []int {
				// Long RTT learns the unloaded latency first.
				warm := load(l, c, service{base: 100 * time.Millisecond}, 60, 5, nil)
				return append(warm, load(l, c, service{k: 4, base: 100 * time.Millisecond}, 1000, 60, nil)...)
			},
			check: func(t *testing.T, limits []int) {
				last := limits[len(limits)-1]
				if last > 16 || last < 4 {
					t.Errorf("limit = %d after a long overload of a 4-worker service, want within [4, 16]; history %v", last, limits)
				}
			},
		},
		{
			name: "recovers once latency returns to normal",
			cfg:  shed.Config{InitialLimit: 40, MinLimit: 1},
			run: func(l *shed.Limiter, c *clock) []int {
				load(l, c, flat, 40, 5, nil)
				load(l, c, service{k: 2, base: 100 * time.Millisecond}, 1000, 30, nil)
				low := l.Limit()
				after := load(l, c, flat, 1000, 30, nil)
				return append([]int{low}, after...)
			},
			check: func(t *testing.T, limits []int) {
				if limits[len(limits)-1] < limits[0]+10 {
					t.Errorf("limit went from %d to %d once latency recovered, want a clear rise; %v", limits[0], limits[len(limits)-1], limits)
				}
			},
		},
		{
			name: "drops back off multiplicatively to MinLimit",
			cfg:  shed.Config{InitialLimit: 100, MinLimit: 5},
			run:  func(l *shed.Limiter, c *clock) []int { return load(l, c, flat, 1000, 40, shed.ErrDropped) },
			check: func(t *testing.T, limits []int) {
				if limits[0] != 90 || limits[1] != 81 {
					t.Errorf("first windows = %v, want 90, 81 (x0.9 each)", limits[:2])
				}
				if last := limits[len(limits)-1]; last != 5 {
					t.Errorf("limit = %d, want MinLimit 5", last)
				}
			},
		},
		{
			name: "deadline exceeded counts as a drop",
			cfg:  shed.Config{InitialLimit: 100},
			run: func(l *shed.Limiter, c *clock) []int {
				return load(l, c, flat, 1000, 1, fmt.Errorf("upstream: %w", context.DeadlineExceeded))
			},
			check: func(t *testing.T, limits []int) {
				if limits[0] != 90 {
					t.Errorf("limit = %d, want 90", limits[0])
				}
			},
		},
		{
			name: "cancelled requests are no samples",
			cfg:  shed.Config{InitialLimit: 10},
			run: func(l *shed.Limiter, c *clock) []int {
				return load(l, c, service{k: 1, base: time.Second}, 1000, 10, context.Canceled)
			},
			check: func(t *testing.T, limits []int) {
				for i, v := range limits {
					if v != 10 {
						t.Fatalf("window %d: limit %d, want 10 unchanged", i, v)
					}
				}
			},
		},
		{
			name: "other errors are ordinary samples",
			cfg:  shed.Config{InitialLimit: 10},
			run:  func(l *shed.Limiter, c *clock) []int { return load(l, c, flat, 1000, 5, errors.New("bad request")) },
			check: func(t *testing.T, limits []int) {
				if limits[len(limits)-1] <= 10 {
					t.Errorf("limits %v, want growth as with successes", limits)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tt.cfg.Now = c.Now
			tt.cfg.Window = time.Second // load's rounds make windows of a second
			l := newLimiter(t, tt.cfg, nil)
			tt.check(t, tt.run(l, c))
		})
	}
}

// TestDeterministic: the same inputs under the same clock give the same
// limits.
func TestDeterministic(t *testing.T) {
	run := func() []int {
		c := newClock()
		l := newLimiter(t, shed.Config{InitialLimit: 50, Window: time.Second, Now: c.Now}, nil)
		return load(l, c, service{k: 3, base: 100 * time.Millisecond}, 200, 30, nil)
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("two identical runs differ:\n%v\n%v", a, b)
	}
}

func nondecreasing(t *testing.T, v []int) {
	t.Helper()
	for i := 1; i < len(v); i++ {
		if v[i] < v[i-1] {
			t.Fatalf("limit fell from %d to %d at window %d: %v", v[i-1], v[i], i, v)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     shed.Config
		wantErr string
	}{
		{"negative min", shed.Config{MinLimit: -1}, "MinLimit -1 is below 1"},
		{"negative max", shed.Config{MaxLimit: -1}, "MaxLimit -1 is negative"},
		{"negative initial", shed.Config{InitialLimit: -1}, "InitialLimit -1 is negative"},
		{"max below min", shed.Config{MinLimit: 10, MaxLimit: 5}, "MaxLimit 5 is below MinLimit 10"},
		{"initial above max", shed.Config{InitialLimit: 50, MaxLimit: 40}, "InitialLimit 50 is outside"},
		{"initial below min", shed.Config{InitialLimit: 3, MinLimit: 4}, "InitialLimit 3 is outside"},
		{"tolerance below 1", shed.Config{Tolerance: 0.5}, "Tolerance 0.5 is below 1"},
		{"smoothing above 1", shed.Config{Smoothing: 2}, "Smoothing 2 is outside"},
		{"negative headroom", shed.Config{Headroom: -1}, "Headroom -1 is negative"},
		{"backoff of 1", shed.Config{Backoff: 1}, "Backoff 1 is outside"},
		{"negative window", shed.Config{Window: -time.Second}, "Window -1s is negative"},
		{"negative samples", shed.Config{MinWindowSamples: -1}, "MinWindowSamples -1"},
		{"negative long window", shed.Config{LongWindow: -1}, "LongWindow -1"},
		{"negative retry after", shed.Config{RetryAfter: -time.Second}, "RetryAfter -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := shed.New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "shed: ") {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	// Zero is valid, and small limits pull the other defaults down.
	for _, tt := range []struct {
		cfg  shed.Config
		want int
	}{
		{shed.Config{}, shed.DefaultInitialLimit},
		{shed.Config{MaxLimit: 1}, 1},
		{shed.Config{InitialLimit: 1}, 1},
	} {
		l, err := shed.New(tt.cfg, nil)
		if err != nil {
			t.Fatalf("New(%+v): %v", tt.cfg, err)
		}
		if l.Limit() != tt.want {
			t.Errorf("New(%+v).Limit() = %d, want %d", tt.cfg, l.Limit(), tt.want)
		}
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newLimiter(t, shed.Config{Name: "api", InitialLimit: 7}, reg)
	newLimiter(t, shed.Config{Name: "admin", InitialLimit: 3}, reg)
	if _, err := shed.New(shed.Config{Name: "api"}, reg); err == nil {
		t.Fatal("a second limiter with the same name registered")
	}
	a.Acquire()
	want := `
# HELP shed_in_flight Requests currently admitted by the limiter.
# TYPE shed_in_flight gauge
shed_in_flight{limiter="admin"} 0
shed_in_flight{limiter="api"} 1
# HELP shed_limit Current adaptive concurrency limit.
# TYPE shed_limit gauge
shed_limit{limiter="admin"} 3
shed_limit{limiter="api"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shed_limit", "shed_in_flight"); err != nil {
		t.Error(err)
	}
}

func TestMiddlewareRejects(t *testing.T) {
	l := newLimiter(t, shed.Config{InitialLimit: 1, RetryAfter: 1500 * time.Millisecond}, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	close(release)
	<-done
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" ||
		!strings.Contains(rec.Body.String(), `"error"`) || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("rejection = %d %v %q; want 503, Retry-After 2, JSON error", rec.Code, rec.Header(), rec.Body.String())
	}
	if l.InFlight() != 0 {
		t.Fatalf("in flight after both = %d", l.InFlight())
	}
}

func TestMiddlewarePanicFreesSlot(t *testing.T) {
	l := newLimiter(t, shed.Config{InitialLimit: 1}, nil)
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	if l.InFlight() != 0 {
		t.Fatalf("in flight after a panic = %d, want 0", l.InFlight())
	}
}
