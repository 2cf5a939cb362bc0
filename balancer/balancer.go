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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// pool should hold connections for every endpoint (see package
	// client's NewTransport). Nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Ejection configures passive outlier detection.
	Ejection Ejection
	// SlowStart is the window over which an endpoint that appears after
	// the first resolution ramps from 10% to its full share. Zero means
	// the default, no slow start.
	SlowStart time.Duration
	// InitialLatency is the latency [PeakEWMA] assumes for an endpoint it
	// has not measured yet. Zero means DefaultInitialLatency (10ms).
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
// in a row is left out for BaseTime × (number of its ejections), at most
// MaxTime. When the time is up it returns on probation: its next failure
// ejects it again at once, its next success ends probation.
type Ejection struct {
	// Disabled turns outlier detection off.
	Disabled bool
	// ConsecutiveFailures that eject an endpoint. Zero means
	// DefaultConsecutiveFailures (5).
	ConsecutiveFailures int
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
	case c.Ejection.BaseTime < 0:
		return fmt.Errorf("balancer: Ejection.BaseTime %v is negative", c.Ejection.BaseTime)
	case c.Ejection.MaxTime < 0:
		return fmt.Errorf("balancer: Ejection.MaxTime %v is negative", c.Ejection.MaxTime)
	case c.Ejection.MaxPercent < 0:
		return fmt.Errorf("balancer: Ejection.MaxPercent %d is negative", c.Ejection.MaxPercent)
	}
	if p, ok := c.Policy.(interface{ validate() error }); ok {
		return p.validate()
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Policy == nil {
		c.Policy = RoundRobin{}
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if c.Ejection.ConsecutiveFailures == 0 {
		c.Ejection.ConsecutiveFailures = DefaultConsecutiveFailures
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
	maxPercent int
	slowStart  int64
	initRTT    float64
	log        *slog.Logger
	now        func() time.Time
	rand       func() uint64
	epoch      time.Time
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

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
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
	cfg = cfg.withDefaults()
	ej := cfg.Ejection
	b := &Balancer{
		cfg:       cfg,
		policy:    cfg.Policy,
		transport: cfg.Transport,
		ejection: ejection{
			disabled:    ej.Disabled,
			consecutive: ej.ConsecutiveFailures,
			base:        int64(ej.BaseTime),
			max:         int64(max(ej.MaxTime, ej.BaseTime)),
		},
		maxPercent: ej.MaxPercent,
		slowStart:  int64(cfg.SlowStart),
		initRTT:    float64(cfg.InitialLatency),
		log:        cfg.Logger,
		now:        cfg.Now,
		rand:       cfg.Rand,
		byAddr:     map[string]*Endpoint{},
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	b.epoch = b.now()
	m, err := newMetrics(cfg.Registerer, b.policy.Name())
	if err != nil {
		return nil, err
	}
	b.metrics = m

	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go b.resolve(ctx)
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

// Close stops the resolver and waits for it. Requests in flight finish;
// later requests keep using the last endpoint set.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		<-b.done
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

// Ejected returns the addresses currently ejected, sorted.
func (b *Balancer) Ejected() []string {
	s := b.snap.Load()
	if s == nil {
		return nil
	}
	now := b.nanotime()
	var out []string
	for _, e := range s.eps {
		if !e.Available(now) {
			out = append(out, e.addr)
		}
	}
	return out
}

func (b *Balancer) nanotime() int64 { return int64(b.now().Sub(b.epoch)) }

// update replaces the endpoint set; it is the callback given to the
// resolver.
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
	now := b.nanotime()
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
	s := &snapshot{eps: eps}
	if len(eps) > 0 {
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

// RoundTrip sends req to the endpoint the policy picks.
func (b *Balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := b.current(req.Context())
	if err == nil && s.picker == nil {
		err = ErrNoEndpoints
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	start := b.nanotime()
	e := s.picker.Pick(PickInfo{Request: req, Now: start, InFlight: b.inFlight.Load(), Rand: b.rand()})
	e.inFlight.Add(1)
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
	if err != nil {
		// A caller that gave up is no evidence against the endpoint.
		failed := req.Context().Err() == nil
		b.observe(s, e, start, end, failed)
		b.release(e, failed)
		// A refused dial, a reset or an EOF on a kept-alive connection all
		// say the endpoint set may have changed (a pod restarted or left):
		// ask the resolver now rather than at its next interval.
		if failed {
			if rn, ok := b.cfg.Resolver.(ResolveNower); ok {
				rn.ResolveNow()
			}
		}
		return nil, fmt.Errorf("balancer: endpoint %s: %w", e.addr, err)
	}
	failed := resp.StatusCode >= 500
	b.observe(s, e, start, end, failed)
	if resp.Body == nil || resp.Body == http.NoBody {
		b.release(e, failed)
		return resp, nil
	}
	resp.Body = &trackedBody{ReadCloser: resp.Body, done: func() { b.release(e, failed) }}
	return resp, nil
}

// observe feeds one result into the endpoint's latency and outlier state.
func (b *Balancer) observe(s *snapshot, e *Endpoint, start, end int64, failed bool) {
	tau := float64(DefaultDecay)
	if p, ok := b.policy.(PeakEWMA); ok {
		tau = float64(p.decay())
	}
	rtt := float64(end - start)
	if failed {
		// A fast failure must not make an endpoint look attractive.
		rtt = max(rtt, 2*e.Latency(end, tau), b.initRTT)
	}
	e.observeLatency(end, rtt, tau)
	if e.observeResult(end, failed, b.ejection, func(until int64) bool { return b.eject(s, e, end, until) }) {
		e.m.ejected()
		b.log.Warn("balancer: endpoint ejected", "addr", e.addr,
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
		if x != e && !x.Available(now) {
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

// trackedBody calls done once, when the body reaches EOF or is closed,
// so an endpoint counts as loaded while its response streams.
type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil {
		t.once.Do(t.done)
	}
	return n, err
}

func (t *trackedBody) Close() error {
	err := t.ReadCloser.Close()
	t.once.Do(t.done)
	return err
}
