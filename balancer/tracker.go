package balancer

import (
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how one request to an endpoint ended, as a [Tracker] judges
// it. The kinds are those the [Balancer] tells apart for HTTP (see
// [Ejection]).
type Outcome int

// Outcomes passed to [Tracker.Finish].
const (
	// OutcomeSuccess: an answer; it ends probation and forgives failures.
	OutcomeSuccess = Outcome(success)
	// OutcomeFailure: the endpoint failed the request (for gRPC,
	// Unavailable or Internal); ConsecutiveFailures of them eject it.
	OutcomeFailure = Outcome(failure)
	// OutcomeTimeout: the request's deadline ended before the answer
	// (for gRPC, DeadlineExceeded); Ejection.Timeouts of them eject it.
	OutcomeTimeout = Outcome(timeout)
	// OutcomeRefused: nothing listens at the address any more; the
	// endpoint is ejected at once, until a fresh resolution lists it.
	OutcomeRefused = Outcome(refused)
	// OutcomeShed: the endpoint shed the request; neither way.
	OutcomeShed = Outcome(shed)
	// OutcomeAbandoned: the caller gave up, or the request never reached
	// the endpoint; no evidence either way, and no latency sample.
	OutcomeAbandoned = Outcome(abandoned)
)

// String names the outcome in logs.
func (o Outcome) String() string { return outcome(o).String() }

// TrackerConfig configures a [Tracker]. Every zero value means the
// default of the [Config] field of the same name, and a negative number
// or duration is invalid.
type TrackerConfig struct {
	// Policy builds the pickers. Nil means [RoundRobin].
	Policy Policy
	// Ejection configures passive outlier detection, as Config.Ejection.
	Ejection Ejection
	// SlowStart is the ramp of an endpoint that appears after the first
	// Update, as Config.SlowStart. Zero means none.
	SlowStart time.Duration
	// InitialLatency is what [PeakEWMA] assumes of an endpoint it has not
	// measured while none is measured (see [Tracker.Build]). Zero means
	// DefaultInitialLatency (10ms).
	InitialLatency time.Duration
	// Logger receives endpoint set changes and ejections. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Rand returns uniformly random numbers and must be safe for
	// concurrent use. Nil means math/rand/v2's Uint64.
	Rand func() uint64
}

// Validate reports the first invalid field of c.
func (c TrackerConfig) Validate() error {
	// Config.Validate checks the same fields; it only needs a resolver.
	return Config{
		Resolver: (*Static)(nil), Policy: c.Policy, Ejection: c.Ejection,
		SlowStart: c.SlowStart, InitialLatency: c.InitialLatency,
	}.Validate()
}

// Tracker keeps the [Endpoint] statistics of a changing endpoint set and
// judges each request's outcome the way a [Balancer] does (latency,
// passive ejection with its max percent, slow start), for clients that
// choose a connection and send the request themselves: package
// grpcclient's gRPC balancers, which pick among a ClientConn's ready
// SubConns with the same pickers as the HTTP balancer.
//
// Endpoints are keyed by address: one that stays listed across Updates is
// the same *Endpoint, with its statistics. A Tracker holds no goroutine.
type Tracker struct {
	policy     Policy
	ejection   ejection
	maxPercent int
	slowStart  int64
	initRTT    float64
	tau        float64
	log        *slog.Logger
	now        func() time.Time
	rand       func() uint64
	epoch      time.Time
	realClock  bool // TrackerConfig.Now was nil: Nanotime reads time.Since(epoch)

	inFlight atomic.Int64

	// mu guards byAddr, listed and updated, and makes the max-percent
	// check and the ejection it allows one step.
	mu      sync.Mutex
	byAddr  map[string]*Endpoint
	listed  []*Endpoint
	updated bool
}

// NewTracker returns a tracker with no endpoints, or an error naming the
// invalid field of cfg.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	full := Config{
		Policy: cfg.Policy, Ejection: cfg.Ejection, SlowStart: cfg.SlowStart,
		InitialLatency: cfg.InitialLatency, Logger: cfg.Logger, Now: cfg.Now, Rand: cfg.Rand,
	}.withDefaults()
	ej := full.Ejection
	t := &Tracker{
		policy: full.Policy,
		ejection: ejection{
			disabled:    ej.Disabled,
			consecutive: ej.ConsecutiveFailures,
			timeouts:    ej.Timeouts,
			base:        int64(ej.BaseTime),
			max:         int64(max(ej.MaxTime, ej.BaseTime)),
		},
		maxPercent: ej.MaxPercent,
		slowStart:  int64(full.SlowStart),
		initRTT:    float64(full.InitialLatency),
		tau:        float64(DefaultDecay),
		log:        full.Logger,
		now:        full.Now,
		realClock:  cfg.Now == nil,
		rand:       full.Rand,
		byAddr:     map[string]*Endpoint{},
	}
	if p, ok := full.Policy.(PeakEWMA); ok {
		t.tau = float64(p.decay())
	}
	t.epoch = t.now()
	return t, nil
}

// Policy returns the policy's name.
func (t *Tracker) Policy() string { return t.policy.Name() }

