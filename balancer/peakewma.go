package balancer

import (
	"fmt"
	"time"
)

// PeakEWMA is the policy that draws two endpoints at random and sends the
// request to the one with the lower cost, where cost is the endpoint's
// peak EWMA latency times its requests in flight plus one, divided by its
// slow start weight (Finagle's and Linkerd's "peak EWMA" balancer).
//
// A latency sample above the average replaces it at once; lower samples
// are blended in, and without samples the average decays towards zero, so
// a replica that was slow is probed again after about Decay.
type PeakEWMA struct {
	// Decay is the time constant of the moving average: how long past
	// latencies keep influencing cost. Zero means DefaultDecay (10s);
	// negative is invalid.
	Decay time.Duration
}

var (
	_ Policy = PeakEWMA{}
	_ Picker = (*peakEWMA)(nil)
)

// DefaultDecay is the decay time [PeakEWMA] uses when Decay is zero.
const DefaultDecay = 10 * time.Second

// Name returns "peak_ewma".
func (PeakEWMA) Name() string { return NamePeakEWMA }

// Build returns a peak EWMA picker over endpoints.
func (p PeakEWMA) Build(endpoints []*Endpoint) Picker {
	return &peakEWMA{eps: endpoints, tau: float64(p.decay())}
}

// validate is called by [Config.Validate].
func (p PeakEWMA) validate() error {
	if p.Decay < 0 {
		return fmt.Errorf("balancer: PeakEWMA.Decay %v is negative", p.Decay)
	}
	return nil
}

// withDefaults returns p with its zero fields replaced by their defaults.
func (p PeakEWMA) withDefaults() PeakEWMA {
	if p.Decay == 0 {
		p.Decay = DefaultDecay
	}
	return p
}

func (p PeakEWMA) decay() time.Duration { return p.withDefaults().Decay }

type peakEWMA struct {
	eps []*Endpoint
	tau float64
}

// cost is the peak EWMA cost of e at now.
func (p *peakEWMA) cost(e *Endpoint, now int64) float64 {
	c := e.Latency(now, p.tau) * float64(e.InFlight()+1)
	return c / e.Weight(now)
}

func (p *peakEWMA) Pick(info PickInfo) *Endpoint {
	n := len(p.eps)
	if n == 1 {
		return p.eps[0]
	}
	r := info.Rand
	// A few draws to find two usable endpoints; ejection is rare and
	// capped, and retries few, so this almost always succeeds on the
	// first.
	for range 4 {
		i := int((r & 0xffffffff) % uint64(n))
		j := int((r >> 32) % uint64(n-1))
		if j >= i {
			j++
		}
		a, b := p.eps[i], p.eps[j]
		aok, bok := info.Usable(a), info.Usable(b)
		switch {
		case aok && bok:
			if p.cost(b, info.Now) < p.cost(a, info.Now) {
				return b
			}
			return a
		case aok:
			return a
		case bok:
			return b
		}
		r = mix64(r)
	}
	return firstUsable(p.eps, int(r%uint64(n)), &info)
}
