package lifecycle_test

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal/lifecycle"
)

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// drainWrapped is a trivial handler behind the wrapper Serve puts in
// front of a server's handler.
func drainWrapped(tb testing.TB) http.Handler {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
	l := lifecycle.New(lifecycle.Config{Logger: slog.New(slog.DiscardHandler)})
	l.Serve("public", srv, ln)
	return srv.Handler
}

// BenchmarkDrainWrapper measures what the drain wrapper adds to a request
// outside the drain.
func BenchmarkDrainWrapper(b *testing.B) {
	h := drainWrapped(b)
	req := httptest.NewRequest("GET", "/", nil)
	w := discardWriter{http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// TestDrainWrapperAllocs fails if the drain wrapper allocates per request.
func TestDrainWrapperAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; scripts/test.sh runs this without -race")
	}
	h := drainWrapped(t)
	req := httptest.NewRequest("GET", "/", nil)
	w := discardWriter{http.Header{}}
	if got := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); got > 0 {
		t.Errorf("%v allocations per request, want 0", got)
	}
}
