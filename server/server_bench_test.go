package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/server"
)

// discardWriter is a ResponseWriter that costs nothing, so a benchmark
// measures the middleware alone.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// SetReadDeadline is here as net/http's writers have it, for the body
// rate bound.
func (d discardWriter) SetReadDeadline(time.Time) error { return nil }

// middlewareCases are the handlers of this package around a trivial one,
// with the context each request is served in and the allocations each
// may add per request (TestAllocs fails above them).
func middlewareCases() []struct {
	name   string
	h      http.Handler
	ctx    context.Context
	body   bool
	allocs float64
} {
	trivial := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	limited := server.New(server.Config{MaxConnAge: time.Hour, MaxConnRequests: 1 << 40}, trivial)
	connCtx := limited.ConnContext(context.Background(), (net.Conn)(nil))
	return []struct {
		name   string
		h      http.Handler
		ctx    context.Context
		body   bool
		allocs float64
	}{
		{"bare", trivial, context.Background(), false, 0},
		{"server.New", server.New(server.Config{}, trivial).Handler, context.Background(), false, 0},
		{"server.New with conn limits", limited.Handler, connCtx, false, 0},
		// A body adds its size bound and its rate bound.
		{"server.New with conn limits, body", limited.Handler, connCtx, true, 2},
		{"ServedBy", server.ServedBy("pod-0", trivial), context.Background(), false, 0},
		{"Recover", server.Recover(slog.New(slog.DiscardHandler), func() {}, trivial), context.Background(), false, 1},
	}
}

// BenchmarkHandler measures what each handler of the package adds to a
// trivial one.
func BenchmarkHandler(b *testing.B) {
	for _, bb := range middlewareCases() {
		b.Run(bb.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(bb.ctx)
			body := strings.NewReader("")
			w := discardWriter{http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				if bb.body {
					body.Reset("hello")
					req.Body = io.NopCloser(body)
				}
				clear(w.h)
				bb.h.ServeHTTP(w, req)
			}
		})
	}
}

// TestAllocs fails if a handler of this package allocates more per
// request than it does today.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; scripts/test.sh runs this without -race")
	}
	for _, tt := range middlewareCases() {
		req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(tt.ctx)
		body := strings.NewReader("")
		rc := io.NopCloser(body)
		w := discardWriter{http.Header{}}
		got := testing.AllocsPerRun(1000, func() {
			if tt.body {
				body.Reset("hello")
				req.Body = rc
			}
			clear(w.h)
			tt.h.ServeHTTP(w, req)
		})
		t.Logf("%s: %v allocations per request", tt.name, got)
		if got > tt.allocs {
			t.Errorf("%s: %v allocations per request, want at most %v", tt.name, got, tt.allocs)
		}
	}
}
