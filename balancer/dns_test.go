package balancer

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

// dnsServer is a real DNS server on loopback answering A queries for one
// name with records the test changes.
type dnsServer struct {
	addr     string
	name     string
	mu       sync.Mutex
	ips      []string
	servfail bool
	queries  atomic.Int64
	srv      *dns.Server
}

func startDNS(t *testing.T, name string, ips ...string) *dnsServer {
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
	d.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	ips, fail := slices.Clone(d.ips), d.servfail
	d.mu.Unlock()
	switch {
	case fail:
		m.Rcode = dns.RcodeServerFailure
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

func TestDNSResolverFollowsRecordsWithoutDroppingRequests(t *testing.T) {
	bs := startBackends(t, 2, 4, true) // 127.0.0.2-5, one port
	_, portStr, _ := net.SplitHostPort(bs[0].addr)
	port, _ := strconv.Atoi(portStr)
	ip := func(b *backend) string { return netip.MustParseAddrPort(b.addr).Addr().String() }
	const host = "thumbnailer-headless.default.svc.cluster.local."
	ns := startDNS(t, host, ip(bs[0]), ip(bs[1]), ip(bs[2]))

	r, err := NewDNS(DNSConfig{Host: host, Port: port, Nameserver: ns.addr,
		Interval: 50 * time.Millisecond, MinInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, c := newTestBalancer(t, Config{Resolver: r})
	waitFor(t, "first resolution", func() bool { return len(b.Endpoints()) == 3 })

	// Steady traffic while the records change; every request must succeed.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		sent, failed atomic.Int64
		firstErr     atomic.Value
		wg           sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, code, err := get(ctx, c, ""); err != nil || code != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				sent.Add(1)
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		if f := failed.Load(); f > 0 {
			t.Errorf("%d of %d requests failed across record changes; first: %v", f, sent.Load(), firstErr.Load())
		}
	}()
	waitSent := func(n int64) {
		target := sent.Load() + n
		waitFor(t, "traffic", func() bool { return sent.Load() >= target })
	}

	tests := []struct {
		name    string
		ips     []string
		gone    *backend // must stop getting traffic
		arrived *backend // must start getting traffic
	}{
		{name: "record added", ips: []string{ip(bs[0]), ip(bs[1]), ip(bs[2]), ip(bs[3])}, arrived: bs[3]},
		{name: "record removed", ips: []string{ip(bs[1]), ip(bs[2]), ip(bs[3])}, gone: bs[0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns.set(tt.ips...)
			want := make([]string, len(tt.ips))
			for i, x := range tt.ips {
				want[i] = net.JoinHostPort(x, portStr)
			}
			slices.Sort(want)
			waitFor(t, "the balancer to see "+tt.name, func() bool { return slices.Equal(b.Endpoints(), want) })
			if tt.arrived != nil {
				waitFor(t, "traffic on the new record", func() bool { return tt.arrived.hits.Load() > 0 })
			}
			if tt.gone != nil {
				waitSent(100) // requests picked before the change may still land
				before := tt.gone.hits.Load()
				waitSent(300)
				if got := tt.gone.hits.Load(); got != before {
					t.Fatalf("removed record still got %d requests", got-before)
				}
			}
		})
	}

	t.Run("lookup failures keep the last set", func(t *testing.T) {
		want := b.Endpoints()
		ns.mu.Lock()
		ns.servfail = true
		ns.mu.Unlock()
		q := ns.queries.Load()
		waitFor(t, "failed lookups", func() bool { return ns.queries.Load() >= q+6 })
		if got := b.Endpoints(); !slices.Equal(got, want) {
			t.Fatalf("endpoints after failed lookups = %v, want %v", got, want)
		}
		waitSent(100)
	})
}

func TestNewDNSValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  DNSConfig
		ok   bool
	}{
		{name: "valid", cfg: DNSConfig{Host: "svc.local", Port: 8080}, ok: true},
		{name: "with nameserver", cfg: DNSConfig{Host: "svc.local", Port: 80, Nameserver: "127.0.0.1:53"}, ok: true},
		{name: "no host", cfg: DNSConfig{Port: 80}},
		{name: "no port", cfg: DNSConfig{Host: "svc.local"}},
		{name: "port too big", cfg: DNSConfig{Host: "svc.local", Port: 70000}},
		{name: "nameserver without port", cfg: DNSConfig{Host: "svc.local", Port: 80, Nameserver: "127.0.0.1"}},
		// Negative durations used to mean the default.
		{name: "negative interval", cfg: DNSConfig{Host: "svc.local", Port: 80, Interval: -time.Second}},
		{name: "negative min interval", cfg: DNSConfig{Host: "svc.local", Port: 80, MinInterval: -time.Second}},
		{name: "negative timeout", cfg: DNSConfig{Host: "svc.local", Port: 80, Timeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDNS(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewDNS: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDNSResolverRefreshesAfterConnectionError(t *testing.T) {
	bs := startBackends(t, 2, 2, true)
	_, portStr, _ := net.SplitHostPort(bs[0].addr)
	port, _ := strconv.Atoi(portStr)
	ip := func(b *backend) string { return netip.MustParseAddrPort(b.addr).Addr().String() }
	const host = "thumbnailer-headless.default.svc.cluster.local."
	ns := startDNS(t, host, ip(bs[0]))
	// The interval is long: only the connection error can trigger a refresh.
	r, err := NewDNS(DNSConfig{Host: host, Port: port, Nameserver: ns.addr, Interval: time.Hour, MinInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, c := newTestBalancer(t, Config{Resolver: r})
	waitFor(t, "first resolution", func() bool { return slices.Equal(b.Endpoints(), []string{bs[0].addr}) })

	// The pod moves: its old address stops listening, DNS names the new one.
	ns.set(ip(bs[1]))
	_ = bs[0].srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := get(ctx, c, ""); err == nil {
		t.Fatal("request to the closed endpoint succeeded")
	}
	waitFor(t, "refresh after the connection error", func() bool { return slices.Equal(b.Endpoints(), []string{bs[1].addr}) })
	if by, code, err := get(ctx, c, ""); err != nil || code != 200 || by != bs[1].addr {
		t.Fatalf("after refresh: served by %q, %d, %v", by, code, err)
	}
}

// A client that starts before its service has ready pods resolves an
// empty set; its first requests must not fail until the next interval:
// they ask for a fresh resolution and wait for it.
func TestEmptySetWaitsForAFreshResolution(t *testing.T) {
	bs := startBackends(t, 2, 1, true)
	_, portStr, _ := net.SplitHostPort(bs[0].addr)
	port, _ := strconv.Atoi(portStr)
	const host = "thumbnailer-headless.default.svc.cluster.local."
	ns := startDNS(t, host)
	r, err := NewDNS(DNSConfig{Host: host, Port: port, Nameserver: ns.addr, Interval: time.Hour, MinInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, c := newTestBalancer(t, Config{Resolver: r})
	waitFor(t, "the empty first resolution", func() bool { return ns.queries.Load() > 0 && b.snap.Load() != nil })
	ns.set(netip.MustParseAddrPort(bs[0].addr).Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if by, code, err := get(ctx, c, ""); err != nil || code != 200 || by != bs[0].addr {
		t.Fatalf("first request after the pod appeared: served by %q, %d, %v", by, code, err)
	}
}

// A resolver stopped while its nameserver has not answered leaves no
// lookup running: net's resolver would otherwise wait out the lookup's
// timeout (a minute here) reading the socket.
func TestDNSResolverStopLeavesNoLookup(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	asked := make(chan struct{}, 16)
	silentDone := make(chan struct{})
	go func() {
		defer close(silentDone)
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case asked <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-silentDone })
	before := goleak.IgnoreCurrent()

	r, err := NewDNS(DNSConfig{Host: "silent.default.svc.cluster.local.", Port: 80, Nameserver: pc.LocalAddr().String(), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Resolve(ctx, func([]string) {}) }()
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		t.Fatal("the resolver never asked the nameserver")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if err := goleak.Find(before); err != nil {
		t.Fatalf("a lookup outlived its resolver: %v", err)
	}
}
