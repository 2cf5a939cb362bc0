package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/metricstest"
)

// TestExpositionPassesPromtool serves an instrumented application and its
// /metrics from real loopback servers, sends traffic of every kind, scrapes,
// and lints the exposition with promtool.
func TestExpositionPassesPromtool(t *testing.T) {
	reg := metrics.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(m.Middleware(newMux()))
	defer app.Close()
	admin := httptest.NewServer(metrics.Handler(reg))
	defer admin.Close()

	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/items/1"}, {"GET", "/v1/items/2"}, {"POST", "/v1/items"},
		{"GET", "/static/x"}, {"GET", "/missing"}, {"PUT", "/v1/items/3"}, {"BREW", "/silent"},
	} {
		do(t, app.Client(), req.method, app.URL+req.path)
	}

	body := metricstest.Scrape(t, admin.URL)
	metricstest.Promtool(t, body)

	families := metricstest.Families(body)
	for _, want := range []string{
		"http_requests_total", "http_request_duration_seconds", "http_requests_in_flight",
		"go_goroutines", "go_gc_duration_seconds", "go_build_info",
		"process_cpu_seconds_total", "process_resident_memory_bytes",
	} {
		if !slices.Contains(families, want) {
			t.Errorf("scrape lacks %s; has %q", want, families)
		}
	}
	if v := metricstest.Value(t, reg, "http_requests_total", "method", "GET", "route", "/v1/items/{id}", "code", "200"); v != 2 {
		t.Errorf("GET /v1/items/{id} 200 = %v, want 2", v)
	}
}

// TestPromtoolCatchesBadExposition shows the lint has teeth: a counter
// without the _total suffix is reported.
func TestPromtoolCatchesBadExposition(t *testing.T) {
	bad := []byte("# HELP jobs Jobs.\n# TYPE jobs counter\njobs 1\n")
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }() // Fatalf on fakeT panics to stop the helper
		metricstest.Promtool(ft, bad)
	}()
	if !ft.failed {
		t.Fatal("promtool accepted a counter without _total")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	panic("fatal")
}

func TestHandlerServesTextFormat(t *testing.T) {
	reg := metrics.NewRegistry()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	metrics.Handler(reg).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
}
