package tracing_test

import (
	"context"
	"flag"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/tracing"
)

// The method set package service takes a tracer by, Shutdown included.
var _ interface {
	Handler(next http.Handler) http.Handler
	Transport(next http.RoundTripper) http.RoundTripper
	TraceID(ctx context.Context) string
	Shutdown(ctx context.Context) error
} = (*tracing.Tracer)(nil)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTracer returns a Tracer for cfg, shut down when the test ends.
func newTracer(t *testing.T, cfg tracing.Config) *tracing.Tracer {
	t.Helper()
	tr, err := tracing.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return tr
}

// recording returns a Tracer whose spans go to the returned exporter as
// they end.
func recording(t *testing.T, cfg tracing.Config) (*tracing.Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	cfg.Exporter = exp
	return newTracer(t, cfg), exp
}

// transport is a fresh base transport whose idle connections are closed
// when the test ends, so no connection goroutine outlives it.
func transport(t *testing.T) *http.Transport {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func attr(s tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func serviceName(s tracetest.SpanStub) string {
	v, _ := s.Resource.Set().Value("service.name")
	return v.AsString()
}

// spanOfKind returns the one span of kind in spans.
func spanOfKind(t *testing.T, spans tracetest.SpanStubs, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.SpanKind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans of kind %v, want 1: %+v", len(found), kind, spans)
	}
	return found[0]
}

// What the last hop of a chain saw, sent back to the test in headers.
const (
	seenTraceparent = "Seen-Traceparent"
	seenTracestate  = "Seen-Tracestate"
	seenTraceID     = "Seen-Trace-Id"
)

// hop starts a service on loopback that serves pattern through tr. With a
// next URL it calls it through tr.Transport and passes on the Seen-*
// headers of the answer; without one it answers with the trace headers it
// received and the TraceID of its request's context.
func hop(t *testing.T, tr *tracing.Tracer, pattern, next string) *httptest.Server {
	t.Helper()
	client := &http.Client{Transport: tr.Transport(transport(t))}
	mux := http.NewServeMux()
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if next == "" {
			w.Header().Set(seenTraceparent, r.Header.Get("traceparent"))
			w.Header().Set(seenTracestate, r.Header.Get("tracestate"))
			w.Header().Set(seenTraceID, tr.TraceID(r.Context()))
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, next, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		for _, h := range []string{seenTraceparent, seenTracestate, seenTraceID} {
			w.Header().Set(h, resp.Header.Get(h))
		}
		w.WriteHeader(resp.StatusCode)
	})
	srv := httptest.NewServer(tr.Handler(mux))
	t.Cleanup(srv.Close)
	return srv
}

