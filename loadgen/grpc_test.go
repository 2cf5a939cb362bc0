package loadgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

// grpcReplica is a real gRPC server on loopback with the health and
// reflection services, naming itself in x-served-by as the kit does.
type grpcReplica struct {
	name   string
	addr   string
	served atomic.Int64
	keys   atomic.Value // last x-balance-key seen
	md     atomic.Value // last x-test metadata seen
}

// startGRPCReplica starts a replica; fail, if not nil, may turn a call
// (numbered from 1) into an error status.
func startGRPCReplica(t *testing.T, name string, fail func(n int64) error) *grpcReplica {
	t.Helper()
	return startGRPCServer(t, name, func(_ metadata.MD, n int64) (string, error) {
		if fail != nil {
			return name, fail(n)
		}
		return name, nil
	})
}

// startGRPCServer starts a replica whose hook names the replica of each
// call (numbered from 1) and may fail it.
func startGRPCServer(t *testing.T, name string, hook func(md metadata.MD, n int64) (servedBy string, err error)) *grpcReplica {
	t.Helper()
	r := &grpcReplica{name: name}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n := r.served.Add(1)
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("x-balance-key"); len(v) > 0 {
				r.keys.Store(v[0])
			}
			if v := md.Get("x-test"); len(v) > 0 {
				r.md.Store(v[0])
			}
		}
		md, _ := metadata.FromIncomingContext(ctx)
		servedBy, err := hook(md, n)
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", servedBy))
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r
}

// roundRobin dials the replicas through a resolver of this channel's
// own, with grpc-go's round_robin.
func roundRobin(replicas ...*grpcReplica) func(string, ...grpc.DialOption) (*grpc.ClientConn, error) {
	return func(_ string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
		r := manual.NewBuilderWithScheme("replicas")
		var addrs []resolver.Address
		for _, rep := range replicas {
			addrs = append(addrs, resolver.Address{Addr: rep.addr})
		}
		r.InitialState(resolver.State{Addresses: addrs})
		opts = append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithResolvers(r),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		}, opts...)
		cc, err := grpc.NewClient("replicas:///test", opts...)
		if err != nil {
			return nil, err
		}
		// Until every replica is connected, round_robin picks among
		// those that are; call until each has answered, then count
		// afresh, so the run's calls go round all of them.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		hc := healthpb.NewHealthClient(cc)
		for _, rep := range replicas {
			for rep.served.Load() == 0 {
				if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil && ctx.Err() != nil {
					cc.Close()
					return nil, err
				}
			}
		}
		for _, rep := range replicas {
			rep.served.Store(0)
		}
		return cc, nil
	}
}

const healthCheck = "/grpc.health.v1.Health/Check"

func TestGRPCShares(t *testing.T) {
	a := startGRPCReplica(t, "a", nil)
	b := startGRPCReplica(t, "b", nil)
	c := startGRPCReplica(t, "c", nil)
	rep := run(t, Config{
		GRPC: &GRPC{Target: "replicas:///test", Method: healthCheck,
			Metadata: metadata.Pairs("x-test", "yes"), Dial: roundRobin(a, b, c)},
		Rate: 300, Count: 90, KeyHeader: "X-Balance-Key", Keys: 3,
	})
	if rep.Scheduled != 90 || rep.Completed != 90 || rep.OK != 90 || len(rep.Errors) != 0 {
		t.Fatalf("scheduled %d completed %d ok %d errors %v %v", rep.Scheduled, rep.Completed, rep.OK, rep.Errors, rep.ErrorSamples)
	}
	if rep.Codes["OK"] != 90 || len(rep.Codes) != 1 {
		t.Errorf("codes %v", rep.Codes)
	}
	if !rep.GRPC || rep.Target != "replicas:///test" || rep.Method != healthCheck || rep.ServedByHeader != "x-served-by" {
		t.Errorf("report names %v %q %q %q", rep.GRPC, rep.Target, rep.Method, rep.ServedByHeader)
	}
	// round_robin sends each replica every third call, give or take
	// the call after a picker is rebuilt at a random start.
	for _, r := range []*grpcReplica{a, b, c} {
		if got := rep.Replicas[r.name]; got != r.served.Load() || got < 27 || got > 33 {
			t.Errorf("replica %s: report %d, served %d, want 30±3 and the same", r.name, got, r.served.Load())
		}
		if r.md.Load() != "yes" || !strings.HasPrefix(r.keys.Load().(string), "key-") {
			t.Errorf("replica %s saw metadata x-test=%v x-balance-key=%v", r.name, r.md.Load(), r.keys.Load())
		}
	}
	if rep.Unattributed != 0 || rep.CV() > 0.1 {
		t.Errorf("unattributed %d cv %v", rep.Unattributed, rep.CV())
	}
}

func TestGRPCStatusCodes(t *testing.T) {
	// Every third call fails, in the handler, with Unavailable: a
	// trailers-only answer that still names the replica. The message
	// asks for an unknown service, so the rest answer NotFound.
	r := startGRPCReplica(t, "only", func(n int64) error {
		if n%3 == 0 {
			return status.Error(codes.Unavailable, "shedding load")
		}
		return nil
	})
	msg, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, Config{GRPC: &GRPC{Target: r.addr, Method: healthCheck, Message: msg}, Rate: 300, Count: 30})
	want := map[string]int64{"NotFound": 20, "Unavailable": 10}
	if len(rep.Codes) != 2 || rep.Codes["NotFound"] != 20 || rep.Codes["Unavailable"] != 10 {
		t.Errorf("codes %v, want %v", rep.Codes, want)
	}
	if rep.Errors["grpc_not_found"] != 20 || rep.Errors["grpc_unavailable"] != 10 || rep.Completed != 30 || rep.OK != 0 {
		t.Errorf("errors %v completed %d ok %d", rep.Errors, rep.Completed, rep.OK)
	}
	if rep.Replicas["only"] != 30 {
		t.Errorf("replicas %v: trailers-only answers must name the replica too", rep.Replicas)
	}
	if s := rep.ErrorSamples["grpc_unavailable"]; s != "Unavailable: shedding load" {
		t.Errorf("sample %q", s)
	}
}

func TestGRPCUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rep := run(t, Config{GRPC: &GRPC{Target: addr, Method: healthCheck}, Rate: 200, Count: 5, Timeout: 5 * time.Second})
	if rep.Completed != 0 || rep.Errors[KindRefused] != 5 || rep.Codes["Unavailable"] != 5 {
		t.Errorf("completed %d errors %v codes %v samples %v", rep.Completed, rep.Errors, rep.Codes, rep.ErrorSamples)
	}
}

func TestGRPCTimeout(t *testing.T) {
	r := startGRPCReplica(t, "slow", func(int64) error {
		time.Sleep(300 * time.Millisecond) // longer than the deadline; not a synchronisation
		return nil
	})
	rep := run(t, Config{GRPC: &GRPC{Target: r.addr, Method: healthCheck}, Rate: 100, Count: 3, Timeout: 50 * time.Millisecond})
	if rep.Errors[KindTimeout] != 3 || rep.Codes["DeadlineExceeded"] != 3 {
		t.Errorf("errors %v codes %v", rep.Errors, rep.Codes)
	}
}

func TestGRPCConfigErrors(t *testing.T) {
	ok := func() *GRPC { return &GRPC{Target: "127.0.0.1:1", Method: healthCheck} }
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no target", Config{GRPC: &GRPC{Method: healthCheck}, Count: 1}, "GRPC.Target"},
		{"method without slash", Config{GRPC: &GRPC{Target: "x:1", Method: "grpc.health.v1.Health/Check"}, Count: 1}, "GRPC.Method"},
		{"method without service", Config{GRPC: &GRPC{Target: "x:1", Method: "/Check"}, Count: 1}, "GRPC.Method"},
		{"method with a space", Config{GRPC: &GRPC{Target: "x:1", Method: "/a.B/C d"}, Count: 1}, "GRPC.Method"},
		{"URL too", Config{URL: "http://x/", GRPC: ok(), Count: 1}, "URL"},
		{"HTTP method", Config{Method: "POST", GRPC: ok(), Count: 1}, "Method"},
		{"h2c", Config{H2C: true, GRPC: ok(), Count: 1}, "H2C"},
		{"body", Config{Body: []byte("x"), GRPC: ok(), Count: 1}, "Body"},
		{"upper-case metadata", Config{GRPC: &GRPC{Target: "x:1", Method: healthCheck, Metadata: metadata.MD{"X-A": {"1"}}}, Count: 1}, "GRPC.Metadata"},
		{"grpc- metadata", Config{GRPC: &GRPC{Target: "x:1", Method: healthCheck, Metadata: metadata.Pairs("grpc-timeout", "1S")}, Count: 1}, "GRPC.Metadata"},
		{"metadata value", Config{GRPC: &GRPC{Target: "x:1", Method: healthCheck, Metadata: metadata.Pairs("x-a", "\n")}, Count: 1}, "GRPC.Metadata"},
		{"bad key header", Config{GRPC: ok(), Count: 1, KeyHeader: "x key"}, "KeyHeader"},
		{"no bound", Config{GRPC: ok()}, "Duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("err = %v, want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

func TestGRPCReportGolden(t *testing.T) {
	// One server answering as replica a, b or c by the call's balance
	// key (key-i by "abc"[i%3]), and with ResourceExhausted for key-0,
	// so that a seeded run gives the same report every time.
	r := startGRPCServer(t, "", func(md metadata.MD, _ int64) (string, error) {
		i, _ := strconv.Atoi(strings.TrimPrefix(strings.Join(md.Get("x-balance-key"), ""), "key-"))
		if i == 0 {
			return "a", status.Error(codes.ResourceExhausted, "too many requests")
		}
		return string("abc"[i%3]), nil
	})
	rep := run(t, Config{GRPC: &GRPC{Target: r.addr, Method: healthCheck},
		Steps: []Step{{100, time.Second}, {50, time.Second}}, Window: time.Second,
		KeyHeader: "x-balance-key", Keys: 7, Seed: 1})
	if rep.Completed != 150 {
		t.Fatalf("completed %d, errors %v %v", rep.Completed, rep.Errors, rep.ErrorSamples)
	}
	normalize(rep)
	rep.Target = "dns:///greeter-headless:8082"
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "grpc_report.txt.golden"), text.Bytes(), *update)
	golden.Check(t, filepath.Join("testdata", "grpc_report.json.golden"), js.Bytes(), *update)
}

func TestGRPCKind(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK: "grpc_ok", codes.Unavailable: "grpc_unavailable", codes.DeadlineExceeded: "grpc_deadline_exceeded",
		codes.ResourceExhausted: "grpc_resource_exhausted", codes.Unauthenticated: "grpc_unauthenticated", 99: "grpc_code_99",
	} {
		if got := GRPCKind(c); got != want {
			t.Errorf("GRPCKind(%v) = %q, want %q", c, got, want)
		}
	}
}
