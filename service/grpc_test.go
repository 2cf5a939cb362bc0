package service

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/metricstest"
)

type echo struct {
	testgrpc.UnimplementedTestServiceServer
}

func (echo) UnaryCall(_ context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: in.GetPayload()}, nil
}

// TestGRPC: with GRPC_PORT the services registered on GRPCServer are
// served with the kit's health, x-served-by, metrics on the service's
// registry and request lines; HTTP and gRPC share one concurrency limit.
func TestGRPC(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	r := start(t, Options{GRPCPort: -1, ShedMaxLimit: 1}, func(svc *Service) error {
		testgrpc.RegisterTestServiceServer(svc.GRPCServer(), echo{})
		svc.HandleFunc("GET /v1/slow", func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
		})
		return nil
	})
	cc, err := grpc.NewClient("passthrough:///"+r.svc.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, name := range []string{"", "grpc.testing.TestService"} {
		res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v, want SERVING", name, res.GetStatus(), err)
		}
	}
	client := testgrpc.NewTestServiceClient(cc)
	var hdr metadata.MD
	if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&hdr)); err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	if got := hdr.Get(grpcserver.ServedByKey); len(got) != 1 || got[0] != "svc-0" {
		t.Fatalf("%s = %q, want svc-0", grpcserver.ServedByKey, got)
	}

	// An HTTP request holds the only slot: the RPC is shed.
	held := make(chan struct{})
	go func() {
		defer close(held)
		if resp, err := http.Get(r.url + "/v1/slow"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	close(release)
	<-held
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("RPC while HTTP holds the only slot: %v, want Unavailable", err)
	}

	if v := metricstest.Value(t, r.svc.Registry, "grpc_server_handled_total", "grpc_method", "UnaryCall", "grpc_code", "OK"); v != 1 {
		t.Errorf("grpc_server_handled_total{OK} = %v, want 1", v)
	}
	if v := metricstest.Value(t, r.svc.Registry, "grpc_server_handled_total", "grpc_method", "UnaryCall", "grpc_code", "Unavailable"); v != 1 {
		t.Errorf("grpc_server_handled_total{Unavailable} = %v, want 1", v)
	}
	if lines := r.logs.lines(t, "rpc"); len(lines) != 2 {
		t.Errorf("%d rpc lines, want 2 (health checks are not logged)", len(lines))
	}
}

// TestGRPCOff: without GRPC_PORT registrations are accepted and nothing
// is served.
func TestGRPCOff(t *testing.T) {
	r := start(t, Options{}, func(svc *Service) error {
		testgrpc.RegisterTestServiceServer(svc.GRPCServer(), echo{})
		return nil
	})
	if a := r.svc.GRPCAddr(); a != nil {
		t.Fatalf("GRPCAddr = %v without GRPC_PORT", a)
	}
}
