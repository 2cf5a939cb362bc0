package grpcserver_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/metricstest"
)

// resetCalls opens n calls of method on a connection of its own, each
// cancelled (RST_STREAM) right after its headers, and returns the
// connection, every frame written.
func resetCalls(t *testing.T, addr, method string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method}, {Name: ":authority", Value: addr},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	} {
		enc.WriteField(f)
	}
	// The server's frames are read meanwhile, so its writes never stall
	// its reads; closedByServer reads what comes after.
	var frames bytes.Buffer
	fr := http2.NewFramer(&frames, nil)
	io.WriteString(&frames, http2.ClientPreface)
	fr.WriteSettings()
	for i := range n {
		id := uint32(2*i + 1)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
		fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Write(frames.Bytes()) // fails once the server has closed it
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c
}

// TestRapidReset: a connection most of whose calls are cancelled before
// their message is closed, and counted; a busy client whose calls end
// well, a few before their message among them, keeps its connection.
func TestRapidReset(t *testing.T) {
	tests := []struct {
		name   string
		method string
	}{
		{"the program's calls", unaryCall},
		{"health checks", "/grpc.health.v1.Health/Check"},
		{"a method the server does not have", "/grpc.testing.Nope/Nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, grpcserver.Config{}, lifecycle.Config{DrainDelay: -1})
			cc := dial(t, h.addr)
			client := testgrpc.NewTestServiceClient(cc)
			ctx := ctxT(t)
			// A well-behaved client: many calls, and some cancelled
			// before they were sent (grpc-go then sends nothing) or
			// calling a method the server does not have, which end
			// before their message.
			before := clientAddr(t, cc)
			for i := range 300 {
				if i%10 == 0 {
					if _, err := client.UnimplementedCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
						t.Fatalf("unimplemented call: %v", err)
					}
					continue
				}
				if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}

			c := resetCalls(t, h.addr, tt.method, 1000)
			if !closedByServer(c) {
				t.Fatal("the server kept a connection whose calls were all reset")
			}
			waitValue(t, h, 1, "grpc_server_connections_reset_total")

			keptConnection(t, h, cc, before, 1)
		})
	}
}

// TestCallsInFlightBound: a receive budget admits RecvBudget/16 KiB calls
// at once, however little each holds; beyond that a call is refused
// UNAVAILABLE at its headers, and a health check still passes on a
// connection of its own.
func TestCallsInFlightBound(t *testing.T) {
	const maxMsg = 64 << 10
	budget := grpcserver.ShareOf(maxMsg) + grpcserver.CallCost // a share and room for metadata
	calls := int(budget / grpcserver.CallCost)
	h := start(t, grpcserver.Config{MaxRecvMsgSize: maxMsg, RecvBudget: budget}, lifecycle.Config{DrainDelay: -1})
	ctx := ctxT(t)
	cc := dial(t, h.addr)
	client := testgrpc.NewTestServiceClient(cc)
	cancels := make([]context.CancelFunc, calls)
	for i := range calls {
		sctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		s, err := client.StreamingOutputCall(sctx, &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("stream %d of %d: %v", i, calls, err)
		}
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("call beyond %d in flight: %v, want Unavailable", calls, err)
	}
	if _, err := healthOf(ctx, dial(t, h.addr), ""); err != nil {
		t.Fatalf("health check with %d calls in flight: %v", calls, err)
	}
	cancels[0]()
	for {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatalf("call after one stream ended: %v", err)
		}
	}
}

// TestCallsWaitingForTheBudgetAreNoReset: a well-behaved client whose
// calls wait for the receive budget until their deadline, more than 100
// of them and nearly all its calls, keeps its connection: those calls
// ended before their message because the server made them wait.
func TestCallsWaitingForTheBudgetAreNoReset(t *testing.T) {
	const maxMsg = 128 << 10
	h := start(t, grpcserver.Config{MaxRecvMsgSize: maxMsg, RecvBudget: grpcserver.ShareOf(maxMsg) + grpcserver.CallCost}, lifecycle.Config{DrainDelay: -1})
	ctx := ctxT(t)
	cc := dial(t, h.addr)
	client := testgrpc.NewTestServiceClient(cc)
	before := clientAddr(t, cc)
	// Messages larger than a stream's window (64 KiB), so that none is
	// whole in the server's buffer when its call gives up waiting.
	big := &testgrpc.Payload{Body: make([]byte, 100<<10)}
	// A handler holding a 60 KiB message leaves less than a share.
	hctx, release := context.WithCancel(ctx)
	defer release()
	held := make(chan error, 1)
	go func() {
		_, err := client.UnaryCall(hctx, &testgrpc.SimpleRequest{
			Payload:        &testgrpc.Payload{Body: []byte("hang")},
			ResponseStatus: &testgrpc.EchoStatus{Message: strings.Repeat("m", 60<<10)},
		})
		held <- err
	}()
	<-h.svc.started
	for i := range 150 {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{Payload: big})
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call %d while the budget is held: %v, want DeadlineExceeded", i, err)
		}
	}
	release()
	<-held
	keptConnection(t, h, cc, before, 0)
}

// keptConnection checks that cc is still served on the connection it had
// at before, and that resets connections were closed as rapid resets.
func keptConnection(t *testing.T, h *harness, cc *grpc.ClientConn, before string, resets float64) {
	t.Helper()
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctxT(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("the well-behaved client's call: %v", err)
	}
	if after := clientAddr(t, cc); after != before {
		t.Errorf("the well-behaved client's connection changed from %s to %s", before, after)
	}
	if got := metricstest.Value(t, h.reg, "grpc_server_connections_reset_total"); got != resets {
		t.Errorf("grpc_server_connections_reset_total = %v, want %v", got, resets)
	}
}
