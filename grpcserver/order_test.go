package grpcserver_test

import (
	"errors"
	"net"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/shoal-dev/shoal/grpcserver"
)

// TestCallOrders: the lifecycle's stop can overtake the goroutine that
// calls Serve; every order of Serve, Drain and Shutdown ends clean.
func TestCallOrders(t *testing.T) {
	tests := []struct {
		name string
		// before Serve
		drain, shutdown bool
	}{
		{name: "drain before serve: the second generation serves", drain: true},
		{name: "shutdown before serve: serve returns at once", shutdown: true},
		{name: "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := grpcserver.New(grpcserver.Config{Logger: logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			testgrpc.RegisterTestServiceServer(srv, newTestService())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			if tt.drain {
				srv.Drain()
			}
			if tt.shutdown {
				if err := srv.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			if !tt.shutdown {
				cc := dial(t, ln.Addr().String())
				if _, _, err := call(ctx, cc, "x"); err != nil {
					t.Fatalf("RPC: %v", err)
				}
				if err := srv.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if _, err := ln.Accept(); err == nil {
				t.Fatal("listener still open after Serve returned")
			}
			if err := srv.Serve(ln); !errors.Is(err, grpcserver.ErrStopped) && !tt.shutdown {
				t.Fatalf("second Serve: %v, want ErrStopped", err)
			}
			srv.Close()
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  grpcserver.Config
		ok   bool
	}{
		{name: "zero", ok: true},
		{name: "age off", cfg: grpcserver.Config{MaxConnAge: -1}, ok: true},
		{name: "request lines off", cfg: grpcserver.Config{RequestLogSample: -1}, ok: true},
		{name: "negative grace", cfg: grpcserver.Config{MaxConnAgeGrace: -1}},
		{name: "negative message size", cfg: grpcserver.Config{MaxRecvMsgSize: -1}},
		{name: "negative keepalive", cfg: grpcserver.Config{KeepaliveMinTime: -1}},
		{name: "sample above 1", cfg: grpcserver.Config{RequestLogSample: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
