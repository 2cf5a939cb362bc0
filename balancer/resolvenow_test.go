package balancer

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// countingResolver serves a fixed address set and counts ResolveNow calls.
type countingResolver struct {
	*Static
	calls atomic.Int32
}

func (r *countingResolver) ResolveNow() { r.calls.Add(1) }

var _ ResolveNower = (*countingResolver)(nil)

// TestResolveNowOnConnectionErrors: a refused dial and a connection reset
// mid-exchange (a pod killed and restarted) both ask the resolver for a
// fresh endpoint set; a caller that gave up does not.
func TestResolveNowOnConnectionErrors(t *testing.T) {
	// An endpoint that accepts and resets every connection.
	resetLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer resetLn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := resetLn.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	defer func() { resetLn.Close(); <-done }()

	// An address nothing listens on.
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()

	tests := []struct {
		name      string
		addr      string
		cancelled bool
		want      int32
	}{
		{"connection reset", resetLn.Addr().String(), false, 1},
		{"dial refused", refusedAddr, false, 1},
		{"caller gave up", refusedAddr, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := NewStatic(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			r := &countingResolver{Static: st}
			b, _ := newTestBalancer(t, Config{Resolver: r})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reqCtx := ctx
			if tt.cancelled {
				c, cancelNow := context.WithCancel(ctx)
				cancelNow()
				reqCtx = c
			}
			req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, "http://svc.test/", nil)
			if _, err := b.RoundTrip(req); err == nil {
				t.Fatal("round trip succeeded against a broken endpoint")
			}
			if got := r.calls.Load(); got != tt.want {
				t.Errorf("ResolveNow called %d times, want %d", got, tt.want)
			}
		})
	}
}
