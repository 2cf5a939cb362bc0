package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/health"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ok(context.Context) error { return nil }

var errDown = errors.New("dependency down")

func down(context.Context) error { return errDown }

// start runs c until the test ends and waits for Run to return.
func start(t *testing.T, c *health.Checker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allRan(c *health.Checker) func() bool {
	return func() bool {
		for _, r := range c.Results() {
			if r.Pending {
				return false
			}
		}
		return true
	}
}

func get(t *testing.T, h http.Handler, path string) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var rep health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("GET %s: body %q is not a report: %v", path, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return rec.Code, rep
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name    string
		check   health.Check
		wantErr error
	}{
		{"valid", health.Check{Name: "b", Func: ok}, nil},
		{"empty name", health.Check{Func: ok}, health.ErrInvalidCheck},
		{"nil func", health.Check{Name: "c"}, health.ErrInvalidCheck},
		{"negative interval", health.Check{Name: "d", Func: ok, Interval: -time.Second}, health.ErrInvalidCheck},
		{"negative timeout", health.Check{Name: "e", Func: ok, Timeout: -time.Second}, health.ErrInvalidCheck},
		{"duplicate", health.Check{Name: "a", Func: ok}, health.ErrDuplicateCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := health.New(nil, health.Check{Name: "a", Func: ok})
			err := c.Add(tt.check)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add: got %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "health: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestAddAfterRun(t *testing.T) {
	entered := make(chan struct{}, 1)
	c := health.New(nil, health.Check{Name: "a", Func: func(context.Context) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		return nil
	}})
	start(t, c)
	<-entered
	if err := c.Add(health.Check{Name: "b", Func: ok}); !errors.Is(err, health.ErrRunning) {
		t.Fatalf("Add after Run: got %v, want ErrRunning", err)
	}
}

func TestRunRejectsInvalidChecksFromNew(t *testing.T) {
	c := health.New(nil, health.Check{Name: "a", Func: ok}, health.Check{Name: "a", Func: ok})
	if err := c.Run(context.Background()); !errors.Is(err, health.ErrDuplicateCheck) {
		t.Fatalf("Run: got %v, want ErrDuplicateCheck", err)
	}
}

func TestRunTwice(t *testing.T) {
	entered := make(chan struct{}, 1)
	c := health.New(nil, health.Check{Name: "a", Func: func(context.Context) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		return nil
	}})
	start(t, c)
	<-entered
	if err := c.Run(context.Background()); !errors.Is(err, health.ErrRunning) {
		t.Fatalf("second Run: got %v, want ErrRunning", err)
	}
}

