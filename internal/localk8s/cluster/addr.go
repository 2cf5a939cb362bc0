package cluster

import (
	"fmt"
	"net/netip"
)

// ipPool hands out the host addresses of a /24 (or larger) loopback
// prefix, skipping the network address, .1, and reserved addresses.
type ipPool struct {
	prefix   netip.Prefix
	next     netip.Addr
	used     map[netip.Addr]bool
	reserved map[netip.Addr]bool
}

func newIPPool(p netip.Prefix, reserved ...netip.Addr) *ipPool {
	p = p.Masked()
	r := map[netip.Addr]bool{}
	for _, a := range reserved {
		r[a] = true
	}
	first := p.Addr().Next().Next()
	return &ipPool{prefix: p, next: first, used: map[netip.Addr]bool{}, reserved: r}
}

// get returns a free address, preferring ones not handed out recently so a
// restarted pod's address is not reused at once (clients may still hold it).
func (p *ipPool) get() (netip.Addr, error) {
	start := p.next
	for a := start; ; {
		ok := p.prefix.Contains(a) && !p.used[a] && !p.reserved[a] && !isBroadcast(p.prefix, a)
		nxt := a.Next()
		if !p.prefix.Contains(nxt) || isBroadcast(p.prefix, nxt) {
			nxt = p.prefix.Addr().Next().Next()
		}
		if ok {
			p.used[a] = true
			p.next = nxt
			return a, nil
		}
		a = nxt
		if a == start {
			return netip.Addr{}, fmt.Errorf("cluster: no free address left in %s", p.prefix)
		}
	}
}

func (p *ipPool) put(a netip.Addr) { delete(p.used, a) }

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	b := a.As4()
	bits := p.Bits()
	host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	mask := uint32(1)<<(32-bits) - 1
	return host&mask == mask
}
