package grpcclient_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcclient"
)

func TestNewDNSSpreadsCalls(t *testing.T) {
	port := freePort(t)
	opts := backendOpts{delay: time.Millisecond}
	b1 := startBackend(t, "127.0.0.1", port, opts)
	b2 := startBackend(t, "127.0.0.2", port, opts)
	d := startDNS(t, "svc.test", "127.0.0.1", "127.0.0.2")
	for _, tc := range []struct {
		name   string
		policy string
		keyed  bool
	}{
		{name: "default", policy: ""},
		{name: "peak_ewma", policy: grpcclient.PeakEWMA},
		{name: "consistent_hash", policy: grpcclient.ConsistentHash, keyed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := grpcclient.New("dns://"+d.addr+"/svc.test:"+itoa(port), grpcclient.Config{Policy: tc.policy, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			c := testpb.NewTestServiceClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			lctx, stop := context.WithCancel(ctx)
			var keyOf func(int) context.Context
			if tc.keyed {
				keyOf = func(i int) context.Context { return grpcclient.WithBalanceKey(lctx, itoa(i)) }
			}
			l := startLoad(lctx, c, 8, keyOf)
			seen := map[string]int{}
			err = waitFor(ctx, func() bool {
				counts, failed := l.snapshot()
				for a, n := range counts {
					seen[a] += n
				}
				if len(failed) > 0 {
					t.Errorf("failed calls: %v", failed)
				}
				return seen[b1.addr] >= 50 && seen[b2.addr] >= 50
			})
			stop()
			l.wg.Wait()
			if err != nil {
				t.Fatalf("calls per backend %v, want both at least 50: %v", seen, err)
			}
		})
	}
}

// pushbackBackend fails each call's first attempt with Unavailable and
// a pushback, and answers the retry.
type pushbackBackend struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (p *pushbackBackend) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if p.calls.Add(1)%2 == 1 {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "300"))
		return nil, status.Error(codes.Unavailable, "busy")
	}
	return &testpb.SimpleResponse{Hostname: "ok"}, nil
}

// TestRetryHonoursPushback: an Unavailable call is retried, after the
// wait the server's pushback asks rather than the 50ms backoff; and two
// ClientConns share one Registerer's metrics.
func TestRetryHonoursPushback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb := &pushbackBackend{}
	testpb.RegisterTestServiceServer(srv, pb)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	defer func() {
		srv.Stop()
		<-done
	}()
	reg := prometheus.NewRegistry()
	for range 2 {
		cc, err := grpcclient.New("dns:///"+l.Addr().String(), grpcclient.Config{Registerer: reg, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := call(ctx, testpb.NewTestServiceClient(cc)); err != nil {
			t.Fatalf("call failed despite the retry: %v", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("the retry came after %v, before the 300ms pushback", d)
		}
	}
	if pb.calls.Load() != 4 {
		t.Errorf("%d attempts, want 4", pb.calls.Load())
	}
	want := `
# HELP grpc_client_handled_total Total number of RPCs completed by the client, regardless of success or failure.
# TYPE grpc_client_handled_total counter
grpc_client_handled_total{grpc_code="OK",grpc_method="UnaryCall",grpc_service="grpc.testing.TestService",grpc_type="unary"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grpc_client_handled_total"); err != nil {
		t.Error(err)
	}
}
