package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The one unary method every server answers. It is declared by hand, with
// a well-known message type, so the benchmark needs no generated code.
const (
	workService = "shoal.bench.v1.Work"
	workMethod  = "/" + workService + "/Do"
	// servedByKey is the response header naming the server, as the
	// service kit's gRPC server sets it.
	servedByKey = "x-served-by"
)

// workHandler is what grpc calls for Do.
type workHandler interface {
	do(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
}

var workDesc = grpc.ServiceDesc{
	ServiceName: workService,
	HandlerType: (*workHandler)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Do",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := srv.(workHandler)
			if icpt == nil {
				return h.do(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: workMethod}
			return icpt(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return h.do(ctx, req.(*wrapperspb.BytesValue))
			})
		},
	}},
	Metadata: "bench/grpcbalance",
}

// server is one gRPC server on loopback that serves `workers` calls at
// once (its cores), each taking about its service time; more wait in
// line. It reports its load to clients through ORCA per-call metrics
// (queries per second and application utilization, the busy share of its
// workers), which weighted_round_robin needs to weigh it.
type server struct {
	name    string
	addr    string
	jitter  float64
	service atomic.Int64 // mean service time, ns
	slots   chan struct{}
	workers int

	served atomic.Int64 // calls completed
	busy   atomic.Int64 // ns of worker time used

	grpc    *grpc.Server
	metrics orca.ServerMetricsRecorder
	stop    chan struct{}
	wg      sync.WaitGroup
}

// loadWindow is how far back the ORCA figures look, in reportTick steps.
const (
	reportTick = 100 * time.Millisecond
	loadWindow = 10
)

func startServer(name string, workers int, jitter float64) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("grpcbalance: listen: %w", err)
	}
	s := &server{
		name: name, addr: ln.Addr().String(), jitter: jitter,
		slots: make(chan struct{}, workers), workers: workers,
		metrics: orca.NewServerMetricsRecorder(), stop: make(chan struct{}),
	}
	s.grpc = grpc.NewServer(orca.CallMetricsServerOption(s.metrics))
	s.grpc.RegisterService(&workDesc, s)
	s.wg.Go(func() { _ = s.grpc.Serve(ln) })
	s.wg.Go(s.report)
	return s, nil
}

// report keeps the ORCA server metrics at the last second's figures.
func (s *server) report() {
	t := time.NewTicker(reportTick)
	defer t.Stop()
	type point struct{ served, busy int64 }
	var ring [loadWindow + 1]point
	n := 0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		n++
		ring[n%len(ring)] = point{s.served.Load(), s.busy.Load()}
		if n < len(ring)-1 {
			continue
		}
		old, now := ring[(n+1)%len(ring)], ring[n%len(ring)]
		span := float64(loadWindow) * reportTick.Seconds()
		s.metrics.SetQPS(float64(now.served-old.served) / span)
		s.metrics.SetApplicationUtilization(float64(now.busy-old.busy) / 1e9 / span / float64(s.workers))
	}
}

func (s *server) do(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.slots }()
	// Service times vary uniformly by ±jitter around the mean.
	d := time.Duration(float64(s.service.Load()) * (1 - s.jitter + 2*s.jitter*rand.Float64()))
	start := time.Now()
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	s.busy.Add(int64(time.Since(start)))
	s.served.Add(1)
	_ = grpc.SetHeader(ctx, metadata.Pairs(servedByKey, s.name))
	// ORCA sends the server's figures in the trailer only for calls that
	// ask for their recorder; this call adds nothing of its own.
	_ = orca.CallMetricsRecorderFromContext(ctx)
	return in, nil
}

func (s *server) close() {
	close(s.stop)
	s.grpc.Stop()
	s.wg.Wait()
}
