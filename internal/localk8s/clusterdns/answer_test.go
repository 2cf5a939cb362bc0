package clusterdns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// rrs renders records one per string, sorted, for comparison.
func rrs(records []dns.RR) []string {
	out := make([]string, 0, len(records))
	for _, rr := range records {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func TestAnswers(t *testing.T) {
	s := startTest(t, Config{})
	s.Update(testTable())
	const z = "svc.cluster.local."
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
	}{
		{name: "ClusterIP A", qname: "web.default." + z, qtype: dns.TypeA,
			answer: []string{"web.default.svc.cluster.local. 5 IN A 127.0.2.11"}},
		{name: "case-insensitive, case kept", qname: "WEB.Default.SVC.Cluster.Local.", qtype: dns.TypeA,
			answer: []string{"WEB.Default.SVC.Cluster.Local. 5 IN A 127.0.2.11"}},
		{name: "AAAA of a v4-only name is NODATA", qname: "web.default." + z, qtype: dns.TypeAAAA},
		{name: "unknown service", qname: "missing.default." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "unknown namespace", qname: "web.nowhere." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "namespace name is NODATA", qname: "default." + z, qtype: dns.TypeA},
		{name: "unknown namespace name", qname: "nowhere." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "svc apex", qname: z, qtype: dns.TypeA},
		{name: "pod apex", qname: "pod.cluster.local.", qtype: dns.TypeA},
		{name: "zone apex A", qname: "cluster.local.", qtype: dns.TypeA},
		{name: "zone apex NS", qname: "cluster.local.", qtype: dns.TypeNS,
			answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 127.0.0.1"}},
		{name: "nameserver address", qname: "ns.dns.cluster.local.", qtype: dns.TypeA,
			answer: []string{"ns.dns.cluster.local. 5 IN A 127.0.0.1"}},
		{name: "not svc or pod", qname: "web.default.foo.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "single label", qname: "foo.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "headless A", qname: "db.default." + z, qtype: dns.TypeA,
			answer: []string{
				"db.default.svc.cluster.local. 5 IN A 127.0.1.2",
				"db.default.svc.cluster.local. 5 IN A 127.0.1.3",
			}},
		{name: "headless without ready pods", qname: "empty.default." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "headless without ready pods SRV", qname: "_http._tcp.empty.default." + z, qtype: dns.TypeSRV, rcode: dns.RcodeNameError},
		{name: "headless pod by name", qname: "127-0-1-3.db.default." + z, qtype: dns.TypeA,
			answer: []string{"127-0-1-3.db.default.svc.cluster.local. 5 IN A 127.0.1.3"}},
		{name: "headless unknown pod", qname: "127-0-1-9.db.default." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "pod name under ClusterIP", qname: "127-0-2-11.web.default." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "too many labels", qname: "a.b.c.web.default." + z, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "SRV named port", qname: "_http._tcp.web.default." + z, qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 5 IN A 127.0.2.11"}},
		{name: "SRV case-insensitive protocol", qname: "_GRPC._TCP.web.default." + z, qtype: dns.TypeSRV,
			answer: []string{"_GRPC._TCP.web.default.svc.cluster.local. 5 IN SRV 0 100 9000 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 5 IN A 127.0.2.11"}},
		{name: "SRV of the service name: every port", qname: "web.default." + z, qtype: dns.TypeSRV,
			answer: []string{
				"web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
				"web.default.svc.cluster.local. 5 IN SRV 0 50 9000 web.default.svc.cluster.local.",
			},
			extra: []string{"web.default.svc.cluster.local. 5 IN A 127.0.2.11"}},
		{name: "SRV headless: one per pod", qname: "_postgres._tcp.db.default." + z, qtype: dns.TypeSRV,
			answer: []string{
				"_postgres._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 127-0-1-2.db.default.svc.cluster.local.",
				"_postgres._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 127-0-1-3.db.default.svc.cluster.local.",
			},
			extra: []string{
				"127-0-1-2.db.default.svc.cluster.local. 5 IN A 127.0.1.2",
				"127-0-1-3.db.default.svc.cluster.local. 5 IN A 127.0.1.3",
			}},
		{name: "SRV wrong protocol", qname: "_http._udp.web.default." + z, qtype: dns.TypeSRV, rcode: dns.RcodeNameError},
		{name: "SRV unknown port", qname: "_nope._tcp.web.default." + z, qtype: dns.TypeSRV, rcode: dns.RcodeNameError},
		{name: "A of an SRV name", qname: "_http._tcp.web.default." + z, qtype: dns.TypeA,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. 5 IN A 127.0.2.11"}},
		{name: "no ports: A", qname: "noports.other." + z, qtype: dns.TypeA,
			answer: []string{"noports.other.svc.cluster.local. 5 IN A 127.0.2.12"}},
		{name: "no ports: SRV is NODATA", qname: "noports.other." + z, qtype: dns.TypeSRV},
		{name: "v6 AAAA", qname: "v6.other." + z, qtype: dns.TypeAAAA,
			answer: []string{"v6.other.svc.cluster.local. 5 IN AAAA fd00::12"}},
		{name: "v6 A is NODATA", qname: "v6.other." + z, qtype: dns.TypeA},
		{name: "v6 SRV", qname: "_dns._udp.v6.other." + z, qtype: dns.TypeSRV,
			answer: []string{"_dns._udp.v6.other.svc.cluster.local. 5 IN SRV 0 100 53 v6.other.svc.cluster.local."},
			extra:  []string{"v6.other.svc.cluster.local. 5 IN AAAA fd00::12"}},
		{name: "pod A", qname: "1-2-3-4.default.pod.cluster.local.", qtype: dns.TypeA,
			answer: []string{"1-2-3-4.default.pod.cluster.local. 5 IN A 1.2.3.4"}},
		{name: "pod AAAA", qname: "fd00--1.default.pod.cluster.local.", qtype: dns.TypeAAAA,
			answer: []string{"fd00--1.default.pod.cluster.local. 5 IN AAAA fd00::1"}},
		{name: "pod in unknown namespace", qname: "1-2-3-4.nowhere.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "pod not an IP", qname: "web.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "TXT of a service is NODATA", qname: "web.default." + z, qtype: dns.TypeTXT},
		{name: "MX of a service is NODATA", qname: "web.default." + z, qtype: dns.TypeMX},
		{name: "CNAME of a service is NODATA", qname: "web.default." + z, qtype: dns.TypeCNAME},
		{name: "MX of an unknown service", qname: "nope.default." + z, qtype: dns.TypeMX, rcode: dns.RcodeNameError},
		{name: "dns-version", qname: "dns-version.cluster.local.", qtype: dns.TypeTXT,
			answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}},
		{name: "zone transfer refused", qname: "cluster.local.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
		{name: "PTR of a ClusterIP", qname: "11.2.0.127.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"11.2.0.127.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."}},
		{name: "PTR of a headless pod", qname: "3.1.0.127.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"3.1.0.127.in-addr.arpa. 5 IN PTR 127-0-1-3.db.default.svc.cluster.local."}},
		{name: "PTR of an unknown address goes upstream (none here)", qname: "9.9.0.127.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeServerFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				m := query(t, s.Addr(), network, tt.qname, tt.qtype)
				if m.Rcode != tt.rcode {
					t.Fatalf("%s: rcode %s, want %s\n%v", network, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode], m)
				}
				if got := rrs(m.Answer); !slices.Equal(got, tt.answer) && (len(got) != 0 || len(tt.answer) != 0) {
					t.Errorf("%s: answer\n%q\nwant\n%q", network, got, tt.answer)
				}
				if got := rrs(m.Extra); !slices.Equal(got, tt.extra) && (len(got) != 0 || len(tt.extra) != 0) {
					t.Errorf("%s: extra\n%q\nwant\n%q", network, got, tt.extra)
				}
				if tt.rcode == dns.RcodeServerFailure || tt.rcode == dns.RcodeRefused {
					continue
				}
				if !m.Authoritative {
					t.Errorf("%s: reply not authoritative", network)
				}
				// Negative answers carry the SOA, so that resolvers can
				// cache the denial for its minimum TTL.
				if len(m.Answer) == 0 {
					if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
						t.Fatalf("%s: authority %v, want one SOA", network, m.Ns)
					}
					soa := m.Ns[0].(*dns.SOA)
					if !strings.EqualFold(soa.Hdr.Name, "cluster.local.") || soa.Minttl != 5 || soa.Ns != "ns.dns.cluster.local." {
						t.Errorf("%s: SOA %v", network, soa)
					}
				}
			}
		})
	}
}

func TestSOAAtApex(t *testing.T) {
	s := startTest(t, Config{})
	s.Update(testTable())
	m := query(t, s.Addr(), "udp", "Cluster.Local.", dns.TypeSOA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("reply %v, want one SOA", m)
	}
	soa, ok := m.Answer[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != "Cluster.Local." || soa.Mbox != "hostmaster.cluster.local." || soa.Serial == 0 {
		t.Errorf("SOA %v", m.Answer[0])
	}
}

func TestNotSyncedIsServerFailure(t *testing.T) {
	s := startTest(t, Config{})
	m := query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode before the first Update %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	s.Update(Table{})
	m = query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA)
	if m.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode after Update %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
}

func TestUpdateSwapsTable(t *testing.T) {
	s := startTest(t, Config{})
	tab := testTable()
	s.Update(tab)
	key := Key{Namespace: "default", Service: "web"}
	// The server keeps its own copy: changing the caller's table changes
	// nothing until the next Update.
	tab[key] = Record{Addrs: []netip.Addr{netip.MustParseAddr("127.0.2.99")}}
	tab[Key{Namespace: "Default", Service: "New"}] = Record{Addrs: []netip.Addr{netip.MustParseAddr("127.0.2.98")}}
	if got := rrs(query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA).Answer); !slices.Equal(got, []string{"web.default.svc.cluster.local. 5 IN A 127.0.2.11"}) {
		t.Fatalf("answer %q before Update", got)
	}
	s.Update(tab)
	if got := rrs(query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA).Answer); !slices.Equal(got, []string{"web.default.svc.cluster.local. 5 IN A 127.0.2.99"}) {
		t.Fatalf("answer %q after Update", got)
	}
	// Kubernetes names are lower-case; keys are matched without case.
	if got := rrs(query(t, s.Addr(), "udp", "new.default.svc.cluster.local.", dns.TypeA).Answer); !slices.Equal(got, []string{"new.default.svc.cluster.local. 5 IN A 127.0.2.98"}) {
		t.Fatalf("answer %q for a mixed-case key", got)
	}
	s.Update(Table{})
	if m := query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s after the Service is gone, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
}

