package server_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/server"
)

// BenchmarkHandler measures what New's handler chain (connection limits,
// body limit) adds to a trivial handler.
func BenchmarkHandler(b *testing.B) {
	trivial := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	limited := server.New(server.Config{MaxConnAge: time.Hour, MaxConnRequests: 1 << 40}, trivial)
	connCtx := limited.ConnContext(context.Background(), (net.Conn)(nil))
	benches := []struct {
		name string
		h    http.Handler
		ctx  context.Context
	}{
		{"bare", trivial, context.Background()},
		{"server.New", server.New(server.Config{}, trivial).Handler, context.Background()},
		{"server.New with conn limits", limited.Handler, connCtx},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(bb.ctx)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				bb.h.ServeHTTP(w, req)
			}
		})
	}
}
