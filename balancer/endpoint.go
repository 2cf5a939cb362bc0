package balancer

import (
	"math"
	"sync"
	"sync/atomic"
)

// Endpoint is one replica address and the statistics the balancer keeps
// about it. The balancer owns every Endpoint; policies read it through
// the methods below, all safe for concurrent use without locks.
//
// Times are nanoseconds on the balancer's clock (see [PickInfo.Now]).
type Endpoint struct {
	addr string

	inFlight atomic.Int64

	// Peak EWMA of latency in nanoseconds, stored as float64 bits, and
	// the time of its last update. Writers hold mu; readers use atomics.
	ewma  atomic.Uint64
	stamp atomic.Int64
	// mean is a plain EWMA of latency (no peaks), float64 bits, kept
	// beside ewma and decayed the same way: the latency [PeakEWMA]
	// weighs a replica it told apart as slow by, which a single late
	// answer does not raise as it does ewma.
	mean atomic.Uint64
	// low is the latency's floor, float64 bits: a sample below it
	// replaces it at once, higher ones raise it with time (see
	// observeLatency), decayed as ewma is. A loaded machine's scheduling noise only adds latency, so of
	// the three estimates it is the one noise moves least: what tells a
	// replica that is slow from alike ones whose answers were late.
	low atomic.Uint64
	// conc is how many requests the endpoint has lately been seen to
	// serve at once at its usual speed, at least 1, as float64 bits;
	// written under mu with ewma.
	conc atomic.Uint64
	// measured is set by the first latency sample.
	measured atomic.Bool

	// ejectedUntil is the time an ejection ends; zero when never ejected.
	ejectedUntil atomic.Int64
	// backoffUntil is the time a 503 with Retry-After asked the balancer
	// to stay away until.
	backoffUntil atomic.Int64
	// unhealthy is set while active health checks fail.
	unhealthy atomic.Bool
	// suspect is set, under mu, while the outlier state below is not
	// clean (failures or timeouts counted, or on probation): a success
	// on an endpoint that is not suspect changes nothing, and skips mu.
	suspect atomic.Bool

	// addedAt and slowStart describe the slow start ramp; slowStart is
	// zero for endpoints that take full weight at once.
	addedAt   int64
	slowStart int64

	mu           sync.Mutex // serializes observations below
	consecutive  int        // failures in a row
	timeouts     int        // timeout score: +timeoutWeight per timeout, -1 per success
	ejections    int        // ejections so far, grows the next interval
	probation    bool       // next failure re-ejects
	awaitResolve bool       // ejected for a refused connection: a fresh resolution listing it ends the ejection
	checksOK     int        // active health checks passed in a row
	checksFailed int        // active health checks failed in a row

	m endpointMetrics
}

// NewEndpoint returns an endpoint outside any Balancer, with fresh
// statistics, no slow start and a 10ms initial latency estimate: for
// exercising a [Policy]'s pickers in tests and benchmarks. A Balancer
// makes its own endpoints from its resolver's addresses.
func NewEndpoint(addr string) *Endpoint {
	return newEndpoint(addr, 0, 0, float64(DefaultInitialLatency))
}

func newEndpoint(addr string, now, slowStart int64, defaultRTT float64) *Endpoint {
	e := &Endpoint{addr: addr, addedAt: now, slowStart: slowStart}
	e.ewma.Store(math.Float64bits(defaultRTT))
	e.mean.Store(math.Float64bits(defaultRTT))
	e.low.Store(math.Float64bits(defaultRTT))
	e.stamp.Store(now)
	e.conc.Store(math.Float64bits(1))
	return e
}

// Addr returns the endpoint's "host:port".
func (e *Endpoint) Addr() string { return e.addr }

// InFlight returns the number of requests sent to the endpoint whose
// responses have not yet been closed.
func (e *Endpoint) InFlight() int64 { return e.inFlight.Load() }

// Available reports whether the endpoint may take requests at now: it is
// not ejected, not backed off after a 503 with Retry-After, and not
// failing active health checks.
func (e *Endpoint) Available(now int64) bool {
	return now >= e.ejectedUntil.Load() && now >= e.backoffUntil.Load() && !e.unhealthy.Load()
}

// ejected reports whether outlier detection has the endpoint out at now.
func (e *Endpoint) ejected(now int64) bool { return now < e.ejectedUntil.Load() }

// out reports whether the endpoint is ejected or failing health checks
// at now: what [Balancer.Ejected] lists.
func (e *Endpoint) out(now int64) bool { return e.ejected(now) || e.unhealthy.Load() }

// Weight returns the endpoint's slow start weight at now, in (0, 1]: it
// grows linearly from 0.1 to 1 over the slow start window after the
// endpoint joined, so a cold replica is not flooded the moment it appears.
func (e *Endpoint) Weight(now int64) float64 {
	if e.slowStart <= 0 {
		return 1
	}
	age := now - e.addedAt
	if age >= e.slowStart {
		return 1
	}
	const minWeight = 0.1
	w := float64(age) / float64(e.slowStart)
	return max(minWeight, w)
}