func TestDomainAndTTL(t *testing.T) {
	s := startTest(t, Config{Domain: "Example.Internal.", TTL: 30})
	s.Update(testTable())
	m := query(t, s.Addr(), "udp", "web.default.svc.example.internal.", dns.TypeA)
	if got := rrs(m.Answer); !slices.Equal(got, []string{"web.default.svc.example.internal. 30 IN A 127.0.2.11"}) {
		t.Fatalf("answer %q", got)
	}
	// cluster.local is now outside the domain: it goes upstream, and there
	// is none.
	if m := query(t, s.Addr(), "udp", "web.default.svc.cluster.local.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s outside the domain without upstreams, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	m = query(t, s.Addr(), "udp", "nope.default.svc.example.internal.", dns.TypeA)
	if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].Header().Ttl != 30 {
		t.Fatalf("negative reply %v, want NXDOMAIN with an SOA of TTL 30", m)
	}
}

func TestTruncationOverUDP(t *testing.T) {
	s := startTest(t, Config{})
	var addrs []netip.Addr
	for i := 2; i < 102; i++ {
		addrs = append(addrs, netip.MustParseAddr(fmt.Sprintf("127.0.1.%d", i)))
	}
	s.Update(Table{{Namespace: "default", Service: "big"}: {Addrs: addrs, Headless: true}})
	const name = "big.default.svc.cluster.local."

	m := query(t, s.Addr(), "udp", name, dns.TypeA)
	if !m.Truncated || len(m.Answer) >= len(addrs) {
		t.Fatalf("UDP reply without EDNS: truncated %v with %d answers, want TC and fewer than %d", m.Truncated, len(m.Answer), len(addrs))
	}
	m.Compress = true // as the server sent it
	if n, err := m.Pack(); err != nil || len(n) > dns.MinMsgSize {
		t.Fatalf("UDP reply is %d bytes (%v), want at most %d", len(n), err, dns.MinMsgSize)
	}

	req := new(dns.Msg)
	req.SetQuestion(name, dns.TypeA)
	req.SetEdns0(4096, false)
	if m := exchange(t, s.Addr(), "udp", req); m.Truncated || len(m.Answer) != len(addrs) || m.IsEdns0() == nil {
		t.Fatalf("UDP reply with EDNS 4096: truncated %v, %d answers, OPT %v; want all %d", m.Truncated, len(m.Answer), m.IsEdns0(), len(addrs))
	}

	if m := query(t, s.Addr(), "tcp", name, dns.TypeA); m.Truncated || len(m.Answer) != len(addrs) {
		t.Fatalf("TCP reply: truncated %v with %d answers, want all %d", m.Truncated, len(m.Answer), len(addrs))
	}
}
