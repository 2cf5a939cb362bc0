package clusterdns

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a second DNS server on loopback standing in for the host's
// resolvers.
type upstream struct {
	addr    netip.AddrPort
	mu      sync.Mutex
	queries []string // "network name" of each query received
}

// startUpstream serves h on addr over UDP and TCP until the test ends.
func startUpstream(t *testing.T, addr string, h func(w dns.ResponseWriter, r *dns.Msg)) *upstream {
	t.Helper()
	pc, ln, err := listen(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	u := &upstream{addr: netip.MustParseAddrPort(pc.LocalAddr().String())}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.mu.Lock()
		u.queries = append(u.queries, w.RemoteAddr().Network()+" "+r.Question[0].Name)
		u.mu.Unlock()
		h(w, r)
	})
	started := make(chan struct{}, 2)
	errs := make(chan error, 2)
	servers := []*dns.Server{
		{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { started <- struct{}{} }},
		{Listener: ln, Handler: handler, NotifyStartedFunc: func() { started <- struct{}{} }},
	}
	for _, srv := range servers {
		go func() { errs <- srv.ActivateAndServe() }()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			t.Fatalf("upstream: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("upstream shutdown: %v", err)
			}
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("upstream: %v", err)
			}
		}
	})
	return u
}

func (u *upstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.queries)
}

// answerExample answers every A query with 192.0.2.1 and a TXT naming the
// transport it came on.
func answerExample(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	q := r.Question[0]
	if q.Qtype == dns.TypeA {
		m.Answer = append(m.Answer,
			&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)},
			&dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{w.RemoteAddr().Network()}})
	}
	_ = w.WriteMsg(m)
}

func TestForwardOutsideDomain(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0", answerExample)
	s := startTest(t, Config{Upstreams: []string{up.addr.String()}})
	s.Update(testTable())

	for _, network := range []string{"udp", "tcp"} {
		m := query(t, s.Addr(), network, "Example.COM.", dns.TypeA)
		want := []string{
			"Example.COM. 60 IN A 192.0.2.1",
			`Example.COM. 60 IN TXT "` + network + `"`,
		}
		if got := rrs(m.Answer); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Fatalf("%s: rcode %s answer %q, want the upstream's %q", network, dns.RcodeToString[m.Rcode], got, want)
		}
	}
	// Names in the domain never reach the upstream, even unknown ones.
	query(t, s.Addr(), "udp", "nope.default.svc.cluster.local.", dns.TypeA)
	query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA)
	if got, want := up.received(), []string{"udp Example.COM.", "tcp Example.COM."}; !slices.Equal(got, want) {
		t.Fatalf("upstream received %q, want %q", got, want)
	}
}

func TestForwardTriesUpstreamsInOrder(t *testing.T) {
	// A port nobody listens on: UDP gets "connection refused", TCP too.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	dead.Close()

	up := startUpstream(t, "127.0.0.1:0", answerExample)
	s := startTest(t, Config{Upstreams: []string{deadAddr, up.addr.String()}})
	s.Update(testTable())
	for _, network := range []string{"udp", "tcp"} {
		m := query(t, s.Addr(), network, "example.com.", dns.TypeA)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
			t.Fatalf("%s: reply %v, want the second upstream's answer", network, m)
		}
	}
}

func TestForwardUpstreamErrorIsPassedOn(t *testing.T) {
	up := startUpstream(t, "127.0.0.1:0", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})
	s := startTest(t, Config{Upstreams: []string{up.addr.String()}})
	if m := query(t, s.Addr(), "udp", "nosuch.example.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s, want the upstream's NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
}

func TestForwardWithoutUpstreams(t *testing.T) {
	s := startTest(t, Config{Upstreams: []string{}})
	s.Update(testTable())
	if m := query(t, s.Addr(), "udp", "example.com.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

// TestCloseCutsForwardShort shows that Close does not wait for an upstream
// that never answers: the query in flight gets SERVFAIL at once, although
// the upstream timeout is an hour.
func TestCloseCutsForwardShort(t *testing.T) {
	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	up := startUpstream(t, "127.0.0.1:0", func(dns.ResponseWriter, *dns.Msg) {
		asked <- struct{}{}
		<-release // never answers; let go when the test ends
	})
	defer close(release)

	s, err := newServer(Config{Addr: "127.0.0.1:0", Upstreams: []string{up.addr.String()}})
	if err != nil {
		t.Fatal(err)
	}
	s.forwardTimeout = time.Hour
	if _, err := s.start(); err != nil {
		t.Fatal(err)
	}
	replies := make(chan *dns.Msg, 1)
	go func() {
		req := new(dns.Msg)
		req.SetQuestion("slow.example.", dns.TypeA)
		c := &dns.Client{Net: "udp", Timeout: time.Minute}
		m, _, err := c.Exchange(req, s.Addr().String())
		if err != nil {
			t.Errorf("query: %v", err)
		}
		replies <- m
	}()
	<-asked
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if m := <-replies; m == nil || m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("reply %v, want SERVFAIL", m)
	}
}

func TestDefaultUpstreamsFromHostResolvConf(t *testing.T) {
	ip := freeLoopback53(t)
	up := startUpstream(t, netip.AddrPortFrom(ip, 53).String(), answerExample)

	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, []byte("# host\nnameserver "+ip.String()+"\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Start(Config{Addr: "127.0.0.1:0", HostResolvConf: rc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := query(t, s.Addr(), "udp", "example.com.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
		t.Fatalf("reply %v, want the answer of the nameserver in %s", m, rc)
	}
	if len(up.received()) != 1 {
		t.Fatalf("upstream received %q", up.received())
	}

	// A missing file leaves no upstream: SERVFAIL, not a failed Start.
	s2, err := Start(Config{Addr: "127.0.0.1:0", HostResolvConf: filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if m := query(t, s2.Addr(), "udp", "example.com.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s without a resolv.conf, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

func TestStartErrors(t *testing.T) {
	s := startTest(t, Config{})
	tests := []struct {
		name string
		cfg  Config
		want string
		is   error
	}{
		{name: "address in use", cfg: Config{Addr: s.Addr().String(), Upstreams: []string{}},
			want: "clusterdns: listen udp " + s.Addr().String() + ": bind: address already in use"},
		{name: "bad address", cfg: Config{Addr: "localhost:53"}, want: `Addr "localhost:53"`, is: ErrInvalidConfig},
		{name: "bad domain", cfg: Config{Addr: "127.0.0.1:0", Domain: "a..b"}, want: `Domain "a..b"`, is: ErrInvalidConfig},
		{name: "bad upstream", cfg: Config{Addr: "127.0.0.1:0", Upstreams: []string{"dns.google"}}, want: `upstream "dns.google"`, is: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Start(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "clusterdns: ") {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}

func TestUpstreamSelfIsSkipped(t *testing.T) {
	ip := freeLoopback53(t)
	addr := netip.AddrPortFrom(ip, 53)
	// The host resolv.conf of a machine whose DNS is this very server must
	// not make it forward to itself forever.
	s := startTest(t, Config{Addr: addr.String(), Upstreams: []string{ip.String()}})
	if m := query(t, s.Addr(), "udp", "example.com.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}