// Latency returns the peak EWMA latency in nanoseconds, decayed towards
// zero for the time since the last observation (with decay time tau in
// nanoseconds). The decay is what lets a replica that once was slow, and
// has since received no traffic, be tried again.
func (e *Endpoint) Latency(now int64, tau float64) float64 {
	return math.Float64frombits(e.ewma.Load()) * e.decay(now, tau)
}

// MeanLatency returns the plain EWMA of latency in nanoseconds, without
// the peaks, decayed as [Endpoint.Latency] is.
func (e *Endpoint) MeanLatency(now int64, tau float64) float64 {
	return math.Float64frombits(e.mean.Load()) * e.decay(now, tau)
}

// LowLatency returns the latency's floor in nanoseconds: the lowest
// recent samples, rising towards higher ones within a tenth of tau, and
// decayed towards zero without samples with tau/4, four times faster than
// [Endpoint.Latency]: the floor is what tells a slow replica from alike
// ones, and one judged on old samples must be tried again soon.
func (e *Endpoint) LowLatency(now int64, tau float64) float64 {
	return math.Float64frombits(e.low.Load()) * e.decay(now, tau/floorDecay)
}

// decay is the factor by which the estimates decayed since the last
// observation.
func (e *Endpoint) decay(now int64, tau float64) float64 {
	dt := now - e.stamp.Load()
	if dt <= 0 || tau <= 0 {
		return 1
	}
	return expNeg(float64(dt) / tau)
}

// Concurrency returns how many requests the endpoint has lately been
// seen to serve at once without slowing down, at least 1: the most
// requests in flight on it, counting the one measured, when a request
// answered no slower than the latency estimate, decaying towards 1 with
// decay time tau (nanoseconds) as the estimate does. [PeakEWMA] counts
// each request in flight as 1/Concurrency of a request in its cost: a
// replica with four cores is not four times slower with four calls on it.
func (e *Endpoint) Concurrency() float64 { return math.Float64frombits(e.conc.Load()) }

// observeLatency folds one latency sample (nanoseconds) into the peak
// EWMA: a sample above the average replaces it at once (the "peak"), a
// lower one is blended in with a weight that depends on the time since
// the previous sample. others is how many other requests were in flight
// on the endpoint when the measured one was sent; when the sample is not
// a peak, the endpoint served others+1 at once at its usual speed, which
// raises its Concurrency to that.
func (e *Endpoint) observeLatency(now int64, rtt, tau float64, others int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// One decay factor serves the decayed estimate, the weight of the
	// past, and the concurrency's decay.
	d := e.decay(now, tau)
	cur := math.Float64frombits(e.ewma.Load()) * d
	conc := 1 + (e.Concurrency()-1)*d
	// A burst of samples at the same instant still moves the average.
	w := min(d, 0.9)
	next, mean, low := rtt, rtt, rtt // the first sample replaces the assumed latency
	if e.measured.Load() {
		if rtt < cur {
			next = cur*w + rtt*(1-w)
			conc = max(conc, float64(min(others, maxConcurrency)+1))
		}
		mean = math.Float64frombits(e.mean.Load())*d*w + rtt*(1-w)
		// The floor rises with time, not with samples: towards higher
		// samples with a tenth of the decay time (weight 1-d^10), so the
		// late answers of one stall, arriving together, barely move it,
		// and the next prompt answer brings it back down at once; a
		// replica that stays slower is seen so within the tenth. Without
		// samples it decays as LowLatency says.
		d2 := d * d
		d4 := d2 * d2
		d10 := d4 * d4 * d2
		if l := math.Float64frombits(e.low.Load()) * d4; rtt > l {
			low = l + (rtt-l)*(1-d10)
		}
	}
	e.ewma.Store(math.Float64bits(next))
	e.mean.Store(math.Float64bits(mean))
	e.low.Store(math.Float64bits(low))
	e.conc.Store(math.Float64bits(conc))
	e.stamp.Store(now)
	e.measured.Store(true)
}

// maxConcurrency bounds what one sample can teach of Concurrency.
const maxConcurrency = 1024

// seedLatency sets the latency estimates of an endpoint that has no
// sample yet to peak, mean and low nanoseconds; a measured one keeps its
// own.
func (e *Endpoint) seedLatency(now int64, peak, mean, low float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.measured.Load() {
		return
	}
	e.ewma.Store(math.Float64bits(peak))
	e.mean.Store(math.Float64bits(mean))
	e.low.Store(math.Float64bits(low))
	e.stamp.Store(now)
}

