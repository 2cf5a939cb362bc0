package clusterdns

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkRespond measures answering from the table, without the network.
func BenchmarkRespond(b *testing.B) {
	s, err := newServer(Config{Upstreams: []string{}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.cancel()
	s.Update(testTable())
	for _, q := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", "web.default.svc.cluster.local.", dns.TypeA},
		{"SRV-headless", "_postgres._tcp.db.default.svc.cluster.local.", dns.TypeSRV},
		{"NXDOMAIN", "nope.default.svc.cluster.local.", dns.TypeA},
	} {
		b.Run(q.name, func(b *testing.B) {
			req := new(dns.Msg)
			req.SetQuestion(q.qname, q.qtype)
			b.ReportAllocs()
			for b.Loop() {
				if m := s.respond(context.Background(), req, "udp"); m.Rcode == dns.RcodeServerFailure {
					b.Fatal("SERVFAIL")
				}
			}
		})
	}
}
