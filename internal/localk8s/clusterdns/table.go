package clusterdns

import (
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Key names a Service.
type Key struct{ Namespace, Service string }

// Port is one port of a Service, the source of its SRV records.
type Port struct {
	Name     string // the SRV _PORT label without the underscore; may be empty
	Protocol string // "TCP", "UDP" or "SCTP"; the SRV _PROTO label
	Port     uint16
}

// Record is what DNS knows of one Service.
type Record struct {
	// Addrs is the ClusterIP, or the ready pod IPs of a headless Service.
	// A headless Service without ready pods has no name, as in CoreDNS:
	// its queries get NXDOMAIN until a pod is ready.
	Addrs []netip.Addr
	// Ports are the Service's ports (for a headless Service, those of its
	// endpoints). Without ports the Service has A/AAAA records but no SRV.
	Ports []Port
	// Headless marks a Service with clusterIP: None.
	Headless bool
}

// Table is every Service the server answers for. A namespace exists for DNS
// when it holds at least one Service.
type Table map[Key]Record

// index is the immutable, lower-cased form of a Table that queries read.
type index struct {
	services   map[Key]Record
	namespaces map[string]struct{}
	ptr        map[string]string // reverse name -> the name it points to
	serial     uint32
}

// newIndex copies t, so that the caller may keep changing its Table.
func newIndex(t Table, zone string, now time.Time) *index {
	ix := &index{
		services:   make(map[Key]Record, len(t)),
		namespaces: make(map[string]struct{}),
		ptr:        make(map[string]string),
		serial:     uint32(now.Unix()), // #nosec G115 -- SOA serial is the Unix time, as CoreDNS's
	}
	for k, r := range t {
		k = Key{Namespace: strings.ToLower(k.Namespace), Service: strings.ToLower(k.Service)}
		addrs := make([]netip.Addr, 0, len(r.Addrs))
		for _, a := range r.Addrs {
			if a.IsValid() {
				addrs = append(addrs, a.Unmap())
			}
		}
		ports := make([]Port, len(r.Ports))
		copy(ports, r.Ports)
		ix.services[k] = Record{Addrs: addrs, Ports: ports, Headless: r.Headless}
		ix.namespaces[k.Namespace] = struct{}{}

		svcName := k.Service + "." + k.Namespace + ".svc." + zone
		for _, a := range addrs {
			rev, err := dns.ReverseAddr(a.String())
			if err != nil {
				continue
			}
			if r.Headless {
				ix.ptr[rev] = hostLabel(a) + "." + svcName
			} else {
				ix.ptr[rev] = svcName
			}
		}
	}
	return ix
}

// hostLabel is the DNS label CoreDNS gives a pod of a headless Service that
// sets no hostname: its IP with dashes.
func hostLabel(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	h := strings.ReplaceAll(a.String(), ":", "-")
	if strings.HasSuffix(h, "-") {
		h += "0"
	}
	return h
}
