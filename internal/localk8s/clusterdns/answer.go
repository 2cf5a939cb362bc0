package clusterdns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// dnsSchemaVersion is the version of the Kubernetes DNS specification the
// answers follow, served as TXT at dns-version.DOMAIN.
const dnsSchemaVersion = "1.1.0"

// endpoint is one (address, port) a name resolves to.
type endpoint struct {
	addr   netip.Addr
	port   int    // -1 when the Service declares no port
	target string // the name that owns addr: the SRV target
}

// zone answers the names under one cluster domain. Its fields are fixed at
// Start; the table it reads is passed to each call.
type zone struct {
	name string     // lower-case, fully qualified: "cluster.local."
	ttl  uint32     // of every answer
	ns   netip.Addr // the server's own address, for ns.dns.DOMAIN
}

// inZone reports whether the lower-cased, fully qualified name is the zone
// or below it.
func (z *zone) inZone(name string) bool { return dns.IsSubDomain(z.name, name) }

// answer builds the authoritative reply to req, whose single question is
// under the zone (or a reverse name the table knows). tab is nil before the
// first Update.
func (z *zone) answer(tab *index, req *dns.Msg) *dns.Msg {
	q := req.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name))
	// The zone as the client spelled it, for the SOA owner, as CoreDNS does.
	qzone := z.name
	if n := len(q.Name) - len(z.name); n >= 0 && strings.EqualFold(q.Name[n:], z.name) {
		qzone = q.Name[n:]
	}

	if tab == nil {
		// Not synced with the cluster yet: a denial would be cached by
		// clients, a failure is retried.
		return reply(req, dns.RcodeServerFailure)
	}

	var (
		records, extra []dns.RR
		exists         bool
	)
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return reply(req, dns.RcodeRefused)
	case dns.TypeA, dns.TypeAAAA:
		var eps []endpoint
		eps, exists = z.lookup(tab, name)
		records = z.addresses(q, eps)
	case dns.TypeSRV:
		var eps []endpoint
		eps, exists = z.lookup(tab, name)
		records, extra = z.srv(q, eps)
	case dns.TypeSOA:
		_, exists = z.lookup(tab, name)
		if name == z.name {
			records = []dns.RR{z.soa(tab, qzone)}
		}
	case dns.TypeNS:
		_, exists = z.lookup(tab, name)
		if name == z.name {
			target := "ns.dns." + z.name
			records = []dns.RR{&dns.NS{Hdr: z.hdr(q.Name, dns.TypeNS), Ns: target}}
			if z.ns.IsValid() {
				extra = z.addresses(dns.Question{Name: target, Qtype: addrType(z.ns), Qclass: dns.ClassINET},
					[]endpoint{{addr: z.ns, port: -1}})
			}
		}
	case dns.TypeTXT:
		if name == "dns-version."+z.name {
			exists = true
			records = []dns.RR{&dns.TXT{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 28800},
				Txt: []string{dnsSchemaVersion},
			}}
			break
		}
		_, exists = z.lookup(tab, name)
	default:
		// Names hold only address records: every other type is NODATA for
		// a name that exists, NXDOMAIN for one that does not.
		_, exists = z.lookup(tab, name)
	}

	if !exists {
		m := reply(req, dns.RcodeNameError)
		m.Ns = []dns.RR{z.soa(tab, qzone)}
		return m
	}
	m := reply(req, dns.RcodeSuccess)
	if len(records) == 0 {
		m.Ns = []dns.RR{z.soa(tab, qzone)}
		return m
	}
	m.Answer = records
	m.Extra = extra
	return m
}

// reply starts an authoritative reply to req with the given rcode.
func reply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.Authoritative = rcode != dns.RcodeServerFailure && rcode != dns.RcodeRefused
	m.RecursionAvailable = true
	return m
}

// lookup resolves a lower-cased, fully qualified name under the zone to its
// endpoints, following the CoreDNS kubernetes plugin: exists is false where
// CoreDNS answers NXDOMAIN.
func (z *zone) lookup(tab *index, name string) (eps []endpoint, exists bool) {
	base := strings.TrimSuffix(strings.TrimSuffix(name, z.name), ".")
	switch base {
	case "", "svc", "pod":
		return nil, true
	case "ns.dns":
		if z.ns.IsValid() {
			return []endpoint{{addr: z.ns, port: -1, target: name}}, true
		}
		return nil, false
	}
	labels := dns.SplitDomainName(base)
	last := len(labels) - 1
	if last < 0 {
		return nil, false
	}
	kind := labels[last]
	if kind != "svc" && kind != "pod" {
		return nil, false
	}
	if last == 0 {
		return nil, true
	}
	ns := labels[last-1]
	if _, ok := tab.namespaces[ns]; !ok {
		return nil, false
	}
	if last == 1 {
		return nil, true // the namespace itself: NODATA
	}
	svc := labels[last-2]
	rest := labels[:last-2]
	if kind == "pod" {
		return z.pod(name, svc, rest)
	}
	rec, ok := tab.services[Key{Namespace: ns, Service: svc}]
	if !ok {
		return nil, false
	}

	var host, portName, proto string
	switch len(rest) {
	case 0:
	case 1:
		host = rest[0]
	case 2:
		portName, proto = strings.TrimPrefix(rest[0], "_"), strings.TrimPrefix(rest[1], "_")
	default:
		return nil, false
	}

	ports := rec.Ports
	if len(ports) == 0 {
		ports = []Port{{}} // the no-port sentinel: address records, no SRV
	}
	svcName := svc + "." + ns + ".svc." + z.name
	if rec.Headless || host != "" {
		// Only headless Services carry their pods' addresses here; the
		// pods behind a ClusterIP are not named, so HOST.SERVICE under
		// one is NXDOMAIN.
		if !rec.Headless {
			return nil, false
		}
		for _, a := range rec.Addrs {
			h := hostLabel(a)
			if host != "" && host != h {
				continue
			}
			for _, p := range ports {
				if matchPort(p, portName, proto) {
					eps = append(eps, endpoint{addr: a, port: portNumber(p, rec.Ports), target: h + "." + svcName})
				}
			}
		}
		return eps, len(eps) > 0
	}

	exists = false
	for _, p := range ports {
		if !matchPort(p, portName, proto) {
			continue
		}
		exists = true
		for _, a := range rec.Addrs {
			eps = append(eps, endpoint{addr: a, port: portNumber(p, rec.Ports), target: svcName})
		}
	}
	return eps, exists
}

