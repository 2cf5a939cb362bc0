package balancer

import (
	"fmt"
	"math"
	"time"
)

// PeakEWMA is the policy that draws two endpoints at random and sends the
// request to the better of the two. Endpoints whose latency floors are
// within a factor of two of each other are alike (the same replica code
// on alike machines, apart by noise): of two alike endpoints the one with
// fewer requests in flight wins, and on a tie the one drawn first, so
// load spreads evenly over alike replicas at any rate, idle ones
// included. Of two unalike endpoints the one with the lower mean latency
// × (1 + requests in flight / [Endpoint.Concurrency]) wins: a slow replica
// is avoided, and a fast replica that serves several at once is not
// passed over for a slow idle one. An endpoint in slow start wins a draw
// it would win with a probability that is its slow start weight.
//
// The peak EWMA latency (a sample above the average replaces it at once;
// lower samples are blended in) bounds the balancer's retry and ejection
// timing. Without samples the estimates decay towards zero, the floor
// four times faster than the averages: a replica judged slow on old
// samples (a cold cache's first answer, a stall) is alike again within
// about Decay (8 s at the default for an answer 50 times its peers') and
// takes its share, and one that is still slow is told apart again by its
// next answer, so a replica ten times slower takes one request about
// every 4 s. An endpoint without a sample for Decay/10 is
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

// floorDecay is how many times faster than the moving averages a latency
// floor decays without samples: ten times would forget a replica ten
// times slower every 1.6 s at the default decay and so send it a request
// that often, once would keep a replica whose one answer was a cold
// cache's out for 30 s.
const floorDecay = 4

type peakEWMA struct {
	eps []*Endpoint
	tau float64
	// stale is how long without a latency sample makes an endpoint's
	// estimate stale: a tenth of the decay time.
	stale int64
}

// less reports whether a is the better of a and b at now, given u, a
// uniform draw in [0, 1). Of two alike endpoints (latency floors,
// [Endpoint.LowLatency], within a factor of similar) it is the one with
// fewer requests in flight: comparing their latencies instead sends every
// request to the one a little quicker whenever both are idle, and a
// single late answer (a cold cache, a stall) then kept a replica out of
// the picks until its estimate decayed, tens of seconds. On a tie b wins
// (Pick passes the endpoint drawn first as b), so ties are broken at
// random. Of two unalike ones
// it is the one of lower mean latency × (1 + requests in flight /
// [Endpoint.Concurrency]): the full count assumes a replica serves one
// request at a time, and then a fast replica serving four at once with
// four in flight costs as much as an idle replica five times slower,
// which answers five times later. Floors, not means, tell endpoints
// apart: on a loaded machine answers are late by more than the replicas'
// own latency, and the mean of one of alike replicas that took a stall's
// late answers was seen four times its peers'. An endpoint not measured
// yet is alike to any. Slow start: the winner, if its weight w is below
// 1, keeps the win with probability w.
func (p *peakEWMA) less(a, b *Endpoint, now int64, u float64) bool {
	ka, kb := float64(a.InFlight()), float64(b.InFlight())
	aWins := ka < kb
	if a.measured.Load() && b.measured.Load() {
		fa := math.Float64frombits(a.low.Load()) * a.decay(now, p.tau/floorDecay)
		fb := math.Float64frombits(b.low.Load()) * b.decay(now, p.tau/floorDecay)
		if fa > similar*fb || fb > similar*fa {
			da, db := a.decay(now, p.tau), b.decay(now, p.tau)
			ma := math.Float64frombits(a.mean.Load()) * da / p.weight(a, now)
			mb := math.Float64frombits(b.mean.Load()) * db / p.weight(b, now)
			return ma*(1+ka/a.Concurrency()) < mb*(1+kb/b.Concurrency())
		}
	}
	if aWins {
		return u < p.weight(a, now)
	}
	return u >= p.weight(b, now)
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
			if p.less(b, a, info.Now, unitFloat(mix64(r))) {
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