// parseTraceparent returns the span context a traceparent header names,
// invalid if it names none.
func parseTraceparent(h string) trace.SpanContext {
	carrier := propagation.HeaderCarrier{}
	carrier.Set("traceparent", h)
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

const (
	inTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	inSpanID  = "00f067aa0ba902b7"
)

// TestChain sends a request through three services, A → B → C, each with
// its own Tracer, and checks what C received and what each exported.
func TestChain(t *testing.T) {
	tests := []struct {
		name        string
		cfg         tracing.Config // Exporter set by the test when record
		record      bool
		traceparent string
		tracestate  string
		wantTraceID string // "" means a new one
		wantSampled bool
		wantSpans   bool
	}{
		{
			name:        "sampled traceparent continues",
			record:      true,
			traceparent: "00-" + inTraceID + "-" + inSpanID + "-01",
			tracestate:  "shoal=1,other=x",
			wantTraceID: inTraceID,
			wantSampled: true,
			wantSpans:   true,
		},
		{
			name:        "no traceparent starts a trace",
			record:      true,
			wantSampled: true,
			wantSpans:   true,
		},
		{
			name:        "malformed traceparent starts a trace",
			record:      true,
			traceparent: "00-" + inTraceID + "-nothex-01",
			wantSampled: true,
			wantSpans:   true,
		},
		{
			name:        "unsampled traceparent propagates, exports nothing",
			record:      true,
			traceparent: "00-" + inTraceID + "-" + inSpanID + "-00",
			wantTraceID: inTraceID,
		},
		{
			name:        "new trace sampled out propagates, exports nothing",
			cfg:         tracing.Config{SampleRatio: 1e-12},
			record:      true,
			wantSampled: false,
		},
		{
			name:        "sampled parent wins over ratio",
			cfg:         tracing.Config{SampleRatio: 1e-12},
			record:      true,
			traceparent: "00-" + inTraceID + "-" + inSpanID + "-01",
			wantTraceID: inTraceID,
			wantSampled: true,
			wantSpans:   true,
		},
		{
			name:        "no endpoint propagates traceparent",
			traceparent: "00-" + inTraceID + "-" + inSpanID + "-01",
			tracestate:  "shoal=1",
			wantTraceID: inTraceID,
			wantSampled: true,
		},
		{
			name:        "no endpoint starts a trace",
			wantSampled: true,
		},
		{
			name:        "no endpoint keeps unsampled",
			traceparent: "00-" + inTraceID + "-" + inSpanID + "-00",
			wantTraceID: inTraceID,
		},
		{
			name: "no endpoint samples out",
			cfg:  tracing.Config{SampleRatio: 1e-12},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tracers [3]*tracing.Tracer
			var exps [3]*tracetest.InMemoryExporter
			for i, name := range []string{"a", "b", "c"} {
				cfg := tt.cfg
				cfg.ServiceName = name
				if tt.record {
					tracers[i], exps[i] = recording(t, cfg)
				} else {
					if i == 0 {
						// No exporter, no goroutine.
						before := goleak.IgnoreCurrent()
						tracers[i] = newTracer(t, cfg)
						goleak.VerifyNone(t, before)
						continue
					}
					tracers[i] = newTracer(t, cfg)
				}
			}
			c := hop(t, tracers[2], "GET /c/{id}", "")
			b := hop(t, tracers[1], "GET /b/{x}", c.URL+"/c/2")
			a := hop(t, tracers[0], "GET /a", b.URL+"/b/1")

			req, err := http.NewRequest(http.MethodGet, a.URL+"/a", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.traceparent != "" {
				req.Header.Set("traceparent", tt.traceparent)
			}
			if tt.tracestate != "" {
				req.Header.Set("tracestate", tt.tracestate)
			}
			resp, err := (&http.Client{Transport: transport(t)}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			// Close waits for the handlers, so every server span has
			// ended (and been exported) once it returns.
			a.Close()
			b.Close()
			c.Close()

			// What C received: a traceparent of the same trace.
			tp := parseTraceparent(resp.Header.Get(seenTraceparent))
			if !tp.IsValid() {
				t.Fatalf("C got traceparent %q", resp.Header.Get(seenTraceparent))
			}
			if tt.wantTraceID != "" && tp.TraceID().String() != tt.wantTraceID {
				t.Errorf("C got trace %s, want %s", tp.TraceID(), tt.wantTraceID)
			}
			if tp.SpanID().String() == inSpanID {
				t.Errorf("C got A's caller's span %s as its parent", inSpanID)
			}
			if tp.IsSampled() != tt.wantSampled {
				t.Errorf("C got sampled=%v, want %v", tp.IsSampled(), tt.wantSampled)
			}
			if got := resp.Header.Get(seenTraceID); got != tp.TraceID().String() {
				t.Errorf("TraceID in C's handler = %q, want %q", got, tp.TraceID())
			}
			if got := resp.Header.Get(seenTracestate); got != tt.tracestate {
				t.Errorf("C got tracestate %q, want %q", got, tt.tracestate)
			}

			if !tt.record {
				return
			}
			var spans [3]tracetest.SpanStubs
			n := 0
			for i := range exps {
				spans[i] = exps[i].GetSpans()
				n += len(spans[i])
			}
			if !tt.wantSpans {
				if n != 0 {
					t.Fatalf("%d spans exported, want none", n)
				}
				return
			}
			aServer := spanOfKind(t, spans[0], trace.SpanKindServer)
			aClient := spanOfKind(t, spans[0], trace.SpanKindClient)
			bServer := spanOfKind(t, spans[1], trace.SpanKindServer)
			bClient := spanOfKind(t, spans[1], trace.SpanKindClient)
			cServer := spanOfKind(t, spans[2], trace.SpanKindServer)
			if n != 5 {
				t.Errorf("%d spans, want 5", n)
			}

			if tt.wantTraceID == "" {
				// A new trace has no parent.
				if aServer.Parent.IsValid() {
					t.Errorf("A's server span has parent %v", aServer.Parent)
				}
			} else if got := aServer.Parent.SpanID().String(); got != inSpanID || !aServer.Parent.IsRemote() {
				t.Errorf("A's server span has parent %s (remote %v), want remote %s", got, aServer.Parent.IsRemote(), inSpanID)
			}
			traceID := aServer.SpanContext.TraceID()
			links := []struct {
				name          string
				child, parent tracetest.SpanStub
				remote        bool
			}{
				{"A client under A server", aClient, aServer, false},
				{"B server under A client", bServer, aClient, true},
				{"B client under B server", bClient, bServer, false},
				{"C server under B client", cServer, bClient, true},
			}
			for _, l := range links {
				if l.child.SpanContext.TraceID() != traceID {
					t.Errorf("%s: trace %s, want %s", l.name, l.child.SpanContext.TraceID(), traceID)
				}
				if l.child.Parent.SpanID() != l.parent.SpanContext.SpanID() || l.child.Parent.IsRemote() != l.remote {
					t.Errorf("%s: parent %s (remote %v), want %s (remote %v)", l.name,
						l.child.Parent.SpanID(), l.child.Parent.IsRemote(), l.parent.SpanContext.SpanID(), l.remote)
				}
			}
			if tp.TraceID() != traceID || tp.SpanID() != bClient.SpanContext.SpanID() {
				t.Errorf("C got traceparent %s, want trace %s span %s", resp.Header.Get(seenTraceparent), traceID, bClient.SpanContext.SpanID())
			}

			for _, s := range []struct {
				span              tracetest.SpanStub
				name, route, serv string
			}{
				{aServer, "GET /a", "/a", "a"},
				{aClient, "GET", "", "a"},
				{bServer, "GET /b/{x}", "/b/{x}", "b"},
				{bClient, "GET", "", "b"},
				{cServer, "GET /c/{id}", "/c/{id}", "c"},
			} {
				if s.span.Name != s.name {
					t.Errorf("span %q, want %q", s.span.Name, s.name)
				}
				route, ok := attr(s.span, "http.route")
				if s.route != "" && route.AsString() != s.route || s.route == "" && ok {
					t.Errorf("span %q: http.route %q, want %q", s.span.Name, route.AsString(), s.route)
				}
				if code, _ := attr(s.span, "http.response.status_code"); code.AsInt64() != http.StatusOK {
					t.Errorf("span %q: http.response.status_code %v, want 200", s.span.Name, code.String())
				}
				if got := serviceName(s.span); got != s.serv {
					t.Errorf("span %q: service.name %q, want %q", s.span.Name, got, s.serv)
				}
			}
		})
	}
}

// TestHandlerSpan checks a server span's name, route and status per answer.
func TestHandlerSpan(t *testing.T) {
	replace := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			type key struct{}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, 1)))
		})
	}
	tests := []struct {
		name       string
		method     string
		path       string
		wrap       func(tr *tracing.Tracer, mux http.Handler) http.Handler // between Handler and mux
		wantName   string
		wantRoute  string
		wantStatus codes.Code
		wantDesc   string
		wantCode   int64
		wantPanic  bool
	}{
		{name: "route", method: "GET", path: "/items/7", wantName: "GET /items/{id}", wantRoute: "/items/{id}", wantCode: 200},
		{name: "route of any method", method: "POST", path: "/any", wantName: "POST /any", wantRoute: "/any", wantCode: 200},
		{name: "unknown method", method: "PURGE", path: "/any", wantName: "HTTP /any", wantRoute: "/any", wantCode: 200},
		{name: "no route", method: "GET", path: "/nothing", wantName: "GET", wantCode: 404},
		{name: "client error is no server error", method: "GET", path: "/status/429", wantName: "GET /status/{code}", wantRoute: "/status/{code}", wantCode: 429},
		{name: "5xx is an error", method: "GET", path: "/status/503", wantName: "GET /status/{code}", wantRoute: "/status/{code}", wantCode: 503, wantStatus: codes.Error},
		{name: "panic is an error", method: "GET", path: "/panic", wantName: "GET /panic", wantRoute: "/panic", wantStatus: codes.Error, wantDesc: "handler panicked", wantPanic: true},
		{
			name: "replaced request hides the route", method: "GET", path: "/items/7",
			wrap:     func(_ *tracing.Tracer, mux http.Handler) http.Handler { return replace(mux) },
			wantName: "GET", wantCode: 200,
		},
		{
			name: "Route finds it", method: "GET", path: "/items/7",
			wrap:     func(tr *tracing.Tracer, mux http.Handler) http.Handler { return replace(tr.Route(mux)) },
			wantName: "GET /items/{id}", wantRoute: "/items/{id}", wantCode: 200,
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/any", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("code") {
		case "429":
			w.WriteHeader(http.StatusTooManyRequests)
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := recording(t, tracing.Config{})
			var h http.Handler = mux
			if tt.wrap != nil {
				h = tt.wrap(tr, h)
			}
			h = tr.Handler(h)
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tt.method, tt.path, nil))
				return false
			}()
			if panicked != tt.wantPanic {
				t.Errorf("panicked %v, want %v", panicked, tt.wantPanic)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name != tt.wantName {
				t.Errorf("name %q, want %q", s.Name, tt.wantName)
			}
			if route, _ := attr(s, "http.route"); route.AsString() != tt.wantRoute {
				t.Errorf("http.route %q, want %q", route.AsString(), tt.wantRoute)
			}
			if s.Status.Code != tt.wantStatus || s.Status.Description != tt.wantDesc {
				t.Errorf("status %v %q, want %v %q", s.Status.Code, s.Status.Description, tt.wantStatus, tt.wantDesc)
			}
			if code, _ := attr(s, "http.response.status_code"); code.AsInt64() != tt.wantCode {
				t.Errorf("http.response.status_code %d, want %d", code.AsInt64(), tt.wantCode)
			}
		})
	}
}

