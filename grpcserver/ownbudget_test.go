package grpcserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/metricstest"
)

// TestLongLivedStreamsHoldNoShare: streams whose request is in (health
// Watches, which grpcclient opens on every connection, reflection
// streams, the program's server-streaming calls) must hold no receive
// share for as long as they last, and Health/Check must keep answering
// while many are open.
func TestLongLivedStreamsHoldNoShare(t *testing.T) {
	// A small MaxRecvMsgSize makes the kit's own lanes (two shares each)
	// small, as the lab's thumbnailers (64 KiB) have them.
	const maxMsg = 64 << 10
	const streams = 8
	tests := []struct {
		name string
		open func(ctx context.Context, t *testing.T, addr string)
	}{
		{"health watches", func(ctx context.Context, t *testing.T, addr string) {
			w, err := healthpb.NewHealthClient(dial(t, addr)).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Recv(); err != nil {
				t.Fatalf("watch: %v", err)
			}
		}},
		{"health watches with metadata", func(ctx context.Context, t *testing.T, addr string) {
			// Many watches whose metadata (1 KiB each, kept while they
			// last) adds up to more than a share of the health lane.
			cc := dial(t, addr)
			md := metadata.AppendToOutgoingContext(ctx, "x-pad", strings.Repeat("p", 1<<10))
			for range 20 {
				w, err := healthpb.NewHealthClient(cc).Watch(md, &healthpb.HealthCheckRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Recv(); err != nil {
					t.Fatalf("watch: %v", err)
				}
			}
		}},
		{"reflection streams", func(ctx context.Context, t *testing.T, addr string) {
			r, err := rpb.NewServerReflectionClient(dial(t, addr)).ServerReflectionInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Recv(); err != nil {
				t.Fatalf("reflection: %v", err)
			}
		}},
		{"server-streaming calls", func(ctx context.Context, t *testing.T, addr string) {
			s, err := testgrpc.NewTestServiceClient(dial(t, addr)).StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatalf("streaming call: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, grpcserver.Config{MaxRecvMsgSize: maxMsg, RecvTimeout: time.Minute, Reflection: true}, lifecycle.Config{DrainDelay: -1})
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			for range streams {
				tt.open(ctx, t, h.addr)
			}
			// The data lane's gauge: the program's streams keep their
			// metadata and request, not a share or a window.
			if got := metricstest.Value(t, h.reg, "grpc_server_recv_in_use_bytes"); got >= streams*4<<10 {
				t.Errorf("%d open streams hold %v bytes of the receive budget, want their metadata only", streams, got)
			}
			cc := dial(t, h.addr)
			for i := range 5 {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := healthOf(cctx, cc, "")
				ccancel()
				if err != nil {
					t.Fatalf("check %d with %d streams open: %v", i, streams, err)
				}
			}
		})
	}
}
