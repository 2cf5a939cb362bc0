package shed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrDropped, passed to a release function (or wrapped by the error passed),
// reports that the work failed because of overload downstream, such as a
// timeout; the limiter backs off. context.DeadlineExceeded counts the same.
var ErrDropped = errors.New("shed: request dropped")

// Defaults of [Config].
const (
	DefaultInitialLimit     = 20
	DefaultMinLimit         = 2
	DefaultMaxLimit         = 500
	DefaultTolerance        = 1.5
	DefaultSmoothing        = 0.2
	DefaultHeadroom         = 4
	DefaultBackoff          = 0.9
	DefaultLongWindow       = 6000
	DefaultWindow           = 100 * time.Millisecond
	DefaultMinWindowSamples = 10
	DefaultRetryAfter       = time.Second
	DefaultReserve          = 0.25
)

// Config configures a [Limiter]. The zero value is valid; every field
// documents its default, and a negative value is invalid.
type Config struct {
	// InitialLimit is the limit before any latency was measured; 0 means
	// DefaultInitialLimit (20), lowered to MaxLimit if that is smaller.
	InitialLimit int
	// MinLimit is the lowest the limit goes; 0 means DefaultMinLimit (2),
	// lowered to GOMAXPROCS, MaxLimit or InitialLimit if any is smaller:
	// on one core, CPU-bound work is best served one request at a time.
	MinLimit int
	// MaxLimit is the highest the limit goes; 0 means DefaultMaxLimit (500).
	MaxLimit int
	// Tolerance is how much the short RTT may exceed the long RTT before
	// the limit shrinks; 0 means DefaultTolerance (1.5). At least 1.
	Tolerance float64
	// Smoothing is the weight of each window's new limit when it is
	// higher than the current one, in (0, 1]; 0 means DefaultSmoothing
	// (0.2). A lower new limit takes effect at once.
	Smoothing float64
	// Headroom is the most a window adds to the limit, times Smoothing,
	// while latency stays within the tolerance; below a limit of
	// Headroom² the square root of the limit is added instead. 0 means
	// DefaultHeadroom (4).
	Headroom float64
	// Backoff multiplies the limit after a window with dropped requests,
	// in (0, 1); 0 means DefaultBackoff (0.9).
	Backoff float64
	// LongWindow is the number of windows the long RTT averages over; 0
	// means DefaultLongWindow (6000: ten minutes of default windows).
	LongWindow int
	// Window is the shortest window; 0 means DefaultWindow (100ms).
	Window time.Duration
	// MinWindowSamples is the fewest samples a window holds; 0 means
	// DefaultMinWindowSamples (10).
	MinWindowSamples int
	// RetryAfter is the Retry-After of rejected requests, rounded up to
	// whole seconds; 0 means DefaultRetryAfter (1s).
	RetryAfter time.Duration
	// Name, if set, becomes the label limiter="Name" on the metrics, so
	// several limiters can share a registry.
	Name string
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// Critical, if set, tells the Middleware which requests are shed
	// last: a request it returns false for is admitted only while fewer
	// than the limit less the Reserve are in flight, and not at all for
	// a while after a critical request was turned away (a Window, or the
	// long RTT once it is known); critical requests waiting for a slot
	// get it first. nil means every
	// request is alike. Called once per request, before admission; it
	// must be cheap and must not read the body.
	Critical func(*http.Request) bool
	// Reserve is the share of the limit, in (0, 1), kept for critical
	// requests when Critical is set: at least one slot, and at least one
	// slot is left to the rest. 0 means DefaultReserve (0.25).
	Reserve float64
}

