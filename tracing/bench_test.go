package tracing_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shoal-dev/shoal/tracing"
)

// discard is a ResponseWriter that keeps nothing, so the benchmark
// measures the middleware, not a recorder.
type discard struct{ h http.Header }

func (d discard) Header() http.Header       { return d.h }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// BenchmarkHandler measures what a Tracer adds to a request through a
// ServeMux: off (no Tracer), propagation only (no Endpoint), and sampled
// into an exporter that drops the spans; "new" requests start a trace,
// the others continue the one their traceparent names. Compare ns/op and
// allocs/op.
func BenchmarkHandler(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	const (
		sampled   = "00-" + inTraceID + "-" + inSpanID + "-01"
		unsampled = "00-" + inTraceID + "-" + inSpanID + "-00"
	)
	benches := []struct {
		name        string
		cfg         *tracing.Config // nil: no Tracer
		traceparent string
	}{
		{name: "off/new"},
		{name: "off/traceparent", traceparent: sampled},
		{name: "propagation/new", cfg: &tracing.Config{}},
		{name: "propagation/traceparent", cfg: &tracing.Config{}, traceparent: sampled},
		{name: "sampled/new", cfg: &tracing.Config{Exporter: tracetest.NewNoopExporter()}},
		{name: "sampled/traceparent", cfg: &tracing.Config{Exporter: tracetest.NewNoopExporter()}, traceparent: sampled},
		{name: "unsampled/traceparent", cfg: &tracing.Config{Exporter: tracetest.NewNoopExporter()}, traceparent: unsampled},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			var h http.Handler = mux
			if bb.cfg != nil {
				tr, err := tracing.New(*bb.cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = tr.Shutdown(b.Context()) })
				h = tr.Handler(mux)
			}
			req := httptest.NewRequest("GET", "/items/7", nil)
			if bb.traceparent != "" {
				req.Header.Set("traceparent", bb.traceparent)
			}
			w := discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
