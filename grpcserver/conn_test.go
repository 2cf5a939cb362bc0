package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/lifecycle"
)

// connCounter counts the connections a server accepts.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		c.n.Add(1)
	}
}

// TestMaxConnAgeReconnectsWithoutFailedRPC: a connection past its age
// gets GOAWAY; the client reconnects and no RPC fails meanwhile.
func TestMaxConnAgeReconnectsWithoutFailedRPC(t *testing.T) {
	var conns connCounter
	h := start(t, grpcserver.Config{
		MaxConnAge: 300 * time.Millisecond, MaxConnAgeGrace: 10 * time.Second,
		Options: []grpc.ServerOption{grpc.StatsHandler(&conns)},
	}, lifecycle.Config{DrainDelay: -1})
	cc := dial(t, h.addr)
	ctx := ctxT(t)
	seen := map[string]bool{}
	for rpcs := 0; len(seen) < 4; rpcs++ {
		if _, _, err := call(ctx, cc, "x"); err != nil {
			t.Fatalf("RPC %d, on connection %d: %v", rpcs, len(seen), err)
		}
		seen[clientAddr(t, cc)] = true
	}
	if n := conns.n.Load(); n < 4 {
		t.Fatalf("server saw %d connections, want at least 4", n)
	}
}

// TestKeepaliveEnforcement: a client pinging every second on a
// connection without streams is told ENHANCE_YOUR_CALM and cut off.
func TestKeepaliveEnforcement(t *testing.T) {
	h := start(t, grpcserver.Config{}, lifecycle.Config{DrainDelay: -1})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	pinged := make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := uint64(0); ; i++ {
			var data [8]byte
			data[7] = byte(i)
			if err := fr.WritePing(false, data); err != nil {
				pinged <- nil // the server closed the connection
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				pinged <- nil
				return
			}
		}
	}()
	defer func() { close(stop); <-pinged }()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY ENHANCE_YOUR_CALM: %v", err)
		}
		ga, ok := f.(*http2.GoAwayFrame)
		if !ok {
			continue
		}
		if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
			t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", ga.ErrCode, ga.DebugData())
		}
		break
	}
	// And the server closes the connection.
	for {
		if _, err := fr.ReadFrame(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("connection not closed after GOAWAY: %v", err)
				}
			}
			return
		}
	}
}
