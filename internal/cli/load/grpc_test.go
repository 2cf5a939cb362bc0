package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

// grpcServer is a real gRPC server on loopback with the health service
// (and reflection, unless asked not to), naming itself in x-served-by as
// Shoal's kit does.
type grpcServer struct {
	name    string
	addr    string
	served  atomic.Int64
	service atomic.Value // service named in the last request
	md      atomic.Value // x-test metadata of the last request
}

func startGRPC(t *testing.T, name, addr string, withReflection bool) *grpcServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return serveGRPC(t, name, l, withReflection)
}

func serveGRPC(t *testing.T, name string, l net.Listener, withReflection bool) *grpcServer {
	t.Helper()
	s := &grpcServer{name: name, addr: l.Addr().String()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.served.Add(1)
		if r, ok := req.(*healthpb.HealthCheckRequest); ok {
			s.service.Store(r.GetService())
		}
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			s.md.Store(strings.Join(md.Get("x-test"), ","))
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", name))
		return h(ctx, req)
	}))
	hs := health.NewServer()
	hs.SetServingStatus("gallery", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	if withReflection {
		reflection.Register(srv)
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
	return s
}

// startGRPCReplicas starts n servers on 127.0.0.1, 127.0.0.2, ... at one
// port, as the pods behind a headless Service, and returns the port.
func startGRPCReplicas(t *testing.T, n int) ([]*grpcServer, string) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		ls := []net.Listener{first}
		for i := 2; i <= n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%s", i, port))
			if err != nil {
				break // the port is taken on that address: try another
			}
			ls = append(ls, l)
		}
		if len(ls) < n {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		var servers []*grpcServer
		for i, l := range ls {
			servers = append(servers, serveGRPC(t, fmt.Sprintf("replica-%d", i+1), l, true))
		}
		return servers, port
	}
	t.Fatal("no port free on every loopback address")
	return nil, ""
}

// startDNS serves A records of name on loopback UDP, as a headless
// Service's name, and returns the server's address.
func startDNS(t *testing.T, name string, ips ...string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA && r.Question[0].Name == dns.Fqdn(name) {
				for _, ip := range ips {
					m.Answer = append(m.Answer, &dns.A{
						Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeA, Class: dns.ClassINET},
						A:   net.ParseIP(ip),
					})
				}
			}
			_ = w.WriteMsg(m)
		})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return pc.LocalAddr().String()
}

type grpcReport struct {
	Protocol string
	Method   string
	Target   string
	Requests struct{ Scheduled, Completed, OK int64 }
	Codes    map[string]int64 `json:"grpc_codes"`
	Errors   map[string]int64
	Served   string `json:"served_by_header"`
	Replicas []struct {
		Name     string
		Requests int64
		Share    float64
	}
}