// TestTransportSpan checks a client span's name, parent and status, and
// the traceparent it sends.
func TestTransportSpan(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(seenTraceparent, r.Header.Get("traceparent"))
		switch r.URL.Path {
		case "/404":
			w.WriteHeader(http.StatusNotFound)
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name       string
		method     string
		url        string
		wantName   string
		wantStatus codes.Code
		wantCode   int64
		wantErr    bool
	}{
		{name: "ok", method: "GET", url: srv.URL + "/", wantName: "GET", wantCode: 200},
		{name: "post", method: "POST", url: srv.URL + "/", wantName: "POST", wantCode: 200},
		{name: "unknown method", method: "PURGE", url: srv.URL + "/", wantName: "HTTP", wantCode: 200},
		{name: "4xx is a client error", method: "GET", url: srv.URL + "/404", wantName: "GET", wantCode: 404, wantStatus: codes.Error},
		{name: "5xx", method: "GET", url: srv.URL + "/500", wantName: "GET", wantCode: 500, wantStatus: codes.Error},
		{name: "refused", method: "GET", url: refused, wantName: "GET", wantStatus: codes.Error, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := recording(t, tracing.Config{})
			// A program's own span, from the Tracer's provider, is the
			// client span's parent.
			ctx, parent := tr.TracerProvider().Tracer("test").Start(context.Background(), "caller")
			req, err := http.NewRequestWithContext(ctx, tt.method, tt.url, strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tr.Transport(transport(t))}).Do(req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want one: %v", err, tt.wantErr)
			}
			var sent string
			if err == nil {
				sent = resp.Header.Get(seenTraceparent)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			parent.End()

			spans := exp.GetSpans()
			if len(spans) != 2 {
				t.Fatalf("%d spans, want 2", len(spans))
			}
			s := spanOfKind(t, spans, trace.SpanKindClient)
			if s.Name != tt.wantName {
				t.Errorf("name %q, want %q", s.Name, tt.wantName)
			}
			if s.Parent.SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("parent %s, want %s", s.Parent.SpanID(), parent.SpanContext().SpanID())
			}
			if s.Status.Code != tt.wantStatus {
				t.Errorf("status %v, want %v", s.Status.Code, tt.wantStatus)
			}
			if code, _ := attr(s, "http.response.status_code"); code.AsInt64() != tt.wantCode {
				t.Errorf("http.response.status_code %d, want %d", code.AsInt64(), tt.wantCode)
			}
			if tt.wantErr {
				return
			}
			want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
			if sent != want {
				t.Errorf("sent traceparent %q, want %q", sent, want)
			}
		})
	}
}

