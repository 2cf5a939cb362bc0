package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/client"
)

// Errors callers can branch on with errors.Is.
var (
	// ErrNoEndpoints: the resolver reported an empty endpoint set.
	ErrNoEndpoints = errors.New("balancer: no endpoints")
	// ErrNoResolver: Config.Resolver is nil.
	ErrNoResolver = errors.New("balancer: no resolver configured")
	// ErrResolver: the resolver stopped with an error before it reported
	// any endpoints.
	ErrResolver = errors.New("balancer: resolver failed")
)

// Defaults applied by [New] to zero fields of [Config] and [Ejection].
const (
	DefaultInitialLatency      = 10 * time.Millisecond
	DefaultConsecutiveFailures = 5
	DefaultEjectionTimeouts    = 3
	DefaultRetryAfterMax       = 10 * time.Second
	DefaultEjectionBaseTime    = 30 * time.Second
	DefaultEjectionMaxTime     = 5 * time.Minute
	DefaultEjectionMaxPercent  = 50
)

// Config configures a [Balancer]. Only Resolver is required; every other
// zero value means the documented default, and a negative number or
// duration is invalid.
type Config struct {
	// Resolver supplies the endpoint set. Required.
	Resolver Resolver
	// Policy chooses an endpoint per request. Nil means [RoundRobin].
	Policy Policy
	// Transport sends the request once the endpoint is chosen; its idle
	// pool should hold connections for every endpoint. Nil means a
	// transport of the balancer's own from package client's NewTransport
	// with its defaults (64 idle connections per endpoint), whose idle
	// connections Close closes. (http.DefaultTransport keeps 2 per host:
	// a burst of requests would dial a connection for nearly each.)
	Transport http.RoundTripper
	// Ejection configures passive outlier detection.
	Ejection Ejection
	// RetryAfterMax caps how long a 503 with a Retry-After header keeps
	// its endpoint out: a shedding replica is backed off for the time it
	// asks, not ejected. Zero means DefaultRetryAfterMax (10s).
	RetryAfterMax time.Duration
	// HealthCheck configures active health checks; the zero value means
	// none.
	HealthCheck HealthCheck
	// SlowStart is the window over which an endpoint that appears after
	// the first resolution ramps from 10% to its full share. Zero means
	// the default, no slow start.
	SlowStart time.Duration
	// InitialLatency is the latency [PeakEWMA] assumes for an endpoint it
	// has not measured yet while no endpoint is measured; once some are,
	// a new one starts at their mean. Zero means DefaultInitialLatency
	// (10ms).
	InitialLatency time.Duration
	// Registerer receives the balancer's metrics; nil means none. Wrap it
	// with prometheus.WrapRegistererWith to tell several balancers apart.
	Registerer prometheus.Registerer
	// Logger receives endpoint set changes and ejections. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Rand returns uniformly random numbers and must be safe for
	// concurrent use. Nil means math/rand/v2's Uint64.
	Rand func() uint64
}

// Ejection configures passive outlier detection: an endpoint whose
// requests fail (connection error or 5xx status) ConsecutiveFailures times
// in a row, or time out Timeouts times, is left out for BaseTime × (number
// of its ejections), at most MaxTime. A refused or reset connection
// ejects it at once, and then a fresh resolution that still lists it ends
// the ejection early (the address may have a listener again). When the
// time is up it returns on probation: its next failure ejects it again at
// once, its next success ends probation.
//
// A 503 with a Retry-After header is a replica shedding load, not failing:
// it backs the endpoint off for the time asked (see Config.RetryAfterMax)
// and counts neither way. A request its caller gave up on counts neither
// way either; an attempt that ran out its per-try timeout (package
// client's PerTryTimeout) counts as a timeout.
//
// A response counts when its body ends, not when its headers arrive: a
// body that breaks before its end (a reset, a cut-off connection) is a
// failure, and one that stalls until a per-try or transport timeout is a
// timeout, so a replica that sends headers and then hangs is ejected like
// one that never answers.
type Ejection struct {
	// Disabled turns outlier detection off.
	Disabled bool
	// ConsecutiveFailures that eject an endpoint. Zero means
	// DefaultConsecutiveFailures (5).
	ConsecutiveFailures int
	// Timeouts that eject an endpoint. They need not be in a row: each
	// success forgives a tenth of one, so a replica that hangs on more
	// than about one request in ten goes, while a rare timeout is
	// forgotten. Zero means DefaultEjectionTimeouts (3).
	Timeouts int
	// BaseTime of the first ejection. Zero means DefaultEjectionBaseTime
	// (30s).
	BaseTime time.Duration
	// MaxTime caps the ejection time; a cap below BaseTime means BaseTime.
	// Zero means DefaultEjectionMaxTime (5m).
	MaxTime time.Duration
	// MaxPercent of endpoints that may be ejected at once. Zero means
	// DefaultEjectionMaxPercent (50). At least one endpoint always stays
	// in.
	MaxPercent int
}

