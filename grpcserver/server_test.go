package grpcserver_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/metricstest"
	"github.com/shoal-dev/shoal/shed"
)

const (
	serving    = healthpb.HealthCheckResponse_SERVING
	notServing = healthpb.HealthCheckResponse_NOT_SERVING
)

// TestHealthFollowsReadinessAndDrain: grpc.health.v1 answers what
// /readyz does, for "" and the registered service; from SIGTERM on it
// answers NOT_SERVING while RPCs still succeed for the whole drain, on
// the existing connection's client (which is sent GOAWAY at once) and on
// connections made during the drain.
func TestHealthFollowsReadinessAndDrain(t *testing.T) {
	var failing atomic.Bool
	h := start(t, grpcserver.Config{Name: "pod-a"}, lifecycle.Config{DrainDelay: 2 * time.Second, ShutdownTimeout: 10 * time.Second},
		health.Check{Name: "db", Critical: true, Interval: 5 * time.Millisecond, Func: func(context.Context) error {
			if failing.Load() {
				return errors.New("db down")
			}
			return nil
		}})
	cc := dial(t, h.addr)
	names := []string{"", testServiceName}
	waitHealth(t, cc, serving, names...)
	failing.Store(true)
	waitHealth(t, cc, notServing, names...)
	failing.Store(false)
	waitHealth(t, cc, serving, names...)

	ctx := ctxT(t)
	hdr, _, err := call(ctx, cc, "hello")
	if err != nil {
		t.Fatalf("before drain: %v", err)
	}
	if got := hdr.Get(grpcserver.ServedByKey); len(got) != 1 || got[0] != "pod-a" {
		t.Fatalf("%s = %q, want pod-a", grpcserver.ServedByKey, got)
	}
	before := clientAddr(t, cc)

	h.stop()
	waitHealth(t, cc, notServing, names...)
	// The existing connection gets GOAWAY at the drain's start (just after
	// health turns): the client moves to a new connection, served, before
	// the drain ends; every RPC meanwhile succeeds.
	for clientAddr(t, cc) == before {
		if ctx.Err() != nil {
			t.Fatalf("client still on its connection %s during the drain", before)
		}
	}
	// RPCs keep succeeding through the drain, on the old client (which
	// reconnects) and on a new one.
	fresh := dial(t, h.addr)
	n := 0
	for !h.checker.Draining() || n < 20 {
		for _, c := range []*grpc.ClientConn{cc, fresh} {
			if _, _, err := call(ctx, c, "during drain"); err != nil {
				t.Fatalf("RPC %d during drain: %v", n, err)
			}
			n++
		}
	}
	if st, err := healthOf(ctx, fresh, ""); err != nil || st != notServing {
		t.Fatalf("health on a connection made during the drain: %v %v, want NOT_SERVING", st, err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestInFlightRPCFinishesInGracefulStop: an RPC that started before
// SIGTERM and finishes after the listener closed (Shutdown under way)
// succeeds, and the stop is clean.
func TestInFlightRPCFinishesInGracefulStop(t *testing.T) {
	h := start(t, grpcserver.Config{}, lifecycle.Config{DrainDelay: 50 * time.Millisecond, ShutdownTimeout: 20 * time.Second})
	cc := dial(t, h.addr)
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() { _, _, err := call(ctx, cc, "block"); res <- err }()
	<-h.svc.started
	h.stop()
	// The listener closes at Shutdown, after the drain delay.
	for {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-h.done:
		t.Fatalf("Run returned %v with an RPC in flight", err)
	default:
	}
	close(h.svc.release)
	if err := <-res; err != nil {
		t.Fatalf("in-flight RPC: %v", err)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestHungRPCDoesNotHoldStop: an RPC that never ends is cancelled at the
// shutdown deadline; Run returns ErrShutdownTimeout soon after.
func TestHungRPCDoesNotHoldStop(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := start(t, grpcserver.Config{}, lifecycle.Config{DrainDelay: -1, ShutdownTimeout: timeout})
	cc := dial(t, h.addr)
	res := make(chan error, 1)
	go func() { _, _, err := call(ctxT(t), cc, "hang"); res <- err }()
	<-h.svc.started
	begin := time.Now()
	h.stop()
	err := h.wait()
	if !errors.Is(err, lifecycle.ErrShutdownTimeout) {
		t.Fatalf("Run: %v, want ErrShutdownTimeout", err)
	}
	// Generous for a loaded machine; the point is that it is not the
	// RPC's own 30s.
	if took := time.Since(begin); took > timeout+10*time.Second {
		t.Fatalf("stop took %v", took)
	}
	if err := <-res; status.Code(err) == codes.OK {
		t.Fatal("hung RPC succeeded")
	}
}

func TestMetricsAndPanic(t *testing.T) {
	h := start(t, grpcserver.Config{}, lifecycle.Config{DrainDelay: -1})
	cc := dial(t, h.addr)
	ctx := ctxT(t)
	for _, cmd := range []string{"a", "b", "fail", "panic"} {
		call(ctx, cc, cmd)
	}
	_, _, err := call(ctx, cc, "panic")
	if s, _ := status.FromError(err); s.Code() != codes.Internal || s.Message() != "grpcserver: internal error" {
		t.Fatalf("panic answered %v, want Internal with the fixed message", err)
	}
	if _, _, err := call(ctx, cc, "after panic"); err != nil {
		t.Fatalf("RPC after a panic: %v", err)
	}
	method := []string{"grpc_service", testServiceName, "grpc_method", "UnaryCall", "grpc_type", "unary"}
	with := func(kv ...string) []string { return append(append([]string(nil), method...), kv...) }
	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"started", "grpc_server_started_total", method, 6},
		{"handled OK", "grpc_server_handled_total", with("grpc_code", "OK"), 3},
		{"handled InvalidArgument", "grpc_server_handled_total", with("grpc_code", "InvalidArgument"), 1},
		{"handled Internal", "grpc_server_handled_total", with("grpc_code", "Internal"), 2},
		{"handled Unavailable (pre-initialised)", "grpc_server_handled_total", with("grpc_code", "Unavailable"), 0},
		{"latency histogram", "grpc_server_handling_seconds", method, 6},
		{"panics", "grpc_server_panics_total", nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricstest.Value(t, h.reg, tt.metric, tt.labels...); got != tt.want {
				t.Fatalf("%s%q = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}

// TestShedUnavailableWithPushback: beyond the limiter's limit an RPC gets
// Unavailable and grpc-retry-pushback-ms; health checks are not shed;
// the slot comes back when the RPC in flight ends.
func TestShedUnavailableWithPushback(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := shed.New(shed.Config{MaxLimit: 1, RetryAfter: 2 * time.Second}, reg)
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, grpcserver.Config{Limiter: l, Name: "pod-s", Registry: reg}, lifecycle.Config{DrainDelay: -1})
	cc := dial(t, h.addr)
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() { _, _, err := call(ctx, cc, "block"); res <- err }()
	<-h.svc.started

	hdr, tr, err := call(ctx, cc, "shed me")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("over the limit: %v, want Unavailable", err)
	}
	if got := tr.Get(grpcserver.PushbackKey); len(got) != 1 || got[0] != "2000" {
		t.Fatalf("%s = %q, want 2000", grpcserver.PushbackKey, got)
	}
	if got := append(hdr.Get(grpcserver.ServedByKey), tr.Get(grpcserver.ServedByKey)...); len(got) == 0 || got[0] != "pod-s" {
		t.Fatalf("shed answer's %s = %q, want pod-s", grpcserver.ServedByKey, got)
	}
	if st, err := healthOf(ctx, cc, ""); err != nil || st != serving {
		t.Fatalf("health while full: %v %v, want SERVING", st, err)
	}
	if got := metricstest.Value(t, reg, "shed_rejected_total"); got != 1 {
		t.Fatalf("shed_rejected_total %v, want 1", got)
	}
	close(h.svc.release)
	if err := <-res; err != nil {
		t.Fatalf("admitted RPC: %v", err)
	}
	if _, _, err := call(ctx, cc, "after"); err != nil {
		t.Fatalf("after the slot came back: %v", err)
	}
}
