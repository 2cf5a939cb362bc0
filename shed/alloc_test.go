package shed_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/shed"
)

// TestMiddlewareAdmitAllocsNothing fails if admitting a request through
// the middleware, and releasing it, allocates: the limiter sits in front of
// every request a service serves. It counts allocations, not time.
func TestMiddlewareAdmitAllocsNothing(t *testing.T) {
	tests := []struct {
		name string
		// work is how long the handler takes on the fake clock: from 1ms
		// on, the middleware yields before the handler (see Middleware).
		work time.Duration
	}{
		{"trivial handler", 0},
		{"handler yielded for", 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			l := newLimiter(t, shed.Config{Now: c.Now}, prometheus.NewRegistry())
			var served int
			h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.Advance(tt.work)
				served++
				w.WriteHeader(http.StatusNoContent)
			}))
			req := httptest.NewRequest("GET", "/", nil)
			w := discardWriter{h: http.Header{}}
			// Enough requests for windows to close and the handler's
			// work to be learned.
			for range 1000 {
				c.Advance(time.Millisecond)
				h.ServeHTTP(w, req)
			}
			served = 0
			allocs := testing.AllocsPerRun(1000, func() {
				c.Advance(time.Millisecond)
				h.ServeHTTP(w, req)
			})
			if served != 1001 { // AllocsPerRun runs the function once more to warm up
				t.Fatalf("%d requests served of 1001: the limiter turned some away", served)
			}
			if allocs != 0 {
				t.Fatalf("admitting a request allocates %.1f times, want 0", allocs)
			}
		})
	}
}