// Validate reports the first invalid field of c: a nil Resolver
// ([ErrNoResolver]), a negative number or duration, or an invalid setting
// of a [PeakEWMA] or [ConsistentHash] policy.
func (c Config) Validate() error {
	switch {
	case c.Resolver == nil:
		return ErrNoResolver
	case c.SlowStart < 0:
		return fmt.Errorf("balancer: SlowStart %v is negative", c.SlowStart)
	case c.InitialLatency < 0:
		return fmt.Errorf("balancer: InitialLatency %v is negative", c.InitialLatency)
	case c.Ejection.ConsecutiveFailures < 0:
		return fmt.Errorf("balancer: Ejection.ConsecutiveFailures %d is negative", c.Ejection.ConsecutiveFailures)
	case c.Ejection.Timeouts < 0:
		return fmt.Errorf("balancer: Ejection.Timeouts %d is negative", c.Ejection.Timeouts)
	case c.RetryAfterMax < 0:
		return fmt.Errorf("balancer: RetryAfterMax %v is negative", c.RetryAfterMax)
	case c.Ejection.BaseTime < 0:
		return fmt.Errorf("balancer: Ejection.BaseTime %v is negative", c.Ejection.BaseTime)
	case c.Ejection.MaxTime < 0:
		return fmt.Errorf("balancer: Ejection.MaxTime %v is negative", c.Ejection.MaxTime)
	case c.Ejection.MaxPercent < 0:
		return fmt.Errorf("balancer: Ejection.MaxPercent %d is negative", c.Ejection.MaxPercent)
	}
	if err := c.HealthCheck.validate(); err != nil {
		return err
	}
	if p, ok := c.Policy.(interface{ validate() error }); ok {
		return p.validate()
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults,
// except the transports, which New makes (and Close closes).
func (c Config) withDefaults() Config {
	if c.Policy == nil {
		c.Policy = RoundRobin{}
	}
	if c.Ejection.ConsecutiveFailures == 0 {
		c.Ejection.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if c.Ejection.Timeouts == 0 {
		c.Ejection.Timeouts = DefaultEjectionTimeouts
	}
	if c.RetryAfterMax == 0 {
		c.RetryAfterMax = DefaultRetryAfterMax
	}
	if c.HealthCheck.Path != "" {
		c.HealthCheck = c.HealthCheck.withDefaults()
	}
	if c.Ejection.BaseTime == 0 {
		c.Ejection.BaseTime = DefaultEjectionBaseTime
	}
	if c.Ejection.MaxTime == 0 {
		c.Ejection.MaxTime = DefaultEjectionMaxTime
	}
	if c.Ejection.MaxPercent == 0 {
		c.Ejection.MaxPercent = DefaultEjectionMaxPercent
	}
	if c.InitialLatency == 0 {
		c.InitialLatency = DefaultInitialLatency
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Uint64
	}
	return c
}

// Balancer is an [http.RoundTripper] that sends each request to one
// endpoint of a service, chosen by its [Policy] from the set its
// [Resolver] reports. The request's URL host is replaced by the
// endpoint's address; its Host header keeps the original name.
//
// Create one with [New] and stop it with [Balancer.Close].
type Balancer struct {
	cfg        Config
	policy     Policy
	transport  http.RoundTripper
	ejection   ejection
	health     healthCheck
	retryAfter int64 // RetryAfterMax in nanoseconds
	maxPercent int
	slowStart  int64
	initRTT    float64
	log        *slog.Logger
	now        func() time.Time
	rand       func() uint64
	epoch      time.Time
	realClock  bool // Config.Now was nil: nanotime reads time.Since(epoch)
	metrics    *metrics

	inFlight atomic.Int64
	snap     atomic.Pointer[snapshot]

	// mu guards byAddr, resolved and resErr, and serializes updates and
	// ejections: the max-percent check and the ejection it allows happen
	// under it, so concurrent failures cannot together eject more
	// endpoints than MaxPercent allows.
	mu       sync.Mutex
	byAddr   map[string]*Endpoint
	resolved bool
	resErr   error
	ready    chan struct{} // closed after the first update or resolver failure
	updated  chan struct{} // closed and replaced by every update

	owned      []*http.Transport // made by New, closed by Close
	cancel     context.CancelFunc
	done       chan struct{} // closed when the resolver returns
	checksDone chan struct{} // closed when health checks stop; nil without them
	closeOnce  sync.Once
}

var _ http.RoundTripper = (*Balancer)(nil)

// snapshot is an immutable endpoint set and the picker built over it.
type snapshot struct {
	eps    []*Endpoint
	picker Picker
}

// New starts a balancer: it runs cfg.Resolver in a goroutine that
// [Balancer.Close] stops. Requests sent before the first resolution wait
// for it, within their context.
func New(cfg Config) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	realClock := cfg.Now == nil
	cfg = cfg.withDefaults()
	var owned []*http.Transport
	if cfg.Transport == nil {
		t := client.NewTransport(client.Config{})
		cfg.Transport = t
		owned = append(owned, t)
	}
	if cfg.HealthCheck.Path != "" && cfg.HealthCheck.Transport == nil {
		// Checks get a pool of their own: they must not queue behind
		// requests, and the admin port may not speak the request
		// transport's protocol (h2c).
		t := client.NewTransport(client.Config{MaxIdleConnsPerHost: 1})
		cfg.HealthCheck.Transport = t
		owned = append(owned, t)
	}
	ej := cfg.Ejection
	b := &Balancer{
		cfg:       cfg,
		policy:    cfg.Policy,
		transport: cfg.Transport,
		ejection: ejection{
			disabled:    ej.Disabled,
			consecutive: ej.ConsecutiveFailures,
			timeouts:    ej.Timeouts,
			base:        int64(ej.BaseTime),
			max:         int64(max(ej.MaxTime, ej.BaseTime)),
		},
		health: healthCheck{
			healthy:   cfg.HealthCheck.HealthyThreshold,
			unhealthy: cfg.HealthCheck.UnhealthyThreshold,
		},
		retryAfter: int64(cfg.RetryAfterMax),
		owned:      owned,
		maxPercent: ej.MaxPercent,
		slowStart:  int64(cfg.SlowStart),
		initRTT:    float64(cfg.InitialLatency),
		log:        cfg.Logger,
		now:        cfg.Now,
		realClock:  realClock,
		rand:       cfg.Rand,
		byAddr:     map[string]*Endpoint{},
		ready:      make(chan struct{}),
		updated:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	b.epoch = b.now()
	m, err := newMetrics(cfg.Registerer, b.policy.Name())
	if err != nil {
		for _, t := range owned {
			t.CloseIdleConnections()
		}
		return nil, err
	}
	b.metrics = m

	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go b.resolve(ctx)
	if cfg.HealthCheck.Path != "" {
		b.checksDone = make(chan struct{})
		go b.checkLoop(ctx)
	}
	return b, nil
}

func (b *Balancer) resolve(ctx context.Context) {
	defer close(b.done)
	err := b.cfg.Resolver.Resolve(ctx, b.update)
	if err == nil || ctx.Err() != nil {
		return
	}
	b.log.Error("balancer: resolver stopped", "err", err)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.resolved {
		b.resErr = err
		b.resolved = true
		close(b.ready)
	}
}

// Close stops the resolver and the health checks and waits for them, then
// closes the idle connections of the transports New made. Requests in
// flight finish; later requests keep using the last endpoint set.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		<-b.done
		if b.checksDone != nil {
			<-b.checksDone
		}
		for _, t := range b.owned {
			t.CloseIdleConnections()
		}
	})
	return nil
}