// Nanotime returns the time in nanoseconds on the tracker's clock, as in
// [PickInfo.Now].
//
// With the real clock it reads only the monotonic clock (time.Since),
// which costs half of time.Now's wall and monotonic readings: a call
// reads the clock twice, at the pick and when it ends, and the clock was
// the largest cost of a gRPC pick.
func (t *Tracker) Nanotime() int64 {
	if t.realClock {
		return int64(time.Since(t.epoch))
	}
	return int64(t.now().Sub(t.epoch))
}

// Update replaces the endpoint set with addrs ("host:port"; others are
// ignored). Endpoints still listed keep their statistics, and an
// ejection for a refused connection of one ends (on probation); those
// that appear after the first Update start their slow start.
func (t *Tracker) Update(addrs []string) {
	clean := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			t.log.Warn("balancer: ignoring endpoint", "addr", a, "err", err)
			continue
		}
		clean = append(clean, a)
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)

	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Nanotime()
	var slow int64
	if t.updated {
		slow = t.slowStart
	}
	eps := make([]*Endpoint, len(clean))
	next := make(map[string]*Endpoint, len(clean))
	var added, removed []string
	for i, a := range clean {
		e, ok := t.byAddr[a]
		if !ok {
			e = newEndpoint(a, now, slow, t.initRTT)
			added = append(added, a)
		} else if e.relisted(now) {
			t.log.Info("balancer: endpoint listed again after a refused connection; back on probation", "addr", a)
		}
		eps[i] = e
		next[a] = e
	}
	for a := range t.byAddr {
		if _, ok := next[a]; !ok {
			removed = append(removed, a)
		}
	}
	t.byAddr, t.listed, t.updated = next, eps, true
	if len(added)+len(removed) > 0 {
		slices.Sort(removed)
		t.log.Info("balancer: endpoints changed", "policy", t.policy.Name(),
			"endpoints", len(eps), "added", added, "removed", removed)
	}
}

// Endpoint returns the endpoint of addr, if the last Update listed it.
func (t *Tracker) Endpoint(addr string) (*Endpoint, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byAddr[addr]
	return e, ok
}

// Build returns the policy's picker over eps, which must be endpoints
// of this tracker (a subset of the listed set, such as those with a
// connection), sorted by address and not empty.
//
// Endpoints of eps not measured yet are first given the mean latency of
// those that are: a connection becomes ready after its peers have
// answered calls, and against their measured latency the fixed
// InitialLatency would keep it out of [PeakEWMA]'s choices until it
// decayed (some twenty seconds for 10ms against 1ms).
func (t *Tracker) Build(eps []*Endpoint) Picker {
	seedUnmeasured(eps, t.Nanotime(), t.tau)
	return t.policy.Build(eps)
}

// PickInfo returns what a picker needs for one request with the given
// balancing key ("" for none).
func (t *Tracker) PickInfo(key string) PickInfo {
	return PickInfo{Key: key, Now: t.Nanotime(), InFlight: t.inFlight.Load(), Rand: t.rand()}
}

// Start counts a request sent to e as in flight and returns how many
// others were in flight on e; [Tracker.Finish] ends it. The request's
// start time is the Now of its PickInfo.
func (t *Tracker) Start(e *Endpoint) (others int64) {
	t.inFlight.Add(1)
	return e.inFlight.Add(1) - 1
}

// Finish ends a request that [Tracker.Start] began at start, with others
// in flight on e: it feeds its latency to the endpoint's peak EWMA (and
// [Endpoint.Concurrency]) and its outcome to outlier detection, then
// counts it out of flight.
func (t *Tracker) Finish(e *Endpoint, start, others int64, o Outcome) {
	end := t.Nanotime()
	if oc := outcome(o); oc != abandoned {
		rtt := float64(end - start)
		if oc != success {
			// A fast failure must not make an endpoint look attractive.
			rtt = max(rtt, 2*e.Latency(end, t.tau), t.initRTT)
		}
		e.observeLatency(end, rtt, t.tau, others)
		if e.observeResult(end, oc, t.ejection, func(until int64) bool { return t.eject(e, end, until) }) {
			t.log.Warn("balancer: endpoint ejected", "addr", e.addr, "after", oc.String(),
				"until", time.Duration(e.ejectedUntil.Load()-end).String())
		}
	}
	e.inFlight.Add(-1)
	t.inFlight.Add(-1)
}

// eject ejects e until the given time and reports true, unless one more
// ejection would exceed the max ejection percent of the listed set or
// empty it.
func (t *Tracker) eject(e *Endpoint, now, until int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.listed)
	ejected := 0
	for _, x := range t.listed {
		if x != e && x.ejected(now) {
			ejected++
		}
	}
	if ejected+1 >= n || (ejected+1)*100 > t.maxPercent*n {
		return false
	}
	e.ejectedUntil.Store(until)
	return true
}

// Ejected returns the addresses outlier detection has out now, sorted.
func (t *Tracker) Ejected() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Nanotime()
	var out []string
	for _, e := range t.listed {
		if e.ejected(now) {
			out = append(out, e.addr)
		}
	}
	return out
}