func TestGRPCSharesThroughDNS(t *testing.T) {
	servers, port := startGRPCReplicas(t, 3)
	dnsAddr := startDNS(t, "greeter-headless.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	target := "dns://" + dnsAddr + "/greeter-headless.test:" + port
	for _, tc := range []struct {
		policy   string
		minShare float64 // round_robin's promise; peak EWMA's shares follow latency
	}{{"shoal_peak_ewma", 0}, {"round_robin", 0.15}} {
		policy := tc.policy
		t.Run(policy, func(t *testing.T) {
			for _, s := range servers {
				s.served.Store(0)
			}
			out, _, err := execute(t, "", target, "--grpc", "/grpc.health.v1.Health/Check", "--data", `{"service":"gallery"}`,
				"--grpc-balancer", policy, "--rate", "300", "--count", "300", "-H", "X-Test: yes", "-o", "json", "--quiet")
			if err != nil {
				t.Fatal(err)
			}
			var rep grpcReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			if rep.Protocol != "grpc" || rep.Method != "/grpc.health.v1.Health/Check" || rep.Target != target || rep.Served != "x-served-by" {
				t.Errorf("report header %+v", rep)
			}
			if rep.Requests.OK != 300 || rep.Codes["OK"] != 300 || len(rep.Errors) != 0 {
				t.Fatalf("requests %+v codes %v errors %v", rep.Requests, rep.Codes, rep.Errors)
			}
			// The report counts exactly what each server served; under
			// round_robin each takes a fair part (the first calls may all
			// go to the first replica connected).
			got := map[string]float64{}
			var sum int64
			for _, r := range rep.Replicas {
				got[r.Name] = r.Share
				sum += r.Requests
				var s *grpcServer
				for _, srv := range servers {
					if srv.name == r.Name {
						s = srv
					}
				}
				if s == nil || r.Requests != s.served.Load() || r.Share < tc.minShare {
					t.Errorf("replica %+v; want a server's name, its count and a share of %v at least", r, tc.minShare)
					continue
				}
				if s.service.Load() != "gallery" || s.md.Load() != "yes" {
					t.Errorf("%s saw service %v, x-test %v", s.name, s.service.Load(), s.md.Load())
				}
			}
			if sum != 300 || (tc.minShare > 0 && len(got) != 3) {
				t.Errorf("replicas %+v", rep.Replicas)
			}
		})
	}
}

func TestGRPCTextReportAndRawMessage(t *testing.T) {
	s := startGRPC(t, "solo", "127.0.0.1:0", false)
	msg, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: "gallery"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "check.bin")
	if err := os.WriteFile(file, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := execute(t, "", s.addr, "--grpc", "/grpc.health.v1.Health/Check", "--body", "@"+file,
		"--grpc-balancer", "pick_first", "--count", "20", "--rate", "200", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"target      grpc " + s.addr + " /grpc.health.v1.Health/Check", "completed 20", "ok 20",
		"grpc code", "OK         20", "replica (x-served-by)", "solo", "100.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if s.service.Load() != "gallery" {
		t.Errorf("server saw service %v, want the raw message's", s.service.Load())
	}
}

// TestGRPCBadInput pins the message of each mistake a user can make
// with --grpc: each names the flag or argument, and what was wrong.
func TestGRPCBadInput(t *testing.T) {
	withRefl := startGRPC(t, "r", "127.0.0.1:0", true)
	without := startGRPC(t, "n", "127.0.0.1:0", false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	dnsAddr := startDNS(t, "nothing.test") // no address for any name
	garbage := filepath.Join(t.TempDir(), "garbage.bin")
	if err := os.WriteFile(garbage, []byte{0xff, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	check := "/grpc.health.v1.Health/Check"
	tests := []struct {
		name string
		args []string
		flag string
	}{
		{"unknown method", []string{withRefl.addr, "--grpc", "/grpc.health.v1.Health/Chek", "--data", "{}"}, "--grpc"},
		{"unknown service", []string{withRefl.addr, "--grpc", "/shoal.Nope/Check", "--data", "{}"}, "--grpc"},
		{"streaming method", []string{withRefl.addr, "--grpc", "/grpc.health.v1.Health/Watch", "--data", "{}"}, "--grpc"},
		{"not a method name", []string{withRefl.addr, "--grpc", "Check"}, "--grpc"},
		{"JSON of another message", []string{withRefl.addr, "--grpc", check, "--data", `{"name":"x"}`}, "--data"},
		{"JSON of the wrong type", []string{withRefl.addr, "--grpc", check, "--data", `{"service":3}`}, "--data"},
		{"not JSON", []string{withRefl.addr, "--grpc", check, "--data", `service=x`}, "--data"},
		{"wire bytes that do not decode", []string{withRefl.addr, "--grpc", check, "--body", "@" + garbage}, "--body"},
		{"JSON without reflection", []string{without.addr, "--grpc", check, "--data", "{}"}, "--data"},
		{"unreachable target", []string{closed, "--grpc", check, "--data", "{}"}, "TARGET"},
		{"unreachable target, raw message", []string{closed, "--grpc", check}, "TARGET"},
		{"name without addresses", []string{"dns://" + dnsAddr + "/nothing.test:8082", "--grpc", check, "--timeout", "500ms"}, "TARGET"},
		{"no target", []string{"--grpc", check}, "TARGET"},
		{"both data and body", []string{withRefl.addr, "--grpc", check, "--data", "{}", "--body", "x"}, "--data"},
		{"HTTP method", []string{withRefl.addr, "--grpc", check, "-X", "POST"}, "--method"},
		{"h2c", []string{withRefl.addr, "--grpc", check, "--h2c"}, "--h2c"},
		{"unknown balancer", []string{withRefl.addr, "--grpc", check, "--grpc-balancer", "random"}, "--grpc-balancer"},
		{"grpc- metadata", []string{withRefl.addr, "--grpc", check, "-H", "grpc-timeout: 1S"}, "--header"},
		{"metadata key with a space", []string{withRefl.addr, "--grpc", check, "-H", "x key: 1"}, "--header"},
		{"data without --grpc", []string{"http://127.0.0.1:1/", "--data", "{}"}, "--data"},
		{"bad served-by key", []string{withRefl.addr, "--grpc", check, "--served-by-header", "x/y"}, "--served-by-header"},
	}
	var all strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--count", "1", "--timeout", "5s", "--quiet"}, tc.args...)
			out, _, err := execute(t, "", args...)
			var fe *FlagError
			if !errors.As(err, &fe) || fe.Flag != tc.flag {
				t.Fatalf("err = %v, want a FlagError on %s", err, tc.flag)
			}
			if out != "" {
				t.Errorf("printed a report for bad input: %q", out)
			}
			msg := strings.NewReplacer(withRefl.addr, "SERVER", without.addr, "SERVER", closed, "CLOSED", garbage, "GARBAGE", dnsAddr, "DNS").Replace(err.Error())
			all.WriteString(tc.name + ": " + msg + "\n")
		})
	}
	golden.Check(t, filepath.Join("testdata", "grpc_errors.golden"), []byte(all.String()), *update)
}

// TestGRPCCredentialsStayOutOfErrors feeds --grpc the mistakes a user
// makes with a credential: a header typed with = or a control character,
// a password in the target. Each is refused before anything is dialled,
// naming the flag, and no error repeats the credential.
func TestGRPCCredentialsStayOutOfErrors(t *testing.T) {
	const token = "s3cr3t-token-5d0e"
	check := "/grpc.health.v1.Health/Check"
	tests := []struct {
		name string
		args []string
		flag string
		want string
	}{
		{"metadata typed with =", []string{"127.0.0.1:1", "--grpc", check, "-H", "authorization=Bearer " + token}, "--header", `header "authorization…": want "Name: value"`},
		{"metadata of the token alone", []string{"127.0.0.1:1", "--grpc", check, "-H", token}, "--header", "a header of 17 characters has no colon"},
		{"metadata with the value in its key", []string{"127.0.0.1:1", "--grpc", check, "-H", "authorization bearer " + token + ":"}, "--header", `metadata key "authorization…"`},
		{"metadata with a control character", []string{"127.0.0.1:1", "--grpc", check, "-H", "authorization: Bearer " + token + "\x01"}, "--header", `metadata "authorization": its value holds a byte`},
		{"a password in the target", []string{"dns://user:" + token + "@127.0.0.1:1/gallery:8082", "--grpc", check}, "TARGET", "names a user or password before an @"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--count", "1", "--timeout", "1s"}, tc.args...)
			out, errOut, err := execute(t, "", args...)
			var fe *FlagError
			if !errors.As(err, &fe) || fe.Flag != tc.flag {
				t.Fatalf("err = %v, want a FlagError on %s", err, tc.flag)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
			for name, s := range map[string]string{"error": err.Error(), "stdout": out, "stderr": errOut} {
				if strings.Contains(s, token) {
					t.Errorf("the %s shows the credential: %q", name, s)
				}
			}
		})
	}
}
