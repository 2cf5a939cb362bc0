package grpcserver_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/lifecycle"
)

// silentConn opens a TCP connection that sends nothing and waits until
// the server counts it open (want connections in all).
func silentConn(t *testing.T, h *harness, want float64) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitValue(t, h, want, "grpc_server_connections_open")
	return c
}

// closedByServer reports whether the server closed c, reading until it
// does or 30s pass.
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

// TestMaxConns: beyond MaxConns a new connection takes the place of the
// one idle longest; only when every connection has a call in flight is
// the new one closed instead.
func TestMaxConns(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{
			name: "the connection idle longest is closed for a new one",
			run: func(t *testing.T, h *harness) {
				silent := silentConn(t, h, 1)
				cc := dial(t, h.addr)
				before := clientAddr(t, cc)
				waitValue(t, h, 2, "grpc_server_connections_open")
				// A third client: the silent connection, idle since it
				// opened, is the one to go.
				if _, _, err := call(ctxT(t), dial(t, h.addr), "third"); err != nil {
					t.Fatalf("a new client beyond MaxConns: %v", err)
				}
				if !closedByServer(silent) {
					t.Fatal("the connection idle longest is still open")
				}
				waitValue(t, h, 1, "grpc_server_connections_evicted_total")
				waitValue(t, h, 0, "grpc_server_connections_refused_total")
				// The newer of the others was kept: cc is on the same
				// connection. The third client's is gone now, idle longer
				// than cc's, which has just called.
				if after := clientAddr(t, cc); after != before {
					t.Fatalf("cc moved from %s to %s: its connection was closed", before, after)
				}
			},
		},
		{
			name: "a connection with a call in flight is never closed",
			run: func(t *testing.T, h *harness) {
				ctx := ctxT(t)
				res := make(chan error, 2)
				for range 2 {
					cc := dial(t, h.addr)
					go func() { _, _, err := call(ctx, cc, "block"); res <- err }()
					<-h.svc.started
				}
				for i := range 2 {
					c := silentConn(t, h, 2)
					if !closedByServer(c) {
						t.Fatalf("connection %d beyond MaxConns with every other busy is still open", i)
					}
					waitValue(t, h, float64(i+1), "grpc_server_connections_refused_total")
				}
				close(h.svc.release)
				for range 2 {
					if err := <-res; err != nil {
						t.Fatalf("a call in flight: %v", err)
					}
				}
				waitValue(t, h, 0, "grpc_server_connections_evicted_total")
			},
		},
		{
			name: "a health Watch alone does not keep a connection",
			run: func(t *testing.T, h *harness) {
				ctx, cancel := context.WithCancel(ctxT(t))
				defer cancel()
				w, err := healthpb.NewHealthClient(dial(t, h.addr)).Watch(ctx, &healthpb.HealthCheckRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Recv(); err != nil {
					t.Fatalf("watch: %v", err)
				}
				silentConn(t, h, 2)
				if _, _, err := call(ctxT(t), dial(t, h.addr), "third"); err != nil {
					t.Fatalf("a new client beyond MaxConns: %v", err)
				}
				// The watching connection was the one idle longest.
				if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
					t.Fatalf("watch after its connection was closed: %v, want Unavailable", err)
				}
				waitValue(t, h, 1, "grpc_server_connections_evicted_total")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, grpcserver.Config{MaxConns: 2}, lifecycle.Config{DrainDelay: -1})
			tt.run(t, h)
		})
	}
}
