package requestlog_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/shoal-dev/shoal/requestlog"
)

// discard is a ResponseWriter that costs nothing, so the benchmark
// measures the middleware alone.
type discard struct{ h http.Header }

func (d discard) Header() http.Header       { return d.h }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func newRequest(tb testing.TB, ctx context.Context) *http.Request {
	r, err := http.NewRequestWithContext(ctx, "GET", "http://example.com/items/1", nil)
	if err != nil {
		tb.Fatal(err)
	}
	r.RemoteAddr = "10.0.0.1:50000"
	return r
}

// BenchmarkMiddleware measures a request's cost with logging off, with
// 1% of successful requests sampled, and with every request logged (to a
// JSON handler writing to io.Discard).
func BenchmarkMiddleware(b *testing.B) {
	logger := slog.New(requestlog.Handler(slog.NewJSONHandler(io.Discard, nil), nil))
	body := []byte("ok")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	for _, bb := range []struct {
		name string
		rate float64
	}{
		{"off", -1},
		{"sampled", 0.01},
		{"on", 1},
	} {
		b.Run(bb.name, func(b *testing.B) {
			h := requestlog.Middleware(requestlog.Config{Logger: logger, SampleRate: bb.rate}, next)
			r := newRequest(b, requestlog.ContextWithID(context.Background(), "0123456789abcdef0123456789abcdef"))
			w := discard{http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkID measures taking an incoming ID and generating one.
func BenchmarkID(b *testing.B) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := requestlog.ID(next)
	for _, bb := range []struct{ name, id string }{
		{"taken", "0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10"},
		{"generated", ""},
	} {
		b.Run(bb.name, func(b *testing.B) {
			r := newRequest(b, context.Background())
			w := discard{http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				if bb.id != "" {
					r.Header.Set(requestlog.HeaderID, bb.id)
				} else {
					r.Header.Del(requestlog.HeaderID)
				}
				h.ServeHTTP(w, r)
			}
		})
	}
}
