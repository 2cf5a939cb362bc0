package grpcmsg_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/shoal-dev/shoal/loadgen/grpcmsg"
)

// A server with the health and reflection services: the request of
// Health/Check is encoded from JSON without its .proto file.
func ExampleDescribe() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	m, err := grpcmsg.Describe(ctx, cc, "grpc.health.v1.Health/Check")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := m.EncodeJSON([]byte(`{"service": "thumbnailer"}`))
	fmt.Printf("%s takes %s: % x %v\n", m.FullName(), m.Desc.Input().FullName(), b, err)
	_, err = m.EncodeJSON([]byte(`{"name": "thumbnailer"}`))
	fmt.Println(err != nil)

	_, err = grpcmsg.Describe(ctx, cc, "/grpc.health.v1.Health/Ping")
	fmt.Println(err)
	// Output:
	// /grpc.health.v1.Health/Check takes grpc.health.v1.HealthCheckRequest: 0a 0b 74 68 75 6d 62 6e 61 69 6c 65 72 <nil>
	// true
	// grpcmsg: unknown method Ping in service grpc.health.v1.Health, which has Check, List, Watch
}
