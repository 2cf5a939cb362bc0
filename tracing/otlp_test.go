package tracing_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-dev/shoal/tracing"
)

// post is one request the collector received.
type post struct {
	method, path, contentType string
	req                       *coltracepb.ExportTraceServiceRequest
	err                       error
}

// syncBuffer is a log destination safe for the exporter's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOTLPShutdownFlushes serves one request through a Tracer exporting to
// an OTLP/HTTP collector on loopback, then shuts the Tracer down: the span
// reaches the collector then, long before the batch timeout.
func TestOTLPShutdownFlushes(t *testing.T) {
	tests := []struct {
		name     string
		base     string // path of the Endpoint
		status   int    // the collector's answer
		wantPath string
		wantErr  bool
	}{
		{name: "root", base: "", status: http.StatusOK, wantPath: "/v1/traces"},
		{name: "base path", base: "/otlp/", status: http.StatusOK, wantPath: "/otlp/v1/traces"},
		{name: "rejected", base: "", status: http.StatusBadRequest, wantPath: "/v1/traces", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			posts := make(chan post, 10)
			collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p := post{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type")}
				body, err := io.ReadAll(r.Body)
				if err == nil {
					p.req = new(coltracepb.ExportTraceServiceRequest)
					err = proto.Unmarshal(body, p.req)
				}
				p.err = err
				posts <- p
				w.Header().Set("Content-Type", "application/x-protobuf")
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(collector.Close)

			var logs syncBuffer
			tr, err := tracing.New(tracing.Config{
				ServiceName: "checkout",
				Endpoint:    collector.URL + tt.base,
				Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /orders/{id}", func(http.ResponseWriter, *http.Request) {})
			req := httptest.NewRequest("GET", "/orders/1", nil)
			req.Header.Set("traceparent", "00-"+inTraceID+"-"+inSpanID+"-01")
			// The span has ended when ServeHTTP returns.
			tr.Handler(mux).ServeHTTP(httptest.NewRecorder(), req)
			select {
			case p := <-posts:
				t.Fatalf("spans posted before Shutdown: %+v", p)
			default:
			}

			err = tr.Shutdown(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("Shutdown() = %v, want an error: %v", err, tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(logs.String(), "spans not exported") {
				t.Errorf("failed export not logged: %q", logs.String())
			}
			if err := tr.Shutdown(context.Background()); (err != nil) != tt.wantErr {
				t.Errorf("second Shutdown() = %v, want the first's", err)
			}

			var p post
			select {
			case p = <-posts:
			default:
				t.Fatal("Shutdown returned before the collector got the spans")
			}
			if p.err != nil {
				t.Fatalf("collector could not decode the body: %v", p.err)
			}
			if p.method != http.MethodPost || p.path != tt.wantPath || p.contentType != "application/x-protobuf" {
				t.Errorf("got %s %s (%s), want POST %s (application/x-protobuf)", p.method, p.path, p.contentType, tt.wantPath)
			}
			rs := p.req.GetResourceSpans()
			if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
				t.Fatalf("want one span, got %v", p.req)
			}
			var service string
			for _, kv := range rs[0].GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			if service != "checkout" {
				t.Errorf("service.name %q, want checkout", service)
			}
			span := rs[0].GetScopeSpans()[0].GetSpans()[0]
			if span.GetName() != "GET /orders/{id}" {
				t.Errorf("span %q, want GET /orders/{id}", span.GetName())
			}
			if got := hex.EncodeToString(span.GetTraceId()); got != inTraceID {
				t.Errorf("trace %s, want %s", got, inTraceID)
			}
		})
	}
}
