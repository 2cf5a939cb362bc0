package balancer

import "sync/atomic"

// RoundRobin is the policy that sends requests to endpoints in turn,
// skipping unavailable ones and, for a retry, the ones already tried. Endpoints in slow start are skipped with a
// probability of one minus their weight, so they get a growing share.
type RoundRobin struct{}

var (
	_ Policy = RoundRobin{}
	_ Picker = (*roundRobin)(nil)
)

// Name returns "round_robin".
func (RoundRobin) Name() string { return NameRoundRobin }

// Build returns a round-robin picker over endpoints.
func (RoundRobin) Build(endpoints []*Endpoint) Picker {
	return &roundRobin{eps: endpoints}
}

type roundRobin struct {
	eps  []*Endpoint
	next atomic.Uint64
}

func (p *roundRobin) Pick(info PickInfo) *Endpoint {
	n := uint64(len(p.eps))
	r := info.Rand
	// Bounded: a full turn at most, then the plain next one.
	for range n {
		i := p.next.Add(1) - 1
		e := p.eps[i%n]
		if !info.Usable(e) {
			continue
		}
		if w := e.Weight(info.Now); w < 1 {
			r = mix64(r)
			if unitFloat(r) >= w {
				continue
			}
		}
		return e
	}
	return firstUsable(p.eps, int((p.next.Add(1)-1)%n), &info)
}