// Policy returns the name of the policy in use.
func (b *Balancer) Policy() string { return b.policy.Name() }

// Endpoints returns the addresses of the current endpoint set, sorted,
// including ejected ones.
func (b *Balancer) Endpoints() []string {
	s := b.snap.Load()
	if s == nil {
		return nil
	}
	out := make([]string, len(s.eps))
	for i, e := range s.eps {
		out[i] = e.addr
	}
	return out
}

// Ejected returns the addresses currently ejected by outlier detection or
// failing active health checks, sorted. Endpoints backed off at a shedding
// replica's request (a 503 with Retry-After) are not listed.
func (b *Balancer) Ejected() []string {
	s := b.snap.Load()
	if s == nil {
		return nil
	}
	now := b.nanotime()
	var out []string
	for _, e := range s.eps {
		if e.out(now) {
			out = append(out, e.addr)
		}
	}
	return out
}

// nanotime is the time on the balancer's clock; with the real clock it
// reads only the monotonic clock (time.Since), which costs half of
// time.Now's wall and monotonic readings, twice per request.
func (b *Balancer) nanotime() int64 {
	if b.realClock {
		return int64(time.Since(b.epoch))
	}
	return int64(b.now().Sub(b.epoch))
}

// update replaces the endpoint set; it is the callback given to the
// resolver. An unchanged set keeps the picker; either way it ends the
// ejections for refused connections of the endpoints it lists.
func (b *Balancer) update(addrs []string) {
	clean := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			b.log.Warn("balancer: ignoring endpoint", "addr", a, "err", err)
			continue
		}
		clean = append(clean, a)
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)

	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() {
		close(b.updated)
		b.updated = make(chan struct{})
	}()
	now := b.nanotime()
	if cur := b.snap.Load(); cur != nil && len(cur.eps) == len(clean) {
		same := true
		for i, e := range cur.eps {
			if e.addr != clean[i] {
				same = false
				break
			}
		}
		if same {
			b.relist(cur.eps, now)
			return
		}
	}
	var slow int64
	if b.resolved && b.resErr == nil {
		slow = b.slowStart
	}
	eps := make([]*Endpoint, len(clean))
	next := make(map[string]*Endpoint, len(clean))
	var added, removed []string
	for i, a := range clean {
		e, ok := b.byAddr[a]
		if !ok {
			e = newEndpoint(a, now, slow, b.initRTT)
			e.m = b.metrics.forEndpoint(a)
			added = append(added, a)
		}
		eps[i] = e
		next[a] = e
	}
	for a := range b.byAddr {
		if _, ok := next[a]; !ok {
			b.metrics.forget(a)
			removed = append(removed, a)
		}
	}
	b.byAddr = next
	b.relist(eps, now)
	s := &snapshot{eps: eps}
	if len(eps) > 0 {
		if p, ok := b.policy.(PeakEWMA); ok {
			seedUnmeasured(eps, now, float64(p.decay()))
		}
		s.picker = b.policy.Build(eps)
	}
	b.snap.Store(s)
	if !b.resolved {
		b.resolved = true
		close(b.ready)
	}
	if len(added)+len(removed) > 0 {
		slices.Sort(removed)
		b.log.Info("balancer: endpoints changed", "policy", b.policy.Name(),
			"endpoints", len(eps), "added", added, "removed", removed)
	}
}