// Limiter admits work up to an adaptive concurrency limit. Create it with
// [New]; it is safe for concurrent use.
type Limiter struct {
	cfg        Config
	retryAfter string

	mu          sync.Mutex
	limit       float64 // estimated limit; the effective one is its floor
	inFlight    int
	longRTT     float64 // seconds; 0 until the first window closes
	winStart    time.Time
	winSum      float64 // seconds
	winSamples  int
	winDrops    int
	winInFlight int     // most in flight during the window
	winSlow     int     // samples over earlyClose × the tolerated latency
	winWork     float64 // seconds of handler work in the window's samples
	// cpuTime reads the process's CPU time (processCPU; a fake in
	// tests), and winCPU is its reading when the window began, ok when
	// it was read.
	cpuTime  func() (time.Duration, bool)
	winCPU   time.Duration
	winCPUOK bool
	windows  int // closed so far, up to LongWindow
	// work is the mean time a handler takes once it runs (after the yield
	// of Middleware): its own work, without the queue ahead of it.
	work float64 // seconds; 0 until the first window closes
	// loweredAt is when the limit was last lowered. Requests admitted
	// before it are no samples: they measure the queue of the old limit,
	// and counting them would lower the limit again for the same queue.
	loweredAt time.Time
	// criticalRefused is when the Middleware last turned a critical
	// request away (see Config.Critical).
	criticalRefused time.Time
	// While the middleware yields for handlers, a slot whose probe was
	// taken back the next window (ceiling, the whole limit before the
	// drop) is not probed again until holdUntil; hold is how long the
	// last hold was, doubled each time a probe of the same ceiling fails
	// (see holdLocked).
	ceiling   int
	hold      time.Duration
	holdUntil time.Time
	// probed is the whole limit the last window's probe reached, when it
	// added a slot; 0 otherwise. A drop in the next window takes that
	// slot back as a failed probe.
	probed int
	// lastShort is the short RTT of the last window within the
	// tolerance; heldShort is what it was when the hold began.
	lastShort, heldShort float64
	// recentShort is the short RTT of the last window with samples.
	recentShort float64

	rejected prometheus.Counter
	// free holds the Middleware's tickets its requests are done with,
	// guarded by mu, so that admitting a request allocates nothing. It
	// holds at most as many as were ever in flight at once.
	free []*ticket
	// yield says whether Middleware yields after admitting: whether work
	// is at least yieldAbove. Read without l.mu on every request.
	yield atomic.Bool
	// used integrates in flight and the limit over time, guarded by mu
	// (see accountLocked).
	used usage
	// waiters are the Middleware's requests waiting for a slot, oldest
	// first; idle holds waiters to reuse. Both guarded by mu.
	waiters, idle []*waiter
}

// New checks cfg (see [Config.Validate]), applies its defaults and
// returns a Limiter. If reg is not nil, the metrics shed_limit,
// shed_in_flight, shed_utilization_ratio, shed_in_flight_seconds_total,
// shed_utilization_seconds_total and shed_rejected_total are registered on it.
func New(cfg Config, reg prometheus.Registerer) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Limiter{
		cfg:        cfg,
		retryAfter: strconv.Itoa(int(math.Ceil(cfg.RetryAfter.Seconds()))),
		limit:      float64(cfg.InitialLimit),
		winStart:   cfg.Now(),
		cpuTime:    processCPU,
	}
	l.winCPU, l.winCPUOK = l.cpuTime()
	l.used.at = l.winStart
	var labels prometheus.Labels
	if cfg.Name != "" {
		labels = prometheus.Labels{"limiter": cfg.Name}
	}
	l.rejected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shed_rejected_total", Help: "Requests turned away because the concurrency limit was reached.", ConstLabels: labels,
	})
	if reg == nil {
		return l, nil
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shed_limit", Help: "Current adaptive concurrency limit.", ConstLabels: labels,
		}, func() float64 { return float64(l.Limit()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shed_in_flight", Help: "Requests currently admitted by the limiter.", ConstLabels: labels,
		}, func() float64 { return float64(l.InFlight()) }),
		// Computed when scraped, from the state admission keeps anyway:
		// the signal costs the request path nothing.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shed_utilization_ratio", Help: "Requests admitted over the current concurrency limit; 1 is at the limit.", ConstLabels: labels,
		}, l.Utilization),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shed_in_flight_seconds_total", Help: "Requests admitted by the limiter, integrated over time.", ConstLabels: labels,
		}, func() float64 { in, _ := l.usage(); return in }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shed_utilization_seconds_total", Help: "Requests admitted over the concurrency limit, integrated over time: its rate is the average utilization.", ConstLabels: labels,
		}, func() float64 { _, u := l.usage(); return u }),
		l.rejected,
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, d := range cs[:i] {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("shed: register metrics: %w", err)
		}
	}
	return l, nil
}

