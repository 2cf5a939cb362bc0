package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testService answers UnaryCall by the command in its payload: "block"
// waits for release (or the RPC's end), "hang" waits for the RPC's end
// only, "panic" panics, "fail" answers InvalidArgument, "peer" answers
// the client's address; anything else is echoed.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	started chan string
	release chan struct{}
}

func newTestService() *testService {
	return &testService{started: make(chan string, 16), release: make(chan struct{})}
}

func (s *testService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	switch cmd := string(in.GetPayload().GetBody()); cmd {
	case "block":
		s.started <- cmd
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	case "hang":
		s.started <- cmd
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case "panic":
		panic("boom")
	case "fail":
		return nil, status.Error(codes.InvalidArgument, "bad request")
	case "peer":
		p, _ := peer.FromContext(ctx)
		return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte(p.Addr.String())}}, nil
	}
	return &testgrpc.SimpleResponse{Payload: in.GetPayload()}, nil
}

// StreamingOutputCall answers one message, then holds the stream open
// until the call ends.
func (s *testService) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, ss testgrpc.TestService_StreamingOutputCallServer) error {
	if err := ss.Send(&testgrpc.StreamingOutputCallResponse{}); err != nil {
		return err
	}
	<-ss.Context().Done()
	return status.FromContextError(ss.Context().Err()).Err()
}

const testServiceName = "grpc.testing.TestService"

// harness is a grpcserver.Server run by a lifecycle on a loopback port.
type harness struct {
	t       *testing.T
	srv     *grpcserver.Server
	svc     *testService
	reg     *prometheus.Registry
	checker *health.Checker
	sigc    chan os.Signal
	done    chan error
	addr    string
	ran     bool
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start runs a server built from cfg (its Registry, Health and Logger
// filled in when nil) under a lifecycle configured by lc (its Health,
// SignalC and Logger filled in). The test's end signals it and waits.
func start(t *testing.T, cfg grpcserver.Config, lc lifecycle.Config, checks ...health.Check) *harness {
	t.Helper()
	h := &harness{t: t, svc: newTestService(), reg: prometheus.NewRegistry(), sigc: make(chan os.Signal, 2), done: make(chan error, 1)}
	h.checker = health.New(nil, checks...)
	if cfg.Registry == nil {
		cfg.Registry = h.reg
	}
	if cfg.Health == nil {
		cfg.Health = h.checker
	}
	if cfg.Logger == nil {
		cfg.Logger = logger(t)
	}
	srv, err := grpcserver.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	testgrpc.RegisterTestServiceServer(srv, h.svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	lc.Health, lc.SignalC = h.checker, h.sigc
	if lc.Logger == nil {
		lc.Logger = cfg.Logger
	}
	l := lifecycle.New(lc)
	l.Own("grpc", srv, ln)
	go func() { h.done <- l.Run(context.Background()) }()
	t.Cleanup(func() {
		if !h.ran {
			h.sigc <- syscall.SIGTERM
			h.wait()
		}
	})
	return h
}

// stop sends SIGTERM.
func (h *harness) stop() { h.sigc <- syscall.SIGTERM }

// wait returns Run's result.
func (h *harness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.ran = true
		return err
	case <-time.After(60 * time.Second):
		h.t.Fatal("Run did not return")
		return nil
	}
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// clientAddr is the client's address of cc's connection, as the server
// sees it.
func clientAddr(t *testing.T, cc *grpc.ClientConn) string {
	t.Helper()
	r, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctxT(t),
		&testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("peer")}})
	if err != nil {
		t.Fatalf("peer: %v", err)
	}
	return string(r.GetPayload().GetBody())
}

// call makes one UnaryCall with cmd as its payload, returning the
// response's header and trailer metadata.
func call(ctx context.Context, cc *grpc.ClientConn, cmd string) (header, trailer metadata.MD, err error) {
	_, err = testgrpc.NewTestServiceClient(cc).UnaryCall(ctx,
		&testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(cmd)}},
		grpc.Header(&header), grpc.Trailer(&trailer))
	return header, trailer, err
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func healthOf(ctx context.Context, cc *grpc.ClientConn, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return r.GetStatus(), err
}

// waitHealth waits until every name answers want.
func waitHealth(t *testing.T, cc *grpc.ClientConn, want healthpb.HealthCheckResponse_ServingStatus, names ...string) {
	t.Helper()
	ctx := ctxT(t)
	for _, n := range names {
		for {
			got, err := healthOf(ctx, cc, n)
			if err == nil && got == want {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("health %q: %v %v, want %v", n, got, err, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
