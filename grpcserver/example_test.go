package grpcserver_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
)

func Example() {
	checker := health.New(nil)
	srv, err := grpcserver.New(grpcserver.Config{
		Name:     "pod-1",                  // x-served-by on every RPC
		Registry: prometheus.NewRegistry(), // grpc_server_handled_total and friends
		Health:   checker,                  // grpc.health.v1 follows /readyz
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Generated RegisterXxxServer functions take the Server as they take
	// a *grpc.Server.
	testgrpc.RegisterTestServiceServer(srv, &testgrpc.UnimplementedTestServiceServer{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	lc := lifecycle.New(lifecycle.Config{Health: checker, DrainDelay: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	lc.Own("grpc", srv, ln)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- lc.Run(ctx) }()

	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		stop()
		<-done
		return
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	for { // until the lifecycle has marked the service started
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "grpc.testing.TestService"})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			fmt.Println(r.GetStatus())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop() // as SIGTERM: NOT_SERVING, GOAWAY, drain, GracefulStop
	fmt.Println(<-done)
	// Output:
	// SERVING
	// <nil>
}