func TestTraceIDWithoutSpan(t *testing.T) {
	tr := newTracer(t, tracing.Config{})
	if got := tr.TraceID(context.Background()); got != "" {
		t.Errorf("TraceID of a context without a span = %q, want empty", got)
	}
}

func TestShutdownIdempotent(t *testing.T) {
	for _, cfg := range []tracing.Config{{}, {Exporter: tracetest.NewNoopExporter()}} {
		tr, err := tracing.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		}
		// After Shutdown, spans are dropped but context still flows.
		h := tr.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tr.TraceID(r.Context()) != inTraceID {
				w.WriteHeader(http.StatusTeapot)
			}
		}))
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("traceparent", "00-"+inTraceID+"-"+inSpanID+"-01")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("trace ID lost after Shutdown")
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     tracing.Config
		wantErr string // "" means valid
	}{
		{name: "zero", cfg: tracing.Config{}},
		{name: "ratio", cfg: tracing.Config{SampleRatio: 0.25}},
		{name: "ratio 1", cfg: tracing.Config{SampleRatio: 1}},
		{name: "negative ratio", cfg: tracing.Config{SampleRatio: -0.1}, wantErr: "tracing: SampleRatio -0.1 is negative"},
		{name: "ratio above 1", cfg: tracing.Config{SampleRatio: 1.5}, wantErr: "tracing: SampleRatio 1.5 is above 1"},
		{name: "NaN ratio", cfg: tracing.Config{SampleRatio: math.NaN()}, wantErr: "tracing: SampleRatio is NaN"},
		{name: "http endpoint", cfg: tracing.Config{Endpoint: "http://otel-collector:4318"}},
		{name: "https endpoint with path", cfg: tracing.Config{Endpoint: "HTTPS://collector.example/otlp/"}},
		{name: "host:port endpoint", cfg: tracing.Config{Endpoint: "otel-collector:4318"}, wantErr: `tracing: Endpoint "otel-collector:4318" is not an http:// or https:// URL`},
		{name: "grpc endpoint", cfg: tracing.Config{Endpoint: "grpc://otel-collector:4317"}, wantErr: "is not an http:// or https:// URL"},
		{name: "no host", cfg: tracing.Config{Endpoint: "http:///v1"}, wantErr: "has no host"},
		{name: "query", cfg: tracing.Config{Endpoint: "http://c:4318/?x=1"}, wantErr: "has a query"},
		{name: "unparsable", cfg: tracing.Config{Endpoint: "http://c:port"}, wantErr: `tracing: Endpoint "http://c:port": parse`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			if _, err := tracing.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestBind(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    tracing.Config
		wantErr string
	}{
		{name: "defaults", want: tracing.Config{SampleRatio: 1}},
		{
			name: "env",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
			want: tracing.Config{Endpoint: "http://otel-collector:4318", SampleRatio: 0.1},
		},
		{
			name: "flags beat env",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
			args: []string{"-otlp-endpoint", "https://c.example", "-trace-sample-ratio", "0.5"},
			want: tracing.Config{Endpoint: "https://c.example", SampleRatio: 0.5},
		},
		{
			name:    "malformed env",
			env:     map[string]string{"OTEL_TRACES_SAMPLER_ARG": "half"},
			wantErr: "OTEL_TRACES_SAMPLER_ARG",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cs := config.New(fs, lookup)
			cfg := tracing.Config{ServiceName: "kept"}
			tracing.Bind(cs, &cfg)
			err := cs.Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ServiceName = "kept"
			if cfg != tt.want {
				t.Errorf("config %+v, want %+v", cfg, tt.want)
			}
		})
	}
}
