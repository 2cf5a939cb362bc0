package service

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/shoal-dev/shoal/tracing"
)

// TestTraceThroughAnUpstream: a traceparent sent to one service reaches
// the one it calls; both services' spans and request log lines carry the
// caller's trace ID, and the server span is named by its route.
func TestTraceThroughAnUpstream(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	exp := tracetest.NewInMemoryExporter()
	tracer := func(name string) *tracing.Tracer {
		tr, err := tracing.New(tracing.Config{ServiceName: name, Exporter: exp})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	back := start(t, Options{PodName: "back-0"}, func(svc *Service) error {
		svc.Trace(tracer("back"))
		svc.HandleFunc("GET /ping/{n}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") })
		return nil
	})
	front := start(t, Options{PodName: "front-0"}, func(svc *Service) error {
		up, err := svc.Upstream(UpstreamConfig{Name: "back", Target: strings.TrimPrefix(back.url, "http://")})
		if err != nil {
			return err
		}
		svc.Trace(tracer("front")) // after the upstream: it is traced all the same
		svc.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
			resp, err := up.Get(r.Context(), "/ping/1")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			io.Copy(w, resp.Body)
		})
		return nil
	})
	got := get(t, http.DefaultClient, front.url+"/hello", map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	if got.code != 200 {
		t.Fatalf("GET /hello: %d %q", got.code, got.body)
	}
	for _, r := range []*running{front, back} {
		lines := r.logs.lines(t, "request")
		if len(lines) != 1 || lines[0]["trace_id"] != traceID {
			t.Errorf("%s request lines = %v, want trace_id %s", r.svc.Name(), lines, traceID)
		}
	}
	names := map[string]bool{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q has trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		names[s.Name] = true
	}
	for _, want := range []string{"GET /hello", "GET", "GET /ping/{n}"} {
		if !names[want] {
			t.Errorf("no span named %q among %v", want, names)
		}
	}
}
