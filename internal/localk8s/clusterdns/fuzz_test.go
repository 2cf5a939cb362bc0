package clusterdns

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// fuzzServer is a server without listeners or upstreams: names outside the
// domain get SERVFAIL without any I/O.
func fuzzServer(f *testing.F) *Server {
	s, err := newServer(Config{Upstreams: []string{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.cancel)
	s.Update(testTable())
	return s
}

// checkReply asserts what every reply must be: to the query, and, for a
// name that can be on the wire, encodable.
func checkReply(t *testing.T, req, m *dns.Msg) {
	if m == nil {
		t.Fatal("no reply")
	}
	if m.Id != req.Id || !m.Response {
		t.Fatalf("reply %v does not answer query %d", m, req.Id)
	}
	if len(req.Question) != 1 {
		return
	}
	name := req.Question[0].Name
	if _, ok := dns.IsDomainName(name); !ok || !dns.IsFqdn(name) {
		return
	}
	if _, err := m.Pack(); err != nil {
		t.Fatalf("reply to %q %d cannot be packed: %v\n%v", name, req.Question[0].Qtype, err, m)
	}
}

// FuzzQueryName feeds arbitrary names and types through the handler.
func FuzzQueryName(f *testing.F) {
	s := fuzzServer(f)
	for _, seed := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", dns.TypeA},
		{"_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV},
		{"127-0-1-2.db.default.svc.cluster.local.", dns.TypeA},
		{"1-2-3-4.default.pod.cluster.local.", dns.TypeA},
		{"fd00--1.default.pod.cluster.local.", dns.TypeAAAA},
		{"svc..cluster.local.", dns.TypeA},
		{"a.b.c.d.e.default.svc.cluster.local.", dns.TypeTXT},
		{"cluster.local.", dns.TypeNS},
		{"CLUSTER.LOCAL", dns.TypeSOA},
		{"11.2.0.127.in-addr.arpa.", dns.TypePTR},
		{"dns-version.cluster.local.", dns.TypeTXT},
		{"", dns.TypeA},
		{".", dns.TypeANY},
		{`we\.b.default.svc.cluster.local.`, dns.TypeA},
	} {
		f.Add(seed.name, seed.qtype)
	}
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		req := new(dns.Msg)
		req.SetQuestion(name, qtype)
		for _, network := range []string{"udp", "tcp"} {
			checkReply(t, req, s.respond(context.Background(), req, network))
		}
	})
}

// FuzzQueryWire feeds arbitrary packets, as the listeners receive them.
func FuzzQueryWire(f *testing.F) {
	s := fuzzServer(f)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", dns.TypeA},
		{"_postgres._tcp.db.default.svc.cluster.local.", dns.TypeSRV},
		{"3.1.0.127.in-addr.arpa.", dns.TypePTR},
	} {
		req := new(dns.Msg)
		req.SetQuestion(q.name, q.qtype)
		req.SetEdns0(1232, false)
		b, err := req.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil || req.Response {
			return
		}
		m := s.respond(context.Background(), req, "udp")
		checkReply(t, req, m)
	})
}
