package balancer

import (
	"fmt"
	"math"
	"time"
)

// PeakEWMA is the policy that draws two endpoints at random and sends the
// request to the one with the lower cost, where cost is the endpoint's
// peak EWMA latency, divided by its slow start weight, times its requests
// in flight plus one (Finagle's and Linkerd's "peak EWMA" balancer); when
// one endpoint is more than twice as slow as the other, a request in
// flight counts as 1/[Endpoint.Concurrency] of a request, so a fast
// replica that serves several at once is not passed over for a slow idle
// one.
//
// A latency sample above the average replaces it at once; lower samples
// are blended in, and without samples the average decays towards zero, so
// a replica that was slow is probed again after about Decay times the log
// of how much slower it was. An endpoint without a sample for Decay/10 is
// probed one request at a time: while one is in flight it takes no other.
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
	d := p.decay()
	return &peakEWMA{eps: endpoints, tau: float64(d), stale: int64(d / 10)}
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

// similar is the latency ratio within which two endpoints count as alike
// (the same replica code on alike machines, their estimates apart by
// noise), and their requests in flight count in full.
const similar = 2

type peakEWMA struct {
	eps []*Endpoint
	tau float64
	// stale is how long without a latency sample makes an endpoint's
	// estimate stale: a tenth of the decay time.
	stale int64
}

// less reports whether a is the cheaper of a and b at now. Of two alike
// endpoints (latency floors, [Endpoint.LowLatency], within a factor of
// similar: the same replica code on alike machines, apart by noise), it
// is the one of lower peak EWMA latency × (requests in flight + 1), Finagle's and Linkerd's cost:
// the requests in flight count in full, which is what spreads requests
// evenly over alike replicas. Of two unalike ones, it is the one of lower
// mean latency × (1 + requests in flight / [Endpoint.Concurrency]): the
// full count assumes a replica serves one request at a time, and then a
// fast replica serving four at once with four in flight costs as much as
// an idle replica five times slower, which answers five times later; and
// the peak EWMA of a fast replica, after one answer a stalled client read
// late, is as high as a slow one's for the next few dozen answers.
// Latencies are divided by the slow start weights in the costs, not when
// telling endpoints apart; an endpoint not measured yet is alike to any.
func (p *peakEWMA) less(a, b *Endpoint, now int64) bool {
	da, db := a.decay(now, p.tau), b.decay(now, p.tau)
	wa, wb := p.weight(a, now), p.weight(b, now)
	ka, kb := float64(a.InFlight()), float64(b.InFlight())
	// An endpoint not measured yet has only an assumed latency, and one
	// in slow start is not slower for it: neither is told apart, or it
	// would be kept out. Endpoints are told apart by their latency
	// floors, not their means: on a loaded machine answers are late by
	// more than the replicas' own latency, and the mean of one of alike
	// replicas that took a stall's late answers was seen four times its
	// peers'; told apart, it lost nearly every pick and so kept its
	// mean, starved for seconds. A slow replica has no prompt answers.
	measured := a.measured.Load() && b.measured.Load()
	if measured {
		fa := math.Float64frombits(a.low.Load()) * da
		fb := math.Float64frombits(b.low.Load()) * db
		if fa > similar*fb || fb > similar*fa {
			ma := math.Float64frombits(a.mean.Load()) * da / wa
			mb := math.Float64frombits(b.mean.Load()) * db / wb
			return ma*(1+ka/a.Concurrency()) < mb*(1+kb/b.Concurrency())
		}
	}
	la := math.Float64frombits(a.ewma.Load()) * da / wa
	lb := math.Float64frombits(b.ewma.Load()) * db / wb
	return la*(ka+1) < lb*(kb+1)
}

// weight is e's slow start weight at now.
func (p *peakEWMA) weight(e *Endpoint, now int64) float64 {
	if e.slowStart > 0 {
		return e.Weight(now)
	}
	return 1
}

// probing reports whether e is being probed: its estimate is stale and
// it already has a call in flight. A replica avoided for being slow gets
// no samples, so its estimate decays until it wins a pick; that pick is
// a probe, and until the probe answers (refreshing the estimate) the
// replica takes no more calls, or a burst arriving meanwhile would all
// go to the replica that looks cheapest only because nothing has been
// learnt about it lately. Probes are thus one at a time, and their rate
// bounded by how long a slow estimate takes to decay to the others'.
func (p *peakEWMA) probing(e *Endpoint, now int64) bool {
	return now-e.stamp.Load() > p.stale && e.InFlight() > 0
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
		aok := info.Usable(a) && !p.probing(a, info.Now)
		bok := info.Usable(b) && !p.probing(b, info.Now)
		switch {
		case aok && bok:
			if p.less(b, a, info.Now) {
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