// Validate reports the first invalid field of c, after the defaults of
// its zero fields: a negative field, or one out of the range its doc gives.
func (c Config) Validate() error {
	switch {
	case c.MaxLimit < 0:
		return fmt.Errorf("shed: MaxLimit %d is negative", c.MaxLimit)
	case c.InitialLimit < 0:
		return fmt.Errorf("shed: InitialLimit %d is negative", c.InitialLimit)
	}
	c = c.withDefaults()
	switch {
	case c.MinLimit < 1:
		return fmt.Errorf("shed: MinLimit %d is below 1", c.MinLimit)
	case c.MaxLimit < c.MinLimit:
		return fmt.Errorf("shed: MaxLimit %d is below MinLimit %d", c.MaxLimit, c.MinLimit)
	case c.InitialLimit < c.MinLimit || c.InitialLimit > c.MaxLimit:
		return fmt.Errorf("shed: InitialLimit %d is outside [MinLimit %d, MaxLimit %d]", c.InitialLimit, c.MinLimit, c.MaxLimit)
	case !(c.Tolerance >= 1):
		return fmt.Errorf("shed: Tolerance %g is below 1", c.Tolerance)
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return fmt.Errorf("shed: Smoothing %g is outside (0, 1]", c.Smoothing)
	case !(c.Headroom >= 0):
		return fmt.Errorf("shed: Headroom %g is negative", c.Headroom)
	case !(c.Backoff > 0 && c.Backoff < 1):
		return fmt.Errorf("shed: Backoff %g is outside (0, 1)", c.Backoff)
	case c.LongWindow < 1:
		return fmt.Errorf("shed: LongWindow %d is below 1", c.LongWindow)
	case c.Window < 0:
		return fmt.Errorf("shed: Window %v is negative", c.Window)
	case c.MinWindowSamples < 1:
		return fmt.Errorf("shed: MinWindowSamples %d is below 1", c.MinWindowSamples)
	case c.RetryAfter < 0:
		return fmt.Errorf("shed: RetryAfter %v is negative", c.RetryAfter)
	case !(c.Reserve > 0 && c.Reserve < 1):
		return fmt.Errorf("shed: Reserve %g is outside (0, 1)", c.Reserve)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxLimit == 0 {
		c.MaxLimit = DefaultMaxLimit
	}
	if c.MinLimit == 0 {
		c.MinLimit = min(DefaultMinLimit, c.MaxLimit, runtime.GOMAXPROCS(0))
		if c.InitialLimit > 0 {
			c.MinLimit = min(c.MinLimit, c.InitialLimit)
		}
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = min(DefaultInitialLimit, c.MaxLimit)
	}
	if c.Tolerance == 0 {
		c.Tolerance = DefaultTolerance
	}
	if c.Smoothing == 0 {
		c.Smoothing = DefaultSmoothing
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.LongWindow == 0 {
		c.LongWindow = DefaultLongWindow
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MinWindowSamples == 0 {
		c.MinWindowSamples = DefaultMinWindowSamples
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Reserve == 0 {
		c.Reserve = DefaultReserve
	}
	return c
}

// Limit returns the current concurrency limit.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// RetryAfter is how long a rejected client is asked to wait
// (Config.RetryAfter with its default): HTTP sends it as Retry-After,
// gRPC as grpc-retry-pushback-ms.
func (l *Limiter) RetryAfter() time.Duration { return l.cfg.RetryAfter }

// InFlight returns the work currently admitted.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Utilization returns the work currently admitted over the current
// limit, read together: 0 when idle, 1 at the limit, above 1 while work
// admitted before the limit dropped (or that took its slot back after
// reading its body) still runs. It is the headroom signal an autoscaler
// can target (see Metrics in the package documentation).
func (l *Limiter) Utilization() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	// The effective limit is the floor of the estimate, and at least
	// MinLimit, which is at least 1.
	return float64(l.inFlight) / math.Floor(l.limit)
}

func noRelease(error) {}

// Acquire admits one unit of work if fewer than the limit are in flight.
// When it does, the caller must call release exactly once when the work
// ends, with nil or the error it ended with: [ErrDropped] or
// context.DeadlineExceeded make the limiter back off, context.Canceled
// discards the sample (the client left; its latency says nothing), any
// other error counts as a completed sample. When it does not, ok is false,
// the rejection is counted, and release does nothing.
func (l *Limiter) Acquire() (release func(err error), ok bool) {
	t, ok := l.acquire()
	if !ok {
		return noRelease, false
	}
	return t.release, true
}

type ticket struct {
	l     *Limiter
	start time.Time
	done  atomic.Bool
	// workStart is when the handler began to run, after the yield; zero
	// when there was none.
	workStart time.Time

	// Guarded by l.mu: whether the work is parked waiting on its client
	// (see [Limiter.Middleware]), since when, and for how long in all.
	parked    bool
	parkStart time.Time
	parkedFor time.Duration
}

func (t *ticket) release(err error) { t.finish(err, false) }

// finish is release; with reuse, the ticket goes back to the limiter's
// free list, and the caller must not touch it again.
func (t *ticket) finish(err error, reuse bool) {
	if t.done.Swap(true) {
		return // released twice: the first call counted
	}
	t.l.release(t, err, reuse)
}

// park gives the ticket's slot back while its work waits on its client;
// unpark takes it again. unpark does not check the limit: the work is
// already under way, and refusing it halfway through its body would waste
// what it read.
func (t *ticket) park() {
	l := t.l
	now := l.cfg.Now()
	l.mu.Lock()
	l.accountLocked(now)
	if !t.parked && !t.done.Load() {
		t.parked, t.parkStart = true, now
		l.inFlight--
		l.grantLocked(now)
	}
	l.mu.Unlock()
}

func (t *ticket) unpark() {
	l := t.l
	now := l.cfg.Now()
	l.mu.Lock()
	l.accountLocked(now)
	if t.parked {
		t.parked = false
		t.parkedFor += now.Sub(t.parkStart)
		l.inFlight++
		l.winInFlight = max(l.winInFlight, l.inFlight)
	}
	l.mu.Unlock()
}

func (l *Limiter) release(t *ticket, err error, reuse bool) {
	now := l.cfg.Now()
	l.mu.Lock()
	l.accountLocked(now)
	defer l.mu.Unlock()
	if reuse {
		defer func() { l.free = append(l.free, t) }()
	}
	// The slot goes to a waiting request, if any, once the window is
	// updated (the limit may have changed).
	defer l.grantLocked(now)
	if t.parked {
		t.parked = false
		t.parkedFor += now.Sub(t.parkStart)
	} else {
		l.inFlight--
	}
	// Time spent waiting on the client says nothing about this server's
	// queueing: leave it out of the sample.
	rtt := max((now.Sub(t.start) - t.parkedFor).Seconds(), 1e-9)
	work := rtt
	if !t.workStart.IsZero() {
		work = max((now.Sub(t.workStart) - t.parkedFor).Seconds(), 1e-9)
	}
	switch {
	case errors.Is(err, context.Canceled) || t.start.Before(l.loweredAt):
	case errors.Is(err, ErrDropped) || errors.Is(err, context.DeadlineExceeded):
		l.winDrops++
	default:
		l.winSum += rtt
		l.winWork += work
		l.winSamples++
		if l.longRTT > 0 && rtt > earlyClose*l.cfg.Tolerance*l.longRTT {
			l.winSlow++
		}
	}
	// When the middleware yields for handlers (see Middleware), a window
	// whose samples already queue far past the tolerance closes early,
	// after a few such samples: their latency counts the queue for the
	// CPU, and at the onset of an overload every request admitted
	// meanwhile joins it. Cheap handlers' latency is mostly the
	// scheduler's delay, which a few threads preempted by the OS inflate
	// with no overload: their windows after the first are at least
	// cheapWindow long.
	yield := l.yield.Load()
	queueing := yield && l.winSlow >= min(fastSamples, l.cfg.MinWindowSamples) &&
		l.winSum/float64(l.winSamples) > earlyClose*l.cfg.Tolerance*l.longRTT
	if !queueing && l.winSamples < l.cfg.MinWindowSamples && l.winDrops == 0 {
		return
	}
	window := l.cfg.Window
	if !yield && l.work > 0 {
		// The first window is of Window, so that the handlers' work is
		// known, and the regime with it, as soon as possible.
		window = max(window, cheapWindow)
	}
	if now.Sub(l.winStart) < window && !queueing {
		return
	}
	// One reading of the CPU time ends this window and begins the next.
	cpu, cpuOK := l.cpuTime()
	l.update(now, yield, cpuOK && l.winCPUOK && l.cpuBoundLocked(cpu-l.winCPU))
	l.winStart, l.winSum, l.winWork, l.winSamples, l.winSlow, l.winDrops, l.winInFlight = now, 0, 0, 0, 0, 0, l.inFlight
	l.winCPU, l.winCPUOK = cpu, cpuOK
}

// update closes a window: the gradient step described in the package
// documentation. cpuBound says whether the window's work was CPU-bound
// (see cpuBoundLocked). l.mu must be held.
func (l *Limiter) update(now time.Time, yield, cpuBound bool) {
	c := &l.cfg
	if l.winDrops > 0 {
		l.probed = 0
		l.limit = l.clamp(l.limit * c.Backoff)
		if yield {
			l.loweredAt = now
		}
		return
	}
	short := l.winSum / float64(l.winSamples)
	l.recentShort = short
	if w := l.winWork / float64(l.winSamples); l.work == 0 {
		l.work = w
	} else {
		l.work += c.Smoothing * (w - l.work)
	}
	l.yield.Store(l.work >= yieldAbove.Seconds())
	if l.windows < c.LongWindow {
		l.windows++
	}
	if l.longRTT == 0 {
		l.longRTT = short
	} else {
		// Capping the sample keeps a sustained overload from quickly
		// teaching the average that queueing is the norm.
		// A window longer than Window weighs as the windows it spans.
		alpha := min(1, 2/float64(c.LongWindow+1)*max(1, float64(now.Sub(l.winStart))/float64(c.Window)))
		if yield && short < l.longRTT {
			// Downward, until LongWindow windows have closed, the plain
			// mean of them all, so that a cold start's slow first
			// window weighs no more than the others.
			alpha = max(alpha, 1/float64(l.windows))
		}
		l.longRTT += alpha * (min(short, c.Tolerance*l.longRTT) - l.longRTT)
	}
	if l.longRTT/short > 2 {
		l.longRTT *= 0.95
	}
	if float64(l.winInFlight) < l.limit/2 {
		if yield && cpuBound && runtime.GOMAXPROCS(0) == 1 {
			// One core of CPU-bound work: a slot the light load
			// leaves unused is one more request queued for the core at
			// an overload's onset, admitted before any window has
			// measured the queue (from the initial 20, twenty times a
			// request's work). The limit drifts down towards twice what
			// the window had in flight, by Smoothing a window; a burst
			// beyond it waits in the Middleware's queue, and the limit
			// probes upward from there once it is used. Work that
			// waits on others (a call to another service) is left
			// alone: its requests do not queue for the core, and a
			// burst of them would be turned away for nothing.
			target := min(l.limit, 2*float64(max(l.winInFlight, 1)))
			l.limit = l.clamp(l.limit + c.Smoothing*(target-l.limit))
		}
		return
	}
	if !yield {
		// Cheap handlers: Gradient2's smoothed step, as gentle as their
		// latency is noisy.
		gradient := max(0.5, min(1, c.Tolerance*l.longRTT/short))
		next := l.limit*gradient + c.Headroom
		l.limit = l.clamp(l.limit*(1-c.Smoothing) + next*c.Smoothing)
		return
	}
	gradient := c.Tolerance * l.longRTT / short
	// Down at most by half per window, as one window's latency can be an
	// outlier; the CPU wait below is no outlier, and may go further.
	floor := l.limit / 2
	if wait := l.winSum/l.winWork - 1; wait > cpuWaitMax && runtime.GOMAXPROCS(0) == 1 {
		// On one core, the requests admitted waited for it after their
		// yield: more were admitted than it runs at once, about limit /
		// (1 + wait) of them. Their latency alone can miss it: a second
		// slot made the work wait 25-35% of its length while the
		// latency, its work faster under load, stayed within the
		// tolerance. Not below one slot, and not on more cores: there
		// the wait cannot tell work queued behind admitted work from
		// work queued behind what the limit does not admit (a flood of
		// reset streams), and fewer slots would not relieve the latter;
		// on two cores it turned away 13% of test/chaos's uploads under
		// such a flood. The wait counts the requests that queued for
		// the core, so the limit goes to what it runs at once even when
		// that is less than half: at the onset of an overload, from a
		// limit of 20 the halving took four windows to reach one or two
		// slots, with every request admitted meanwhile queued.
		w := max(1/(1+wait), 1/l.limit)
		gradient = min(gradient, w)
		floor = min(floor, l.limit*w)
	}
	if gradient < 1 {
		// Queueing: down at once, in proportion, bounded by floor. A
		// limit above the service's capacity costs every request its
		// queueing now; one below costs a few windows of probing.
		before := int(l.limit)
		l.limit = l.clamp(max(floor, l.limit*gradient))
		l.loweredAt = now
		if before == l.probed && int(l.limit) < before {
			l.holdLocked(now, before)
		}
		l.probed = 0
		return
	}
	switch {
	case int(l.limit) >= l.ceiling:
		// The slot once taken away has carried its work within the
		// tolerance: it may be probed again at once next time.
		l.ceiling, l.hold = 0, 0
	case now.Before(l.holdUntil) && short < holdFaster*l.heldShort:
		// The work got faster than when the slot was taken away: probe
		// it now. The hold's length stays, so a probe that fails again
		// waits as long as the next would have.
		l.holdUntil = now
	}
	l.probed = 0
	l.lastShort = short
	// Latency within tolerance: probe upward. A fixed step would be most
	// of the limit of a service that needs few slots (a core of CPU-bound
	// work needs about one); the square root keeps it a small part of
	// any limit.
	headroom := min(c.Headroom, math.Sqrt(l.limit))
	next := l.limit + headroom*c.Smoothing
	if now.Before(l.holdUntil) && next >= float64(l.ceiling) {
		// Just below the ceiling: its slot comes back, on probation, the
		// first window after the hold.
		next = max(l.limit, float64(l.ceiling)-holdMargin)
	}
	if next = l.clamp(next); int(next) > int(l.limit) {
		l.probed = int(next)
	}
	l.limit = next
}

// holdLocked starts a hold of the slot ceiling, just taken away because
// it queued. On a core of CPU-bound work each slot beyond the cores
// queues a whole request's work, so a probe of the next slot (from 1 to
// 2 on one core) doubles the latency and is taken back a window later:
// probing it again at once spent a third of the windows there, and the
// answered requests' p99 followed it. A hold starts at holdMin; each
// failed probe of the same ceiling doubles it, up to holdMax, so a
// service that needs the slot again (its work waits on I/O now, not the
// CPU) has it back within holdMax; one whose work got faster by a
// quarter has it back at once (see update). l.mu must be held.
func (l *Limiter) holdLocked(now time.Time, ceiling int) {
	switch {
	case ceiling != l.ceiling || l.hold == 0:
		l.hold = holdMin
	case !now.Before(l.holdUntil):
		l.hold = min(2*l.hold, holdMax)
	}
	l.ceiling = ceiling
	l.holdUntil = now.Add(l.hold)
	l.heldShort = l.lastShort
}

// cpuWaitMax is the most the requests admitted in a window may wait for
// the CPU after their yield, as a share of their work, before the limit
// counts as too high. One slot on a core of CPU-bound work waited 0.1-4%
// of its work at 1× to 8× the core's capacity, two slots 25-35%.
const cpuWaitMax = 0.2

// cpuBoundShare is the share of the handlers' work (their time from the
// yield to their end) that the process must have spent on the CPU during
// a window for the work to count as CPU-bound. A core of image resizing
// spends nearly all of it; a handler waiting on a call to another service
// spends a small share. The process's CPU time counts all its work, so
// two Limiters in one process (the kit's services run one) judge it
// together.
const cpuBoundShare = 0.5

// cpuBoundLocked reports whether cpu, the process's CPU time over the
// window, is at least cpuBoundShare of the window's work. l.mu must be
// held.
func (l *Limiter) cpuBoundLocked(cpu time.Duration) bool {
	return l.winWork > 0 && cpu.Seconds() >= cpuBoundShare*l.winWork
}

// holdMin and holdMax bound a hold (see holdLocked); holdMargin is how far
// below its ceiling a held limit stays, so that its floor is a slot less.
const (
	holdMin    = time.Second
	holdMax    = 16 * time.Second
	holdMargin = 1e-3
	// holdFaster is how much faster than at the hold's start a window at
	// the held limit must be for the hold to end early.
	holdFaster = 0.75
)

// yieldAbove is the least mean handler work at which Middleware yields
// after admitting. Below it a request's work is of the order of what
// serving any request costs (a rejection included), so turning requests
// away would not relieve the CPU; and counting the requests that wait for
// the CPU behind such work would only read the scheduler's delay as
// overload.
const yieldAbove = time.Millisecond

// cheapWindow is the shortest window while the middleware does not yield
// for handlers.
const cheapWindow = time.Second

// fastSamples is how many samples over earlyClose times the tolerated
// latency close a window early, when its mean is over it too.
const fastSamples = 3

// earlyClose is how many times the tolerance a window's mean latency must
// exceed the long RTT for the window to close before Window has passed.
const earlyClose = 2

func (l *Limiter) clamp(v float64) float64 {
	return max(float64(l.cfg.MinLimit), min(float64(l.cfg.MaxLimit), v))
}

// Middleware serves requests through next while the limit allows and
// answers the rest with 503, a Retry-After header and a JSON body
// {"error": "..."}: at once, or after waiting at most the long RTT for a
// slot in a short queue (see the package documentation). A request whose
// client went away before next returned is not counted as a latency
// sample.
//
// With [Config.Critical] set, requests it does not call critical are
// turned away first (see Priority in the package documentation).
// Admitting a request without a body allocates nothing.
//
// Once admitted, a request yields the CPU before next runs when handlers
// take a millisecond or more (see the package documentation), so that
// requests waiting for the CPU behind them are turned away rather than
// queued unseen.
//
// A request blocked reading its body does not hold a slot: while next is
// inside a Read of r.Body the request is not counted in flight, and that
// time is left out of its latency. Otherwise a few clients sending their
// bodies slowly would fill the limit and every other request would get
// 503 for as long as they trickle. The slot is taken back when the Read
// returns, without checking the limit, so after a burst of bodies
// completing together the work in flight may exceed the limit briefly;
// what bounds the memory those bodies hold is the service's upload
// budget, not the limiter. The slot is kept, rather than the body read
// before admission, so that the handler keeps deciding how (and whether)
// to read its body, within its own budget.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && r.Context().Err() != nil {
			// The client reset the stream on its way here (package server
			// drops those reset before their handler ran; under a
			// rapid-reset flood many more are reset by the time they reach
			// the limiter): it takes no slot and gets no answer, which
			// could not reach it. Without this, a flood's streams took 13%
			// of ordinary requests' admissions in one run of twenty.
			return
		}
		release, ok := l.acquirePooled(r.Context(), l.cfg.Critical == nil || l.cfg.Critical(r))
		if !ok {
			h := w.Header()
			h.Set("Retry-After", l.retryAfter)
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(overloadedBody)
			return
		}
		// A ticket a body holds is not reused: the handler could leave
		// the body to a goroutine that outlives it.
		reuse := true
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &parkingBody{ReadCloser: r.Body, t: release}
			// A Budget the handler waits on for memory to hold the body
			// parks the ticket too (see Budget.Acquire).
			r = r.WithContext(context.WithValue(r.Context(), ticketKey{}, release))
			reuse = false
		}
		if l.yield.Load() {
			// Let the requests already waiting for a CPU reach the
			// limiter before this one starts its work (see the package
			// documentation), then time the work itself.
			runtime.Gosched()
			if r.ProtoMajor == 2 && r.Context().Err() != nil {
				// Reset while it waited for the CPU: under a rapid-reset
				// flood thousands a second are, and each would hold its
				// slot through its handler while ordinary requests found
				// the limit full.
				release.finish(context.Canceled, reuse)
				return
			}
			release.workStart = l.cfg.Now()
		}
		completed := false
		defer func() {
			// A panicking handler did not complete: its latency is no
			// sample, but its slot must be returned.
			if !completed {
				release.release(context.Canceled)
			}
		}()
		next.ServeHTTP(w, r)
		completed = true
		release.finish(context.Cause(r.Context()), reuse)
	})
}