// pod answers A-B-C-D.NS.pod.DOMAIN with the address in the name, as CoreDNS
// does in its "pods insecure" mode.
func (z *zone) pod(name, label string, rest []string) ([]endpoint, bool) {
	if len(rest) != 0 {
		return nil, false
	}
	var s string
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		s = strings.ReplaceAll(label, "-", ".")
	} else {
		s = strings.ReplaceAll(label, "-", ":")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return nil, false
	}
	return []endpoint{{addr: a.Unmap(), port: -1, target: name}}, true
}

// matchPort reports whether p answers an SRV query for _name._proto; empty
// parts match any port.
func matchPort(p Port, name, proto string) bool {
	return (name == "" || strings.EqualFold(name, p.Name)) &&
		(proto == "" || strings.EqualFold(proto, p.Protocol))
}

// portNumber is p's number, or -1 for the sentinel of a Service without
// ports.
func portNumber(p Port, declared []Port) int {
	if len(declared) == 0 {
		return -1
	}
	return int(p.Port)
}

func addrType(a netip.Addr) uint16 {
	if a.Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// hdr is the header of an answer owned by name.
func (z *zone) hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: z.ttl}
}

// addresses are the A or AAAA records (as q asks) of eps, one per address.
func (z *zone) addresses(q dns.Question, eps []endpoint) []dns.RR {
	var rrs []dns.RR
	seen := make(map[netip.Addr]bool, len(eps))
	for _, ep := range eps {
		if seen[ep.addr] || addrType(ep.addr) != q.Qtype {
			continue
		}
		seen[ep.addr] = true
		rrs = append(rrs, z.addressRR(q.Name, ep.addr))
	}
	return rrs
}

func (z *zone) addressRR(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: z.hdr(name, dns.TypeA), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: z.hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()}
}

// srv are the SRV records of eps with the address records of their targets
// for the additional section. As in CoreDNS, all records share priority 0
// and split a weight of 100 evenly.
func (z *zone) srv(q dns.Question, eps []endpoint) (records, extra []dns.RR) {
	if len(eps) == 0 {
		return nil, nil
	}
	weight := uint16(100 / len(eps))
	if weight == 0 {
		weight = 1
	}
	type srvKey struct {
		target string
		port   int
	}
	type addrKey struct {
		target string
		addr   netip.Addr
	}
	seenSRV := make(map[srvKey]bool)
	seenAddr := make(map[addrKey]bool)
	for _, ep := range eps {
		if ep.port < 0 {
			continue
		}
		if k := (srvKey{ep.target, ep.port}); !seenSRV[k] {
			seenSRV[k] = true
			records = append(records, &dns.SRV{
				Hdr:    z.hdr(q.Name, dns.TypeSRV),
				Weight: weight, Port: uint16(ep.port), Target: ep.target,
			})
		}
		if k := (addrKey{ep.target, ep.addr}); !seenAddr[k] {
			seenAddr[k] = true
			extra = append(extra, z.addressRR(ep.target, ep.addr))
		}
	}
	return records, extra
}

// soa is the zone's SOA record, owned by the zone as the client spelled it.
func (z *zone) soa(tab *index, owner string) dns.RR {
	ttl := min(z.ttl, 300)
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: owner, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns.dns." + z.name,
		Mbox:    "hostmaster." + z.name,
		Serial:  tab.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

// reverse answers a PTR query for a ClusterIP or a headless pod IP; ok is
// false for addresses the table does not know, which go upstream.
func (z *zone) reverse(tab *index, req *dns.Msg) (m *dns.Msg, ok bool) {
	q := req.Question[0]
	if tab == nil || q.Qtype != dns.TypePTR {
		return nil, false
	}
	target, ok := tab.ptr[strings.ToLower(dns.Fqdn(q.Name))]
	if !ok {
		return nil, false
	}
	m = reply(req, dns.RcodeSuccess)
	m.Answer = []dns.RR{&dns.PTR{Hdr: z.hdr(q.Name, dns.TypePTR), Ptr: target}}
	return m, true
}
