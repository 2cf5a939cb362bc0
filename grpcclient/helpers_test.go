package grpcclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dnsServer is a real DNS server on loopback answering A queries for one
// name with records the test changes.
type dnsServer struct {
	addr string
	name string
	mu   sync.Mutex
	ips  []string
	srv  *dns.Server
}

func startDNS(t testing.TB, name string, ips ...string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), name: dns.Fqdn(name), ips: ips}
	started := make(chan struct{})
	d.srv = &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = d.srv.Shutdown()
		<-done
	})
	return d
}

func (d *dnsServer) set(ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ips = ips
}

func (d *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	ips := slices.Clone(d.ips)
	d.mu.Unlock()
	switch {
	case len(r.Question) == 0 || r.Question[0].Name != d.name:
		m.Rcode = dns.RcodeNameError
	case r.Question[0].Qtype == dns.TypeA:
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: d.name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   net.ParseIP(ip),
			})
		}
	}
	_ = w.WriteMsg(m)
}

// backend is a real grpc.Server on a loopback address: the interop
// TestService, whose calls it counts, and the health service.
type backend struct {
	testpb.UnimplementedTestServiceServer
	ip    string
	addr  string
	srv   *grpc.Server
	hs    *health.Server
	calls atomic.Int64
	delay atomic.Int64 // nanoseconds each call takes
	done  chan struct{}
	once  sync.Once
}

type backendOpts struct {
	maxConnAge time.Duration
	delay      time.Duration
}

// freePort returns a port free on 127.0.0.1, for backends that must share
// one port on several loopback addresses (DNS A records carry no port).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startBackend(t testing.TB, ip string, port int, o backendOpts) *backend {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ip: ip, addr: l.Addr().String(), done: make(chan struct{})}
	b.delay.Store(int64(o.delay))
	var opts []grpc.ServerOption
	if o.maxConnAge > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: o.maxConnAge, MaxConnectionAgeGrace: o.maxConnAge,
		}))
	}
	b.srv = grpc.NewServer(opts...)
	b.hs = health.NewServer()
	healthpb.RegisterHealthServer(b.srv, b.hs)
	testpb.RegisterTestServiceServer(b.srv, b)
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(l)
	}()
	t.Cleanup(b.kill)
	return b
}

// kill stops the server at once, failing the calls in flight, as a
// crashed process would.
func (b *backend) kill() {
	b.once.Do(func() {
		b.hs.Shutdown()
		b.srv.Stop()
		<-b.done
	})
}

func (b *backend) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.calls.Add(1)
	if d := time.Duration(b.delay.Load()); d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &testpb.SimpleResponse{Hostname: b.addr}, nil
}

// call makes one UnaryCall and returns the address that answered.
func call(ctx context.Context, c testpb.TestServiceClient) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetHostname(), nil
}

// load runs workers making calls until ctx ends, counting answers per
// address and failures.
type load struct {
	mu     sync.Mutex
	counts map[string]int
	failed []error
	wg     sync.WaitGroup
}

func startLoad(ctx context.Context, c testpb.TestServiceClient, workers int, keyOf func(i int) context.Context) *load {
	l := &load{counts: map[string]int{}}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				cctx := ctx
				if keyOf != nil {
					cctx = keyOf(w*1_000_000 + i)
				}
				addr, err := call(cctx, c)
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				if err != nil {
					l.failed = append(l.failed, err)
				} else {
					l.counts[addr]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// snapshot returns the counts so far and resets them.
func (l *load) snapshot() (map[string]int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, f := l.counts, l.failed
	l.counts, l.failed = map[string]int{}, nil
	return c, f
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("condition not met before the deadline")
		case <-tick.C:
		}
	}
	return nil
}

func itoa(i int) string { return fmt.Sprint(i) }

// discard is the logger of tests that expect no log worth reading.
var discard = slog.New(slog.DiscardHandler)

func testClient(cc grpc.ClientConnInterface) testpb.TestServiceClient {
	return testpb.NewTestServiceClient(cc)
}
