package grpcserver_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/shoal-dev/shoal/grpcserver"
)

// BenchmarkUnary measures small unary calls over loopback from parallel
// callers on one connection, with the receive budget and without, so
// that its cost per call shows.
func BenchmarkUnary(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  grpcserver.Config
	}{
		{"budget", grpcserver.Config{}},
		{"no budget", grpcserver.Config{RecvBudget: -1, MaxConns: -1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := grpcserver.New(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			testgrpc.RegisterTestServiceServer(srv, newTestService())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			defer func() { srv.Close(); <-served }()
			cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := testgrpc.NewTestServiceClient(cc)
			req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 256)}}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.UnaryCall(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
