package service

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal/server"
)

// pong is the trivial route's body, a slice so writing it allocates
// nothing.
var pong = []byte("pong\n")

// chainHandler is the public server's handler as Run builds it, with a
// trivial route, and the context of a connection with the age and request
// limits Run sets.
func chainHandler(tb testing.TB, o Options) (http.Handler, context.Context) {
	tb.Helper()
	o.Host = "127.0.0.1"
	o.PodName = "bench-0"
	o.Logger = slog.New(slog.DiscardHandler)
	svc, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(svc.Close)
	svc.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pong) })
	h, err := svc.handler()
	if err != nil {
		tb.Fatal(err)
	}
	srv := server.New(server.Config{MaxConnAge: DefaultMaxConnAge, MaxConnRequests: 1 << 40}, h)
	return srv.Handler, srv.ConnContext(context.Background(), (net.Conn)(nil))
}

// discardWriter is a ResponseWriter that costs nothing, so a benchmark
// measures the chain alone. Its header is cleared between requests, as
// each response of net/http starts with an empty one.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// BenchmarkHandler measures the whole chain of handler() and server.New
// around a trivial route, against the route served by a bare ServeMux.
func BenchmarkHandler(b *testing.B) {
	bare := http.NewServeMux()
	bare.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pong) })
	for _, bc := range []struct {
		name string
		o    Options
		bare bool
		id   string
	}{
		{name: "bare ServeMux", bare: true},
		{name: "service chain"},
		{name: "service chain, request ID made", id: "-"},
		{name: "service chain, caller's request ID", o: Options{}, id: "0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10"},
		{name: "service chain, shedding off, log sampled 1%", o: Options{ShedMaxLimit: -1, RequestLogSample: 0.01}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h http.Handler = bare
			ctx := context.Background()
			if !bc.bare {
				h, ctx = chainHandler(b, bc.o)
			}
			req := httptest.NewRequest(http.MethodGet, "/v1/ping", nil).WithContext(ctx)
			w := discardWriter{http.Header{}}
			ids := []string{bc.id}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				setID(req, bc.id, ids)
				h.ServeHTTP(w, req)
			}
		})
	}
}

// setID gives req the X-Request-ID vals: none for "-", unchanged for "".
func setID(req *http.Request, id string, vals []string) {
	switch id {
	case "-":
		delete(req.Header, "X-Request-Id")
	case "":
	default:
		req.Header["X-Request-Id"] = vals
	}
}

// TestHandlerAllocs fails if a request through the whole chain of
// handler() and server.New costs more allocations than it does today: the
// request ID's context and the request copy (2, and the ID's string when
// one is made), the metrics' writer (1), panic recovery's writer (1) and
// the route deadline's context and request copy (2). The request log line
// (on, its logger off) reads the metrics' writer; shedding and ServeMux's
// match allocate nothing (the lifecycle's drain wrapper, outside this
// chain, neither: TestDrainWrapperAllocs).
func TestHandlerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; scripts/test.sh runs this without -race")
	}
	for _, tt := range []struct {
		name string
		o    Options
		id   string
		want float64
	}{
		{"defaults, caller's ID", Options{}, "0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10", 6},
		{"defaults, ID made", Options{}, "-", 7},
		{"no shedding, log sampled", Options{ShedMaxLimit: -1, RequestLogSample: 0.01}, "0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10", 6},
		{"no route timeout, log off", Options{RequestTimeout: -1, RequestLogSample: -1}, "0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10", 4},
	} {
		h, ctx := chainHandler(t, tt.o)
		req := httptest.NewRequest(http.MethodGet, "/v1/ping", nil).WithContext(ctx)
		w := discardWriter{http.Header{}}
		ids := []string{tt.id}
		got := testing.AllocsPerRun(1000, func() {
			clear(w.h)
			setID(req, tt.id, ids)
			h.ServeHTTP(w, req)
		})
		t.Logf("%s: %v allocations per request", tt.name, got)
		if got > tt.want {
			t.Errorf("%s: %v allocations per request, want at most %v", tt.name, got, tt.want)
		}
	}
}

// BenchmarkHandlerNewGoroutine serves each request on a goroutine of its
// own, as net/http's HTTP/2 server does, so the figure includes the
// growth of each new goroutine's stack that the chain's depth causes.
func BenchmarkHandlerNewGoroutine(b *testing.B) {
	bare := http.NewServeMux()
	bare.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pong) })
	for _, bc := range []struct {
		name string
		bare bool
	}{
		{"bare ServeMux", true},
		{"service chain", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h http.Handler = bare
			ctx := context.Background()
			if !bc.bare {
				h, ctx = chainHandler(b, Options{})
			}
			req := httptest.NewRequest(http.MethodGet, "/v1/ping", nil).WithContext(ctx)
			req.Header["X-Request-Id"] = []string{"0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10"}
			req.ProtoMajor, req.ProtoMinor, req.Proto = 2, 0, "HTTP/2.0"
			done := make(chan struct{})
			b.ReportAllocs()
			for b.Loop() {
				w := discardWriter{http.Header{}}
				go func() {
					h.ServeHTTP(w, req)
					done <- struct{}{}
				}()
				<-done
			}
		})
	}
}
