package shed_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/shed"
)

// BenchmarkMiddleware compares a bare handler with the same handler behind
// the limiter (admitted), and the cost of a rejection.
func BenchmarkMiddleware(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	admit, err := shed.New(shed.Config{}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	reject, err := shed.New(shed.Config{InitialLimit: 1, MaxLimit: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	reject.Acquire() // hold the only slot
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", h},
		{"admitted", admit.Middleware(h)},
		{"rejected", reject.Middleware(h)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/", nil)
			w := discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

func BenchmarkAcquireParallel(b *testing.B) {
	l, err := shed.New(shed.Config{MaxLimit: 10000, InitialLimit: 10000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if release, ok := l.Acquire(); ok {
				release(nil)
			}
		}
	})
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}
