package cluster

import (
	"net/netip"
	"strings"
	"testing"
)

func TestIPPool(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		prefix   string
		reserved []netip.Addr
		// wantN is how many addresses the pool hands out before it is
		// exhausted; first the first of them.
		wantN int
		first netip.Addr
		never []netip.Addr
	}{
		{
			name: "/24", prefix: "127.0.41.0/24", wantN: 253, first: a("127.0.41.2"),
			never: []netip.Addr{a("127.0.41.0"), a("127.0.41.1"), a("127.0.41.255")},
		},
		{
			name: "/24 with reserved", prefix: "127.0.42.0/24", reserved: []netip.Addr{a("127.0.42.2"), a("127.0.42.10")},
			wantN: 251, first: a("127.0.42.3"),
			never: []netip.Addr{a("127.0.42.2"), a("127.0.42.10"), a("127.0.42.255")},
		},
		{
			name: "/23 keeps .255 of the lower half", prefix: "127.0.40.0/23", wantN: 509, first: a("127.0.40.2"),
			never: []netip.Addr{a("127.0.40.0"), a("127.0.40.1"), a("127.0.41.255")},
		},
		{
			name: "unmasked prefix", prefix: "127.0.41.77/30", wantN: 1, first: a("127.0.41.78"),
			never: []netip.Addr{a("127.0.41.76"), a("127.0.41.77"), a("127.0.41.79")},
		},
		{name: "/31 has no host", prefix: "127.0.41.0/31", wantN: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIPPool(netip.MustParsePrefix(tt.prefix), tt.reserved...)
			seen := map[netip.Addr]bool{}
			for i := range tt.wantN {
				got, err := p.get()
				if err != nil {
					t.Fatalf("get #%d: %v", i+1, err)
				}
				if i == 0 && got != tt.first {
					t.Errorf("first address %s, want %s", got, tt.first)
				}
				if seen[got] {
					t.Fatalf("get #%d handed out %s twice", i+1, got)
				}
				seen[got] = true
			}
			for _, n := range tt.never {
				if seen[n] {
					t.Errorf("handed out %s", n)
				}
			}
			_, err := p.get()
			if err == nil || !strings.Contains(err.Error(), "cluster: no free address left in "+netip.MustParsePrefix(tt.prefix).Masked().String()) {
				t.Fatalf("get after %d addresses = %v, want the pool exhausted", tt.wantN, err)
			}
		})
	}
}

func TestIPPoolReuse(t *testing.T) {
	p := newIPPool(netip.MustParsePrefix("127.0.41.0/24"))
	first, _ := p.get()
	p.put(first)
	// A released address is not handed out again at once: clients may
	// still be connected to the pod that had it.
	if next, _ := p.get(); next == first {
		t.Errorf("get right after put(%s) returned it again", first)
	}
	for {
		if _, err := p.get(); err != nil {
			break
		}
	}
	freed := netip.MustParseAddr("127.0.41.100")
	p.put(freed)
	if got, err := p.get(); err != nil || got != freed {
		t.Fatalf("get on a full pool after put(%s) = %s, %v", freed, got, err)
	}
	if _, err := p.get(); err == nil {
		t.Fatal("get handed out an address the pool does not have")
	}
}