func TestProbes(t *testing.T) {
	tests := []struct {
		name        string
		checks      []health.Check
		started     bool
		draining    bool
		wantLive    int
		wantReady   int
		wantStartup int
		wantFailing []string // on /readyz
		wantLiveFai []string // on /livez
		wantDegrad  []string // on /readyz
	}{
		{
			name:     "not started",
			checks:   []health.Check{{Name: "db", Func: ok, Critical: true}},
			wantLive: 200, wantReady: 503, wantStartup: 503,
		},
		{
			name:     "started and healthy",
			checks:   []health.Check{{Name: "db", Func: ok, Critical: true}},
			started:  true,
			wantLive: 200, wantReady: 200, wantStartup: 200,
		},
		{
			name:     "critical check failing",
			checks:   []health.Check{{Name: "db", Func: down, Critical: true}, {Name: "cache", Func: ok, Critical: true}},
			started:  true,
			wantLive: 200, wantReady: 503, wantStartup: 200,
			wantFailing: []string{"db"},
		},
		{
			name:     "non-critical check failing",
			checks:   []health.Check{{Name: "db", Func: ok, Critical: true}, {Name: "cache", Func: down}},
			started:  true,
			wantLive: 200, wantReady: 200, wantStartup: 200,
			wantDegrad: []string{"cache"},
		},
		{
			name:     "draining",
			checks:   []health.Check{{Name: "db", Func: ok, Critical: true}},
			started:  true,
			draining: true,
			wantLive: 200, wantReady: 503, wantStartup: 200,
		},
		{
			name:     "liveness check failing",
			checks:   []health.Check{{Name: "loop", Func: down, Liveness: true}, {Name: "db", Func: ok, Critical: true}},
			started:  true,
			wantLive: 503, wantReady: 200, wantStartup: 200,
			wantLiveFai: []string{"loop"},
		},
		{
			name:     "dependency down leaves liveness alone",
			checks:   []health.Check{{Name: "loop", Func: ok, Liveness: true}, {Name: "db", Func: down, Critical: true}},
			started:  true,
			wantLive: 200, wantReady: 503, wantStartup: 200,
			wantFailing: []string{"db"},
		},
		{
			name:     "panicking check fails",
			checks:   []health.Check{{Name: "db", Func: func(context.Context) error { panic("boom") }, Critical: true}},
			started:  true,
			wantLive: 200, wantReady: 503, wantStartup: 200,
			wantFailing: []string{"db"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := health.New(nil, tt.checks...)
			if tt.started {
				c.MarkStarted()
			}
			if tt.draining {
				c.SetDraining()
			}
			start(t, c)
			waitFor(t, "every check to run", allRan(c))
			mux := http.NewServeMux()
			c.Register(mux)
			for _, p := range []struct {
				path    string
				want    int
				failing []string
			}{
				{"/livez", tt.wantLive, tt.wantLiveFai},
				{"/readyz", tt.wantReady, tt.wantFailing},
				{"/healthz", tt.wantReady, tt.wantFailing},
				{"/startupz", tt.wantStartup, nil},
			} {
				code, rep := get(t, mux, p.path)
				if code != p.want {
					t.Errorf("GET %s: code %d, want %d (report %+v)", p.path, code, p.want, rep)
				}
				if wantStatus := map[bool]string{true: health.StatusOK, false: health.StatusFail}[p.want == 200]; rep.Status != wantStatus {
					t.Errorf("GET %s: status %q, want %q", p.path, rep.Status, wantStatus)
				}
				if !slices.Equal(rep.Failing, p.failing) {
					t.Errorf("GET %s: failing %q, want %q", p.path, rep.Failing, p.failing)
				}
				if wantDeg := map[bool][]string{true: tt.wantDegrad}[p.path == "/readyz" || p.path == "/healthz"]; !slices.Equal(rep.Degraded, wantDeg) {
					t.Errorf("GET %s: degraded %q, want %q", p.path, rep.Degraded, wantDeg)
				}
			}
			if got := c.Ready(); got != (tt.wantReady == 200) {
				t.Errorf("Ready() = %v, want %v", got, tt.wantReady == 200)
			}
			if got := c.Live(); got != (tt.wantLive == 200) {
				t.Errorf("Live() = %v, want %v", got, tt.wantLive == 200)
			}
		})
	}
}

func TestPendingCriticalCheckFailsReadiness(t *testing.T) {
	// Not running the checker: the critical check never produces a result.
	c := health.New(nil, health.Check{Name: "db", Func: ok, Critical: true}, health.Check{Name: "loop", Func: ok, Liveness: true})
	c.MarkStarted()
	code, rep := get(t, c.ReadyHandler(), "/readyz?verbose")
	if code != http.StatusServiceUnavailable || !slices.Equal(rep.Failing, []string{"db"}) {
		t.Fatalf("readyz: %d %+v, want 503 failing [db]", code, rep)
	}
	if len(rep.Checks) != 1 || !rep.Checks[0].Pending || rep.Checks[0].Error != health.ErrPending.Error() {
		t.Errorf("readyz checks: %+v, want db pending", rep.Checks)
	}
	if code, rep := get(t, c.LiveHandler(), "/livez"); code != http.StatusOK {
		t.Errorf("livez with a pending liveness check: %d %+v, want 200", code, rep)
	}
}

func TestVerbose(t *testing.T) {
	c := health.New(nil,
		health.Check{Name: "db", Func: down, Critical: true},
		health.Check{Name: "cache", Func: ok},
		health.Check{Name: "loop", Func: ok, Liveness: true},
	)
	c.MarkStarted()
	start(t, c)
	waitFor(t, "every check to run", allRan(c))

	_, terse := get(t, c.ReadyHandler(), "/readyz")
	if terse.Checks != nil {
		t.Errorf("terse report lists checks: %+v", terse.Checks)
	}
	_, rep := get(t, c.ReadyHandler(), "/readyz?verbose")
	var names []string
	for _, r := range rep.Checks {
		names = append(names, r.Name)
		if r.LastRun.IsZero() || r.AgeSeconds < 0 {
			t.Errorf("check %s: last run %v age %v", r.Name, r.LastRun, r.AgeSeconds)
		}
	}
	if !slices.Equal(names, []string{"db", "cache"}) {
		t.Fatalf("readyz?verbose checks %q, want [db cache] (readiness checks only)", names)
	}
	if db := rep.Checks[0]; db.OK || !strings.Contains(db.Error, errDown.Error()) || !db.Critical {
		t.Errorf("db result %+v, want failing with %q", db, errDown)
	}
	_, live := get(t, c.LiveHandler(), "/livez?verbose")
	if len(live.Checks) != 1 || live.Checks[0].Name != "loop" || !live.Checks[0].OK {
		t.Errorf("livez?verbose checks %+v, want [loop ok]", live.Checks)
	}
}