// relist ends the ejections for refused connections of eps, which a
// fresh resolution still lists.
func (b *Balancer) relist(eps []*Endpoint, now int64) {
	for _, e := range eps {
		if e.relisted(now) {
			b.log.Info("balancer: endpoint listed again after a refused connection; back on probation", "addr", e.addr)
		}
	}
}

// current returns the snapshot, waiting for the first resolution.
func (b *Balancer) current(ctx context.Context) (*snapshot, error) {
	if s := b.snap.Load(); s != nil {
		return s, nil
	}
	select {
	case <-b.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("balancer: waiting for endpoints: %w", ctx.Err())
	}
	if s := b.snap.Load(); s != nil {
		return s, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return nil, fmt.Errorf("%w: %w", ErrResolver, b.resErr)
}

// awaitEndpoints is for a request that found the endpoint set empty, as
// a client that started before its service's pods were ready does: it
// asks the resolver for a fresh resolution and waits for it, within ctx,
// rather than fail every request until the resolver's next interval. A
// resolver that cannot refresh on demand fails the request at once.
func (b *Balancer) awaitEndpoints(ctx context.Context) (*snapshot, error) {
	rn, ok := b.cfg.Resolver.(ResolveNower)
	if !ok {
		return nil, ErrNoEndpoints
	}
	b.mu.Lock()
	updated := b.updated
	b.mu.Unlock()
	if s := b.snap.Load(); s.picker != nil {
		return s, nil // an update came in meanwhile
	}
	rn.ResolveNow()
	select {
	case <-updated:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (waiting for a fresh resolution: %w)", ErrNoEndpoints, ctx.Err())
	}
	if s := b.snap.Load(); s.picker != nil {
		return s, nil
	}
	return nil, ErrNoEndpoints
}

// RoundTrip sends req to the endpoint the policy picks. A retry whose
// context carries package client's Tries goes to an endpoint the earlier
// attempts did not use, while there is one.
func (b *Balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	s, err := b.current(ctx)
	if err == nil && s.picker == nil {
		s, err = b.awaitEndpoints(ctx)
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	start := b.nanotime()
	tries := client.TriesFrom(ctx)
	info := PickInfo{Request: req, Now: start, InFlight: b.inFlight.Load(), Rand: b.rand()}
	if tries != nil {
		info.Tried = tries.Addrs()
	}
	e := s.picker.Pick(info)
	if tries != nil {
		tries.Add(e.addr)
	}
	others := e.inFlight.Add(1) - 1
	b.inFlight.Add(1)
	e.m.request()

	out := new(http.Request)
	*out = *req
	u := *req.URL
	u.Host = e.addr
	out.URL = &u
	if out.Host == "" {
		out.Host = req.URL.Host
	}

	resp, err := b.transport.RoundTrip(out)
	end := b.nanotime()
	e.m.answered(client.ResultOf(ctx, resp, err), time.Duration(end-start))
	if err != nil {
		o := errOutcome(ctx, err)
		b.observe(s, e, start, end, others, o)
		b.release(e, o != abandoned)
		b.refresh(o)
		return nil, fmt.Errorf("balancer: endpoint %s: %w", e.addr, err)
	}
	o := success
	if resp.StatusCode >= 500 {
		o = failure
		if d, ok := retryAfter(resp, b.now()); ok {
			o = shed
			if d = min(d, time.Duration(b.retryAfter)); d > 0 {
				e.backOff(end + int64(d))
				e.m.backedOff()
			}
		}
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		b.observe(s, e, start, end, others, o)
		b.release(e, o != success)
		return resp, nil
	}
	if o == success {
		// Headers are not yet an answer: the body may stall or break,
		// and the success is judged when it ends (trackedBody). The
		// latency to the headers is what peak EWMA compares.
		b.measure(e, start, end, others, o)
	} else {
		b.observe(s, e, start, end, others, o)
	}
	resp.Body = &trackedBody{ReadCloser: resp.Body, b: b, s: s, e: e, ctx: ctx, start: start, o: o}
	return resp, nil
}

// errOutcome classifies a transport error for outlier detection.
func errOutcome(ctx context.Context, err error) outcome {
	if ctx.Err() != nil {
		// The attempt's own deadline is evidence against the endpoint;
		// a caller that gave up is none.
		if errors.Is(context.Cause(ctx), client.ErrPerTryTimeout) {
			return timeout
		}
		return abandoned
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return refused
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return timeout
	}
	return failure
}

// retryAfter returns the wait a 503's Retry-After header asks for, in
// seconds or as a date, and whether the response is such a 503. A header
// that does not parse still marks a shedding replica, asking no wait.
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(n, 0)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, true
}

// refresh asks the resolver for a fresh resolution after a failure that
// says the endpoint set may have changed: a refused dial, a reset or an
// EOF on a kept-alive connection (a pod restarted or left). It asks now
// rather than wait for the resolver's next interval.
func (b *Balancer) refresh(o outcome) {
	if o != failure && o != refused {
		return
	}
	if rn, ok := b.cfg.Resolver.(ResolveNower); ok {
		rn.ResolveNow()
	}
}

// observe feeds one result into the endpoint's latency and outlier state;
// others is how many other requests were in flight on e at start.
func (b *Balancer) observe(s *snapshot, e *Endpoint, start, end, others int64, o outcome) {
	if o == abandoned {
		return // an unfinished request measured nothing
	}
	b.measure(e, start, end, others, o)
	b.judge(s, e, end, o)
}

// measure feeds one latency sample into the endpoint's peak EWMA; a
// failure's sample is made no better than twice the current estimate.
func (b *Balancer) measure(e *Endpoint, start, end, others int64, o outcome) {
	tau := float64(DefaultDecay)
	if p, ok := b.policy.(PeakEWMA); ok {
		tau = float64(p.decay())
	}
	rtt := float64(end - start)
	if o != success {
		// A fast failure must not make an endpoint look attractive.
		rtt = max(rtt, 2*e.Latency(end, tau), b.initRTT)
	}
	e.observeLatency(end, rtt, tau, others)
}

// judge feeds one result into the endpoint's outlier detection.
func (b *Balancer) judge(s *snapshot, e *Endpoint, end int64, o outcome) {
	if e.observeResult(end, o, b.ejection, func(until int64) bool { return b.eject(s, e, end, until) }) {
		e.m.ejected()
		b.log.Warn("balancer: endpoint ejected", "addr", e.addr, "after", o.String(),
			"until", time.Duration(e.ejectedUntil.Load()-end).String())
	}
}

// eject ejects e until the given time and reports true, unless one more
// ejection would exceed the max ejection percent or empty the set. The
// check and the ejection hold b.mu together, so concurrent failures on
// different endpoints are counted one after another.
func (b *Balancer) eject(s *snapshot, e *Endpoint, now, until int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur := b.snap.Load(); cur != nil {
		s = cur
	}
	n := len(s.eps)
	ejected := 0
	for _, x := range s.eps {
		if x != e && x.ejected(now) {
			ejected++
		}
	}
	if ejected+1 >= n || (ejected+1)*100 > b.maxPercent*n {
		return false
	}
	e.ejectedUntil.Store(until)
	return true
}

func (b *Balancer) release(e *Endpoint, failed bool) {
	e.inFlight.Add(-1)
	b.inFlight.Add(-1)
	e.m.done(failed)
}

// trackedBody ends its request once, when the body reaches EOF, fails or
// is closed: the endpoint counts as loaded while its response streams,
// and a response whose headers said success is judged by how its body
// ended.
type trackedBody struct {
	io.ReadCloser
	b     *Balancer
	s     *snapshot
	e     *Endpoint
	ctx   context.Context // the attempt's
	start int64
	o     outcome // of the headers
	ended atomic.Bool
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil {
		t.end(err)
	}
	return n, err
}

func (t *trackedBody) Close() error {
	err := t.ReadCloser.Close()
	t.end(nil)
	return err
}

// end finishes the request; err is what Read returned, nil for Close.
//
// A body that breaks or times out before EOF counts as the same error
// would have before the headers: an endpoint that sends headers and then
// stalls or cuts off its body is failing, however quick its headers.
// Closing the body early is the caller's choice and a success, unless
// the attempt's context had already ended: then it is that timeout, or a
// caller that gave up.
func (t *trackedBody) end(err error) {
	if !t.ended.CompareAndSwap(false, true) {
		return
	}
	b, o := t.b, t.o
	if o == success {
		switch {
		case errors.Is(err, io.EOF):
		case err != nil:
			o = errOutcome(t.ctx, err)
		case t.ctx.Err() != nil:
			o = errOutcome(t.ctx, context.Cause(t.ctx))
		}
		end := b.nanotime()
		if o == success {
			b.judge(t.s, t.e, end, o)
		} else {
			// A failure's sample is a peak: others would teach nothing.
			b.observe(t.s, t.e, t.start, end, 0, o)
		}
	}
	b.release(t.e, o != success && o != abandoned)
	if t.o == success {
		b.refresh(o)
	}
}