// seedUnmeasured gives the endpoints of eps not measured yet the average
// latency estimates of those that are, if any are: an endpoint that joins a set
// whose peers have answered requests would otherwise start at the fixed
// InitialLatency, and against their measured latency (1ms, say, against
// 10ms) stay out of [PeakEWMA]'s choices until that decayed, some twenty
// seconds at the default decay.
func seedUnmeasured(eps []*Endpoint, now int64, tau float64) {
	var peak, mean, low float64
	var n int
	for _, e := range eps {
		if e.measured.Load() {
			peak += e.Latency(now, tau)
			mean += e.MeanLatency(now, tau)
			low += e.LowLatency(now, tau)
			n++
		}
	}
	if n > 0 && n < len(eps) {
		for _, e := range eps {
			e.seedLatency(now, peak/float64(n), mean/float64(n), low/float64(n))
		}
	}
}

// ejection holds the outlier detection settings after defaults; max is
// at least base.
type ejection struct {
	disabled    bool
	consecutive int
	timeouts    int
	base, max   int64
}

// outcome classifies the result of one request for outlier detection.
type outcome int

const (
	// success: a response below 500.
	success outcome = iota
	// failure: a 5xx status (but a shed 503) or a connection error.
	failure
	// timeout: the attempt's deadline ended before the answer (the
	// per-try timeout, or a transport timeout).
	timeout
	// refused: the connection was refused or reset; nothing listens
	// there any more, so the endpoint goes at once.
	refused
	// shed: a 503 with Retry-After; the endpoint backs off, which is
	// neither a success nor a failure.
	shed
	// abandoned: the caller gave up; no evidence either way.
	abandoned
)

// String names the outcome in logs.
func (o outcome) String() string {
	switch o {
	case success:
		return "success"
	case failure:
		return "failures"
	case timeout:
		return "timeouts"
	case refused:
		return "connection refused or reset"
	case shed:
		return "shed"
	}
	return "abandoned"
}

// timeoutWeight is what one timeout adds to an endpoint's timeout score,
// and a success takes 1 off: a success forgives a tenth of a timeout, so
// a replica that hangs on more than about one request in ten is still
// ejected, while a rare timeout on a healthy one is forgotten. A success
// that cleared the count would let a replica that hangs on half its
// requests keep its share.
const timeoutWeight = 10

// observeResult records the outcome of one request and reports whether it
// ejected the endpoint. eject is asked to eject the endpoint until a time;
// it may refuse (the max ejection percent) and reports whether it did.
func (e *Endpoint) observeResult(now int64, o outcome, cfg ejection, eject func(until int64) bool) bool {
	if cfg.disabled || o == shed || o == abandoned || (o == success && !e.suspect.Load()) {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() { e.suspect.Store(e.consecutive > 0 || e.timeouts > 0 || e.probation) }()
	if now < e.ejectedUntil.Load() {
		// Results of requests sent before the ejection say nothing new.
		return false
	}
	if o == success {
		e.consecutive = 0
		e.timeouts = max(0, e.timeouts-1)
		if e.probation {
			e.probation = false
			e.ejections = max(0, e.ejections-1)
		}
		return false
	}
	e.consecutive++
	if o == timeout {
		e.timeouts += timeoutWeight
	}
	trip := e.probation || o == refused || e.consecutive >= cfg.consecutive ||
		e.timeouts >= cfg.timeouts*timeoutWeight
	if !trip {
		return false
	}
	d := min(cfg.base*int64(e.ejections+1), cfg.max)
	if !eject(now + d) {
		return false
	}
	e.ejections++
	e.consecutive = 0
	e.timeouts = 0
	e.probation = true
	e.awaitResolve = o == refused
	return true
}

// relisted is called when a fresh resolution still lists the endpoint: an
// ejection for a refused connection ends now (on probation), since the
// address may have a listener again, e.g. a restarted pod.
func (e *Endpoint) relisted(now int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.awaitResolve {
		return false
	}
	e.awaitResolve = false
	if e.ejectedUntil.Load() > now {
		e.ejectedUntil.Store(now)
		return true
	}
	return false
}

// backOff keeps the endpoint out until the given time, unless it already
// is for longer.
func (e *Endpoint) backOff(until int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if until > e.backoffUntil.Load() {
		e.backoffUntil.Store(until)
	}
}

// observeCheck records one active health check and reports whether the
// endpoint's health changed: unhealthy after cfg.unhealthy failed checks
// in a row, healthy again after cfg.healthy passed ones.
func (e *Endpoint) observeCheck(ok bool, cfg healthCheck) (changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok {
		e.checksOK++
		e.checksFailed = 0
		if e.unhealthy.Load() && e.checksOK >= cfg.healthy {
			e.unhealthy.Store(false)
			return true
		}
		return false
	}
	e.checksFailed++
	e.checksOK = 0
	if !e.unhealthy.Load() && e.checksFailed >= cfg.unhealthy {
		e.unhealthy.Store(true)
		return true
	}
	return false
}