func TestRecovers(t *testing.T) {
	var healthy atomic.Bool
	c := health.New(nil, health.Check{Name: "db", Critical: true, Interval: 10 * time.Millisecond,
		Func: func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return errDown
		}})
	c.MarkStarted()
	start(t, c)
	waitFor(t, "db to fail", func() bool { return allRan(c)() && !c.Ready() })
	healthy.Store(true)
	waitFor(t, "readiness to recover", c.Ready)
}

// hang is a check that ignores its context until release is closed.
type hang struct {
	calls   atomic.Int32
	running atomic.Int32
	maxRun  atomic.Int32
	release chan struct{}
}

func newHang(t *testing.T) *hang {
	h := &hang{release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	return h
}

func (h *hang) Func(context.Context) error {
	h.calls.Add(1)
	n := h.running.Add(1)
	defer h.running.Add(-1)
	for {
		m := h.maxRun.Load()
		if n <= m || h.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	<-h.release
	return nil
}

func TestHangingCheckDoesNotBlockProbes(t *testing.T) {
	// The timeout is far longer than the test: a probe that waited for the
	// check would never answer.
	h := newHang(t)
	c := health.New(nil, health.Check{Name: "stuck", Func: h.Func, Critical: true, Timeout: time.Hour})
	c.MarkStarted()
	start(t, c)
	waitFor(t, "the check to start", func() bool { return h.calls.Load() == 1 })

	srv := httptest.NewServer(c.ReadyHandler())
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Get(srv.URL + "/readyz?verbose")
	if err != nil {
		t.Fatalf("probe while a check hangs: %v", err)
	}
	defer resp.Body.Close()
	var rep health.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !slices.Equal(rep.Failing, []string{"stuck"}) || !rep.Checks[0].Pending {
		t.Fatalf("probe: %d %+v, want 503 with stuck pending", resp.StatusCode, rep)
	}
}

func TestHangingCheckFailsAfterTimeout(t *testing.T) {
	h := newHang(t)
	c := health.New(nil,
		health.Check{Name: "stuck", Func: h.Func, Critical: true, Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond},
		health.Check{Name: "db", Func: ok, Critical: true, Interval: 20 * time.Millisecond},
	)
	c.MarkStarted()
	start(t, c)
	srv := httptest.NewServer(c.ReadyHandler())
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	probe := func() (int, health.Report) {
		resp, err := client.Get(srv.URL + "/readyz?verbose")
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		defer resp.Body.Close()
		var rep health.Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, rep
	}
	// Wait until a later tick has found the first call still running: the
	// check has been reported as timed out more than once.
	var rep health.Report
	var code int
	waitFor(t, "the hung check to be reported still running", func() bool {
		code, rep = probe()
		return strings.Contains(rep.Checks[0].Error, "still going")
	})
	if code != http.StatusServiceUnavailable || !slices.Equal(rep.Failing, []string{"stuck"}) {
		t.Fatalf("probe: %d %+v, want 503 naming stuck", code, rep)
	}
	if !strings.Contains(rep.Checks[0].Error, health.ErrTimeout.Error()) {
		t.Errorf("stuck error %q does not say it timed out", rep.Checks[0].Error)
	}
	if !rep.Checks[1].OK {
		t.Errorf("db %+v, want ok: one hung check must not hold up others", rep.Checks[1])
	}
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("check called %d times while its first call hung, want 1", n)
	}

	close(h.release)
	waitFor(t, "readiness after the check returns", c.Ready)
	if m := h.maxRun.Load(); m != 1 {
		t.Errorf("at most %d calls of the check ran at once, want 1", m)
	}
}

func TestRunReturnsWithHungCheck(t *testing.T) {
	h := newHang(t)
	c := health.New(nil, health.Check{Name: "stuck", Func: h.Func, Timeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "the check to start", func() bool { return h.calls.Load() == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return while a check ignored cancellation")
	}
}

func TestRunWaitsForWellBehavedChecks(t *testing.T) {
	var finished atomic.Bool
	entered := make(chan struct{})
	c := health.New(nil, health.Check{Name: "slow", Timeout: time.Hour, Func: func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // cleanup after cancellation
		finished.Store(true)
		return ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-entered
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Error("Run returned before the in-flight check finished")
	}
}
