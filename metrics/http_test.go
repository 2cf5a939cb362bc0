package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/metricstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newMux is the application under test: a few patterns of every shape the
// route label must handle.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("id"))
	})
	mux.HandleFunc("POST /v1/items", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/static/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	})
	mux.HandleFunc("GET /panic", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // net/http recovers this one without logging
	})
	return mux
}

func do(t *testing.T, c *http.Client, method, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestMiddlewareLabels(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int // 0: the connection is aborted
		labels     [3]string
	}{
		{"path wildcard is recorded as the pattern", "GET", "/v1/items/42", 200, [3]string{"GET", "/v1/items/{id}", "200"}},
		{"HEAD matches a GET pattern", "HEAD", "/v1/items/7", 200, [3]string{"HEAD", "/v1/items/{id}", "200"}},
		{"explicit status", "POST", "/v1/items", 201, [3]string{"POST", "/v1/items", "201"}},
		{"handler that writes nothing", "DELETE", "/silent", 200, [3]string{"DELETE", "/silent", "200"}},
		{"subtree pattern", "GET", "/static/a/b/c.css", 410, [3]string{"GET", "/static/", "410"}},
		{"not found", "GET", "/nowhere/123", 404, [3]string{"GET", metrics.Unmatched, "404"}},
		{"method not allowed", "PUT", "/v1/items/1", 405, [3]string{"PUT", metrics.Unmatched, "405"}},
		{"unknown method", "BREW", "/silent", 200, [3]string{metrics.OtherMethod, "/silent", "200"}},
		{"panicking handler", "GET", "/panic", 0, [3]string{"GET", "/panic", "500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.NewHTTP(reg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(m.Middleware(newMux()))
			defer srv.Close()

			if got := do(t, srv.Client(), tt.method, srv.URL+tt.path); got != tt.wantStatus {
				t.Fatalf("status = %d, want %d", got, tt.wantStatus)
			}
			want := `
# HELP http_requests_total HTTP requests served, by method, ServeMux route and status code.
# TYPE http_requests_total counter
http_requests_total{code="` + tt.labels[2] + `",method="` + tt.labels[0] + `",route="` + tt.labels[1] + `"} 1
`
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
				t.Error(err)
			}
			if n := metricstest.Value(t, reg, "http_request_duration_seconds", "method", tt.labels[0], "route", tt.labels[1]); n != 1 {
				t.Errorf("duration samples = %v, want 1", n)
			}
			if v := metricstest.Value(t, reg, "http_requests_in_flight"); v != 0 {
				t.Errorf("in flight after the request = %v, want 0", v)
			}
		})
	}
}

// withContext stands for middleware that hands the mux a copy of the
// request, as session and tracing middleware do.
func withContext(next http.Handler) http.Handler {
	type key struct{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, 1)))
	})
}

func TestRouteSeesPatternThroughReplacedRequest(t *testing.T) {
	tests := []struct {
		name      string
		wrap      func(mux http.Handler) http.Handler
		wantRoute string
	}{
		{"mux directly inside", func(mux http.Handler) http.Handler { return mux }, "/v1/items/{id}"},
		{"replaced request hides the pattern", func(mux http.Handler) http.Handler { return withContext(mux) }, metrics.Unmatched},
		{"Route around the mux recovers it", func(mux http.Handler) http.Handler { return withContext(metrics.Route(mux)) }, "/v1/items/{id}"},
		{"nested muxes keep the inner pattern", func(mux http.Handler) http.Handler {
			outer := http.NewServeMux()
			outer.Handle("/v1/", withContext(metrics.Route(mux)))
			return metrics.Route(outer)
		}, "/v1/items/{id}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.NewHTTP(reg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(m.Middleware(tt.wrap(newMux())))
			defer srv.Close()
			if got := do(t, srv.Client(), "GET", srv.URL+"/v1/items/9"); got != 200 {
				t.Fatalf("status = %d", got)
			}
			if v := metricstest.Value(t, reg, "http_requests_total", "route", tt.wantRoute, "code", "200"); v != 1 {
				t.Errorf("requests{route=%q} = %v, want 1", tt.wantRoute, v)
			}
		})
	}
}

// shedAll answers 503 without calling next, as a load shedder does.
func shedAll(http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
}

