package grpcmsg

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reflectionKind says which reflection services a test server has.
type reflectionKind int

const (
	noReflection reflectionKind = iota
	v1AndV1alpha                // reflection.Register, as grpc-go servers do
	v1alphaOnly                 // as servers built before grpc.reflection.v1
)

// startServer serves the health service on loopback and returns a
// channel to it.
func startServer(t *testing.T, refl reflectionKind) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	switch refl {
	case v1AndV1alpha:
		reflection.Register(srv)
	case v1alphaOnly:
		srv.RegisterService(&v1alphaDesc, reflection.NewServerV1(reflection.ServerOptions{Services: srv}))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return dial(t, l.Addr().String())
}

func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// v1alphaDesc serves the v1 reflection implementation under the
// v1alpha name: the two versions' messages are the same on the wire.
var v1alphaDesc = grpc.ServiceDesc{
	ServiceName: "grpc.reflection.v1alpha.ServerReflection",
	HandlerType: (*rpb.ServerReflectionServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "ServerReflectionInfo",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(rpb.ServerReflectionServer).ServerReflectionInfo(
				&grpc.GenericServerStream[rpb.ServerReflectionRequest, rpb.ServerReflectionResponse]{ServerStream: stream})
		},
	}},
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDescribeAndEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		refl reflectionKind
	}{{"v1", v1AndV1alpha}, {"v1alpha only", v1alphaOnly}} {
		t.Run(tc.name, func(t *testing.T) {
			cc := startServer(t, tc.refl)
			m, err := Describe(testCtx(t), cc, "grpc.health.v1.Health.Check")
			if err != nil {
				t.Fatal(err)
			}
			if m.FullName() != "/grpc.health.v1.Health/Check" || m.Desc.Input().FullName() != "grpc.health.v1.HealthCheckRequest" {
				t.Fatalf("described %s with input %s", m.FullName(), m.Desc.Input().FullName())
			}
			b, err := m.EncodeJSON([]byte(`{"service": "gallery"}`))
			if err != nil {
				t.Fatal(err)
			}
			var req healthpb.HealthCheckRequest
			if err := proto.Unmarshal(b, &req); err != nil || req.GetService() != "gallery" {
				t.Fatalf("encoded %x decodes to %v, %v", b, &req, err)
			}
			if err := m.CheckWire(b); err != nil {
				t.Errorf("CheckWire of a good message: %v", err)
			}
		})
	}
}

func TestDescribeErrors(t *testing.T) {
	withRefl := startServer(t, v1AndV1alpha)
	without := startServer(t, noReflection)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name   string
		cc     *grpc.ClientConn
		method string
		want   error
		says   string
	}{
		{"unknown service", withRefl, "/shoal.Nope/Check", ErrUnknownService, "unknown service shoal.Nope; the server has grpc.health.v1.Health, grpc.reflection.v1.ServerReflection"},
		{"unknown method", withRefl, "/grpc.health.v1.Health/Chek", ErrUnknownMethod, "unknown method Chek in service grpc.health.v1.Health, which has Check, List, Watch"},
		{"streaming", withRefl, "/grpc.health.v1.Health/Watch", ErrStreaming, "only unary"},
		{"a message, not a service", withRefl, "/grpc.health.v1.HealthCheckRequest/Check", ErrUnknownService, "is a message"},
		{"no reflection", without, "/grpc.health.v1.Health/Check", ErrNoReflection, "no reflection"},
		{"unreachable", dial(t, closed), "/grpc.health.v1.Health/Check", ErrUnreachable, "connection refused"},
		{"bad name", withRefl, "Check", ErrBadMethod, "want /package.Service/Method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Describe(testCtx(t), tc.cc, tc.method)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.want, tc.says)
			}
		})
	}
}

func TestDescribeUnreachableDeadline(t *testing.T) {
	// A listener that never answers: the deadline ends the wait.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Describe(ctx, dial(t, l.Addr().String()), "/grpc.health.v1.Health/Check")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want ErrUnreachable naming the deadline", err)
	}
}

// healthCheck is the Method Describe finds for Health/Check, without a
// server.
func healthCheck() *Method {
	return &Method{
		Desc:  healthpb.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Check"),
		types: dynamicpb.NewTypes(protoregistry.GlobalFiles),
	}
}

func TestEncodeJSONErrors(t *testing.T) {
	m := healthCheck()
	tests := []struct {
		name, json, says string
	}{
		{"unknown field", `{"servce": "x"}`, `unknown field "servce"`},
		{"wrong type", `{"service": 3}`, "invalid value for string field service"},
		{"not JSON", `service=x`, "invalid value service"},
		{"trailing garbage", `{} {}`, "unexpected token"},
		{"array", `[]`, "unexpected token ["},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.EncodeJSON([]byte(tc.json))
			if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), "grpc.health.v1.HealthCheckRequest") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want ErrBadMessage naming the type and saying %q", err, tc.says)
			}
			if strings.Contains(err.Error(), "proto:") {
				t.Errorf("err %q keeps protobuf's prefix", err)
			}
		})
	}
	if err := m.CheckWire([]byte{0xff}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("CheckWire of garbage: %v", err)
	}
}

func TestParseMethod(t *testing.T) {
	tests := []struct {
		in, full string
		ok       bool
	}{
		{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Check", true},
		{"grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Check", true},
		{"grpc.health.v1.Health.Check", "/grpc.health.v1.Health/Check", true},
		{"/Greeter/SayHello", "/Greeter/SayHello", true},
		{"/shoal.thumbnailer.v1.Thumbnailer/Resize", "/shoal.thumbnailer.v1.Thumbnailer/Resize", true},
		{"Check", "", false},
		{"/a.B/", "", false},
		{"//Check", "", false},
		{"/a..B/C", "", false},
		{"/a.B/C/D", "", false},
		{"/a.1B/C", "", false},
		{"/a.B/C d", "", false},
		{"/a-b.C/D", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			full, _, _, err := ParseMethod(tc.in)
			if (err == nil) != tc.ok || full != tc.full {
				t.Fatalf("ParseMethod(%q) = %q, %v; want %q, ok %v", tc.in, full, err, tc.full, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadMethod) {
				t.Errorf("err %v does not wrap ErrBadMethod", err)
			}
		})
	}
}

func FuzzParseMethod(f *testing.F) {
	for _, s := range []string{"/grpc.health.v1.Health/Check", "a.B.C", "/a/b/c", "", "/", "..", "/é.B/C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		full, service, method, err := ParseMethod(s)
		if err != nil {
			return
		}
		if full != "/"+service+"/"+method {
			t.Fatalf("full %q from %q, %q", full, service, method)
		}
		again, _, _, err := ParseMethod(full)
		if err != nil || again != full {
			t.Fatalf("%q parsed to %q, which reparses to %q, %v", s, full, again, err)
		}
	})
}

func FuzzEncodeJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"service":"x"}`, `{"service":null}`, `{"service":"\u00e9"}`, `[`, `{"service":1}`} {
		f.Add([]byte(s))
	}
	m := healthCheck()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := m.EncodeJSON(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if err := m.CheckWire(b); err != nil {
			t.Fatalf("encoded %x does not decode: %v", b, err)
		}
	})
}
