package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/metrics"
)

// TestMiddlewareAllocs fails if recording a request costs more than the
// one allocation of its writer, whether the series is new or not: the
// labels' children are looked up once, then kept.
func TestMiddlewareAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; scripts/test.sh runs this without -race")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/items/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m, err := metrics.NewHTTP(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/items/42", nil)
	w := discardWriter{h: http.Header{}}
	bare := testing.AllocsPerRun(1000, func() { mux.ServeHTTP(w, req) })
	for _, tt := range []struct {
		name string
		h    http.Handler
		want float64
	}{
		{"Middleware", m.Middleware(mux), 1},
		{"Middleware and Route", m.Middleware(metrics.Route(mux)), 1},
		{"Middleware, RouteOf and Route", m.Middleware(metrics.RouteOf(mux, metrics.Route(mux))), 1},
	} {
		got := testing.AllocsPerRun(1000, func() { tt.h.ServeHTTP(w, req) }) - bare
		t.Logf("%s: %v allocations per request beyond the mux's %v", tt.name, got, bare)
		if got > tt.want {
			t.Errorf("%s: %v allocations per request beyond the mux's, want at most %v", tt.name, got, tt.want)
		}
	}
}

// TestSeriesCountedUnderConcurrency: requests racing to make the same
// series are all counted, on one child.
func TestSeriesCountedUnderConcurrency(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /a", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /b", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := m.Middleware(metrics.Route(mux))
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			path := []string{"/a", "/b"}[i%2]
			for range each {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
			}
		})
	}
	wg.Wait()
	for _, tt := range []struct{ route, code string }{{"/a", "200"}, {"/b", "418"}} {
		got := counterValue(t, reg, "http_requests_total", "GET", tt.route, tt.code)
		if got != workers/2*each {
			t.Errorf("http_requests_total{route=%q,code=%q} = %v, want %d", tt.route, tt.code, got, workers/2*each)
		}
	}
}

// counterValue is the value of one counter series in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			want := map[string]string{"method": labels[0], "route": labels[1], "code": labels[2]}
			for _, lp := range mt.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return mt.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// TestResponseOf: the writer Middleware hands its handler reports the
// status and size written through it; any other writer, even one
// wrapping it, does not.
func TestResponseOf(t *testing.T) {
	m, err := metrics.NewHTTP(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var before, after metrics.Response
	var okBefore, okAfter, okWrapped bool
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		before, okBefore = metrics.ResponseOf(w)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "hello")
		after, okAfter = metrics.ResponseOf(w)
		_, okWrapped = metrics.ResponseOf(struct{ http.ResponseWriter }{w})
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !okBefore || !okAfter || okWrapped {
		t.Fatalf("ok: before %v, after %v, wrapped %v; want true, true, false", okBefore, okAfter, okWrapped)
	}
	if before.Status != 0 || before.Bytes != 0 || before.Start.IsZero() {
		t.Errorf("before writing: %+v, want status 0, 0 bytes, a start", before)
	}
	if after.Status != http.StatusAccepted || after.Bytes != 5 || !after.Start.Equal(before.Start) {
		t.Errorf("after writing: %+v, want status 202, 5 bytes, the same start", after)
	}
	if _, ok := metrics.ResponseOf(httptest.NewRecorder()); ok {
		t.Error("ResponseOf(a plain writer) ok")
	}
}