// acquire is Acquire returning the ticket itself, or nil.
func (l *Limiter) acquire() (*ticket, bool) {
	now := l.cfg.Now()
	if !l.admit(now) {
		return nil, false
	}
	return &ticket{l: l, start: now}, true
}

// acquirePooled is acquire with a ticket from l.free, for callers that
// know when the ticket is no longer referenced and give it back (see
// ticket.finish): admission then allocates nothing.
func (l *Limiter) acquirePooled(ctx context.Context, critical bool) (*ticket, bool) {
	now := l.cfg.Now()
	l.mu.Lock()
	l.accountLocked(now)
	if l.inFlight >= l.limitFor(now, critical) {
		w := l.enqueue(critical)
		if w == nil {
			if critical {
				l.criticalRefused = now
			}
			l.mu.Unlock()
			l.rejected.Inc()
			return nil, false
		}
		l.mu.Unlock()
		if !l.wait(ctx, w) {
			l.rejected.Inc()
			return nil, false
		}
		// The granter counted the slot; the latency sample starts now,
		// without the wait (see wait).
		now = l.cfg.Now()
		l.mu.Lock()
	} else {
		l.inFlight++
		l.winInFlight = max(l.winInFlight, l.inFlight)
	}
	var t *ticket
	if n := len(l.free); n > 0 {
		t, l.free[n-1] = l.free[n-1], nil
		l.free = l.free[:n-1]
	}
	l.mu.Unlock()
	if t == nil {
		t = new(ticket)
	}
	t.l, t.start, t.workStart = l, now, time.Time{}
	t.done.Store(false)
	t.parked, t.parkStart, t.parkedFor = false, time.Time{}, 0
	return t, true
}

// admit takes a slot if fewer than the limit are in flight, and counts a
// rejection otherwise.
func (l *Limiter) admit(now time.Time) bool {
	l.mu.Lock()
	l.accountLocked(now)
	if l.inFlight >= int(l.limit) {
		l.mu.Unlock()
		l.rejected.Inc()
		return false
	}
	l.inFlight++
	l.winInFlight = max(l.winInFlight, l.inFlight)
	l.mu.Unlock()
	return true
}

// ticketKey is the context key of a request's ticket, for a Budget that
// parks it while the request waits for memory.
type ticketKey struct{}

// parkingBody parks its request's ticket for the duration of each Read.
type parkingBody struct {
	io.ReadCloser
	t *ticket
}

func (b *parkingBody) Read(p []byte) (int, error) {
	b.t.park()
	defer b.t.unpark()
	return b.ReadCloser.Read(p)
}

var overloadedBody = []byte(`{"error":"server overloaded, retry later"}` + "\n")
