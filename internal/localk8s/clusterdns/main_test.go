package clusterdns

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTable is the cluster most tests query.
func testTable() Table {
	return Table{
		{Namespace: "default", Service: "web"}: {
			Addrs: []netip.Addr{netip.MustParseAddr("127.0.2.11")},
			Ports: []Port{{Name: "http", Protocol: "TCP", Port: 80}, {Name: "grpc", Protocol: "TCP", Port: 9000}},
		},
		{Namespace: "default", Service: "db"}: {
			Addrs:    []netip.Addr{netip.MustParseAddr("127.0.1.2"), netip.MustParseAddr("127.0.1.3")},
			Ports:    []Port{{Name: "postgres", Protocol: "TCP", Port: 5432}},
			Headless: true,
		},
		{Namespace: "default", Service: "empty"}: {
			Ports:    []Port{{Name: "http", Protocol: "TCP", Port: 80}},
			Headless: true,
		},
		{Namespace: "other", Service: "noports"}: {
			Addrs: []netip.Addr{netip.MustParseAddr("127.0.2.12")},
		},
		{Namespace: "other", Service: "v6"}: {
			Addrs: []netip.Addr{netip.MustParseAddr("fd00::12")},
			Ports: []Port{{Name: "dns", Protocol: "UDP", Port: 53}},
		},
	}
}

// startTest starts a server on a free loopback port, closed at the end of
// the test.
func startTest(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{}
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// exchange sends one query to addr over network and returns the reply.
func exchange(t *testing.T, addr netip.AddrPort, network string, req *dns.Msg) *dns.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: 30 * time.Second}
	resp, _, err := c.ExchangeContext(ctx, req, addr.String())
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, req.Question[0].Name, dns.TypeToString[req.Question[0].Qtype], err)
	}
	return resp
}

func query(t *testing.T, addr netip.AddrPort, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	return exchange(t, addr, network, req)
}
