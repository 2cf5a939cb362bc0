package grpcclient_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/shoal-dev/shoal/grpcclient"
)

// A client for the replicas behind a name, balanced per call by peak
// EWMA, with retries, keepalive and metrics. In a cluster the target is
// a headless Service, e.g. dns:///thumbnailer-headless:8082, or
// k8s:///thumbnailer.media:grpc with Config.EndpointSlices set to
// k8sresolver.Targets(...).
func ExampleNew() {
	// A server on loopback stands in for the replicas.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	defer srv.Stop()

	reg := prometheus.NewRegistry()
	cc, err := grpcclient.New("dns:///"+l.Addr().String(), grpcclient.Config{
		Registerer: reg,
		Logger:     discard,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	n, err := testutil.GatherAndCount(reg, "grpc_client_handled_total")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("grpc_client_handled_total series:", n)
	// Output:
	// SERVING
	// grpc_client_handled_total series: 1
}

// Calls with the same balancing key reach the same replica under
// consistent hashing: the gallery passes an image's digest.
func ExampleWithBalanceKey() {
	ctx := grpcclient.WithBalanceKey(context.Background(), "sha256:9f86d081884c7d65")
	cfg := grpcclient.Config{Policy: grpcclient.ConsistentHash}
	_, _ = ctx, cfg // calls made with ctx on a ClientConn from New(target, cfg)
	fmt.Println(grpcclient.BalanceKey)
	// Output: x-balance-key
}
