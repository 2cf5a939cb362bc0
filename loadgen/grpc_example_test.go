package loadgen_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-dev/shoal/loadgen"
)

// A gRPC server naming itself in x-served-by, as Shoal's kit does, takes
// 20 health checks; the message is empty (every field unset).
func ExampleRun_grpc() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", "replica-a"))
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	rep, err := loadgen.Run(context.Background(), loadgen.Config{
		GRPC:    &loadgen.GRPC{Target: l.Addr().String(), Method: "/grpc.health.v1.Health/Check"},
		Rate:    200,
		Count:   20,
		Timeout: 30 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("completed:", rep.Completed, "codes:", rep.Codes, "replicas:", rep.Replicas)
	// Output:
	// completed: 20 codes: map[OK:20] replicas: map[replica-a:20]
}