// TestRouteOfCountsShedRequests: a request middleware answered before it
// reached the mux is counted under the route it asked for.
func TestRouteOfCountsShedRequests(t *testing.T) {
	tests := []struct {
		name      string
		wrap      func(mux *http.ServeMux) http.Handler
		path      string
		wantRoute string
		wantCode  string
	}{
		{"shed without RouteOf is unmatched", func(mux *http.ServeMux) http.Handler { return shedAll(metrics.Route(mux)) },
			"/v1/items/9", metrics.Unmatched, "503"},
		{"shed with RouteOf has its route", func(mux *http.ServeMux) http.Handler { return metrics.RouteOf(mux, shedAll(metrics.Route(mux))) },
			"/v1/items/9", "/v1/items/{id}", "503"},
		{"served request keeps the mux's pattern", func(mux *http.ServeMux) http.Handler {
			return metrics.RouteOf(mux, withContext(metrics.Route(mux)))
		}, "/v1/items/9", "/v1/items/{id}", "200"},
		{"no pattern stays unmatched", func(mux *http.ServeMux) http.Handler { return metrics.RouteOf(mux, shedAll(metrics.Route(mux))) },
			"/nowhere", metrics.Unmatched, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.NewHTTP(reg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(m.Middleware(tt.wrap(newMux())))
			defer srv.Close()
			do(t, srv.Client(), "GET", srv.URL+tt.path)
			if v := metricstest.Value(t, reg, "http_requests_total", "route", tt.wantRoute, "code", tt.wantCode); v != 1 {
				t.Errorf("requests{route=%q,code=%s} = %v, want 1", tt.wantRoute, tt.wantCode, v)
			}
		})
	}
}

func TestRouteWithoutMiddleware(t *testing.T) {
	h := metrics.Route(newMux())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/items/5", nil))
	if rec.Code != 200 || rec.Body.String() != "5" {
		t.Fatalf("got %d %q, want 200 \"5\"", rec.Code, rec.Body.String())
	}
}

func TestInFlight(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})))
	defer srv.Close()

	const n = 3
	done := make(chan int, n)
	for range n {
		go func() { done <- do(t, srv.Client(), "GET", srv.URL+"/") }()
	}
	for range n {
		<-entered
	}
	if v := metricstest.Value(t, reg, "http_requests_in_flight"); v != n {
		t.Errorf("in flight while %d handlers block = %v", n, v)
	}
	close(release)
	for range n {
		if code := <-done; code != 200 {
			t.Errorf("status = %d", code)
		}
	}
	if v := metricstest.Value(t, reg, "http_requests_in_flight"); v != 0 {
		t.Errorf("in flight after = %v, want 0", v)
	}
	if v := metricstest.Value(t, reg, "http_requests_total", "route", metrics.Unmatched); v != n {
		t.Errorf("requests = %v, want %d", v, n)
	}
}

func TestFlushThroughMiddleware(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	var flushable bool
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flushable = w.(http.Flusher)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through ResponseController: %v", err)
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !flushable || !rec.Flushed {
		t.Errorf("flushable = %v, flushed = %v; want both", flushable, rec.Flushed)
	}
}

func TestNewHTTPErrors(t *testing.T) {
	tests := []struct {
		name    string
		reg     func() prometheus.Registerer
		opts    []metrics.Option
		wantErr string
	}{
		{"nil registerer", func() prometheus.Registerer { return nil }, nil, "nil prometheus.Registerer"},
		{"unsorted buckets", func() prometheus.Registerer { return prometheus.NewRegistry() }, []metrics.Option{metrics.WithBuckets(0.1, 0.05)}, "strictly increasing"},
		{"no buckets", func() prometheus.Registerer { return prometheus.NewRegistry() }, []metrics.Option{metrics.WithBuckets()}, "no histogram buckets"},
		{"registered twice", func() prometheus.Registerer {
			reg := prometheus.NewRegistry()
			if _, err := metrics.NewHTTP(reg); err != nil {
				t.Fatal(err)
			}
			return reg
		}, nil, "duplicate metrics collector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := metrics.NewHTTP(tt.reg(), tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "metrics: ") {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFailedRegistrationLeavesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Take the in-flight name so the third registration fails.
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "http_requests_in_flight", Help: "other"}))
	if _, err := metrics.NewHTTP(reg); err == nil {
		t.Fatal("NewHTTP succeeded despite a conflicting metric")
	}
	if n, err := testutil.GatherAndCount(reg, "http_requests_total", "http_request_duration_seconds"); err != nil || n != 0 {
		t.Fatalf("left behind %d series (err %v)", n, err)
	}
	// The names are free again, so a retry on a clean registry works.
	if _, err := metrics.NewHTTP(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
}

func TestCustomBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg, metrics.WithBuckets(0.5, 1))
	if err != nil {
		t.Fatal(err)
	}
	m.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	body, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "http_request_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`le="0.5"`, `le="1"`, `le="+Inf"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks bucket %s:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), `le="0.25"`) {
		t.Errorf("exposition still has a default bucket:\n%s", body)
	}
}

func TestRouteFromWriter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(http.ResponseWriter, *http.Request) {})
	var got []string
	inner := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A copy of the request, as middleware that adds to the
			// context makes: r.Pattern stays empty on this one.
			next.ServeHTTP(w, r.WithContext(r.Context()))
			got = append(got, metrics.RouteFromWriter(w))
		})
	}
	h := m.Middleware(inner(metrics.Route(mux)))
	for _, path := range []string{"/items/7", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	if want := []string{"GET /items/{id}", ""}; !slices.Equal(got, want) {
		t.Errorf("RouteFromWriter = %q, want %q", got, want)
	}
	if got := metrics.RouteFromWriter(httptest.NewRecorder()); got != "" {
		t.Errorf("RouteFromWriter outside the middleware = %q, want empty", got)
	}
}
