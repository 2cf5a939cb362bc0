package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for a [Check] whose Interval or Timeout is zero.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// StopGrace bounds how long Run waits, once its context is done, for a
// check call that is still running.
const StopGrace = time.Second

var (
	// ErrInvalidCheck is returned by [Checker.Add] for a check without a
	// name or a function, or with a negative interval or timeout.
	ErrInvalidCheck = errors.New("health: invalid check")
	// ErrDuplicateCheck is returned by [Checker.Add] for a name already in use.
	ErrDuplicateCheck = errors.New("health: duplicate check name")
	// ErrRunning is returned by [Checker.Add] once Run has been called, and
	// by a second call of Run.
	ErrRunning = errors.New("health: checker already running")
	// ErrTimeout is the result of a check that did not return within its
	// timeout.
	ErrTimeout = errors.New("health: check timed out")
	// ErrPanic is the result of a check that panicked.
	ErrPanic = errors.New("health: check panicked")
	// ErrPending is the result of a check that has not completed yet.
	ErrPending = errors.New("health: check has no result yet")
)

// Check is one named health check. Every zero field but Name and Func
// means the documented default; a negative duration is invalid.
type Check struct {
	// Name identifies the check in probe reports and logs. Required and
	// unique within a Checker.
	Name string
	// Func reports the check's state: nil when healthy. It must return when
	// ctx is done; one that does not is reported as timed out.
	Func func(ctx context.Context) error
	// Interval between the starts of two runs. Zero means DefaultInterval
	// (10s).
	Interval time.Duration
	// Timeout bounds one run. Zero means DefaultTimeout (2s).
	Timeout time.Duration
	// Critical makes a failure of this readiness check fail /readyz.
	// Ignored for liveness checks, which always count toward /livez.
	Critical bool
	// Liveness makes this a liveness check: it counts toward /livez and is
	// ignored by /readyz. Use it only for checks of the process itself.
	Liveness bool
}

func (ck Check) validate() error {
	switch {
	case ck.Name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidCheck)
	case ck.Func == nil:
		return fmt.Errorf("%w %q: nil Func", ErrInvalidCheck, ck.Name)
	case ck.Interval < 0:
		return fmt.Errorf("%w %q: negative Interval %s", ErrInvalidCheck, ck.Name, ck.Interval)
	case ck.Timeout < 0:
		return fmt.Errorf("%w %q: negative Timeout %s", ErrInvalidCheck, ck.Name, ck.Timeout)
	}
	return nil
}

// withDefaults returns ck with its zero fields replaced by their defaults.
func (ck Check) withDefaults() Check {
	if ck.Interval == 0 {
		ck.Interval = DefaultInterval
	}
	if ck.Timeout == 0 {
		ck.Timeout = DefaultTimeout
	}
	return ck
}

// Checker runs checks and serves probes from their results. Create one
// with [New]; its methods are safe for concurrent use.
type Checker struct {
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	checks  []*checkState
	names   map[string]bool
	initErr error // first error of the checks given to New, returned by Run
	running bool

	started  atomic.Bool
	draining atomic.Bool

	changeMu sync.Mutex
	changed  chan struct{} // closed and replaced when readiness may have changed
}

// checkState is one check and its cached result.
type checkState struct {
	check Check // with defaults applied

	mu       sync.Mutex
	ran      bool          // a result has been recorded
	err      error         // last result
	at       time.Time     // when the last result was recorded
	took     time.Duration // how long the last run took
	inflight chan struct{} // closed when the running call returns; nil when idle
	since    time.Time     // start of the in-flight call
}

// New returns a Checker with the given checks. A nil logger discards logs.
// The checks are added as by [Checker.Add]; if one is invalid, the error
// is logged and returned by [Checker.Run], which then runs nothing.
func New(logger *slog.Logger, checks ...Check) *Checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{logger: logger, now: time.Now, names: make(map[string]bool), changed: make(chan struct{})}
	for _, ck := range checks {
		if err := c.Add(ck); err != nil && c.initErr == nil {
			logger.Error("health: invalid check given to New", "err", err)
			c.initErr = err
		}
	}
	return c
}

// Add registers a check. It must be called before Run; an empty or
// duplicate name, a nil Func or a negative duration is an error.
func (c *Checker) Add(ck Check) error {
	if err := ck.validate(); err != nil {
		return err
	}
	ck = ck.withDefaults()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return fmt.Errorf("%w: cannot add check %q", ErrRunning, ck.Name)
	}
	if c.names[ck.Name] {
		return fmt.Errorf("%w: %q", ErrDuplicateCheck, ck.Name)
	}
	c.names[ck.Name] = true
	c.checks = append(c.checks, &checkState{check: ck})
	return nil
}

// Run runs every check on its interval, the first run at once, until ctx
// is done. It then gives the calls in flight, which have seen ctx end, up
// to StopGrace (or their check's Timeout, if shorter) to return, logs
// those that ignored cancellation (their goroutines are abandoned), and
// returns nil. Run may be called once.
func (c *Checker) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.initErr != nil {
		c.mu.Unlock()
		return c.initErr
	}
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	checks := slices.Clone(c.checks)
	c.mu.Unlock()

	var wg sync.WaitGroup
	for _, st := range checks {
		wg.Go(func() { c.loop(ctx, st) })
	}
	wg.Wait()
	c.waitInflight(checks)
	return nil
}

func (c *Checker) loop(ctx context.Context, st *checkState) {
	t := time.NewTicker(st.check.Interval)
	defer t.Stop()
	for {
		c.runOnce(ctx, st)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runOnce runs the check once unless its previous call is still running,
// and records the result. It returns by the check's timeout at the latest.
func (c *Checker) runOnce(ctx context.Context, st *checkState) {
	if ctx.Err() != nil {
		return
	}
	st.mu.Lock()
	if st.inflight != nil {
		since := st.since
		st.mu.Unlock()
		c.record(st, fmt.Errorf("%w: previous run still going after %s",
			ErrTimeout, c.now().Sub(since).Round(time.Millisecond)), 0)
		return
	}
	done := make(chan struct{})
	start := c.now()
	st.inflight, st.since = done, start
	st.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, st.check.Timeout)
	defer cancel()
	result := make(chan error, 1)
	// Owned through st.inflight: the next run and waitInflight see whether
	// it is still going, and it never blocks on its way out.
	go func() {
		err := call(cctx, st.check.Func)
		st.mu.Lock()
		st.inflight = nil
		st.mu.Unlock()
		close(done)
		result <- err
	}()

	select {
	case err := <-result:
		if err != nil && cctx.Err() != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %s: %w", ErrTimeout, st.check.Timeout, err)
		}
		if ctx.Err() != nil {
			return // shutting down: a cancelled run says nothing about health
		}
		c.record(st, err, c.now().Sub(start))
	case <-cctx.Done():
		if ctx.Err() != nil {
			return
		}
		c.record(st, fmt.Errorf("%w after %s", ErrTimeout, st.check.Timeout), st.check.Timeout)
	}
}

func call(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return f(ctx)
}

func (c *Checker) record(st *checkState, err error, took time.Duration) {
	st.mu.Lock()
	wasOK, first := st.err == nil, !st.ran
	st.ran, st.err, st.at, st.took = true, err, c.now(), took
	st.mu.Unlock()
	if first || wasOK != (err == nil) {
		c.notify()
	}
	switch {
	case err != nil && (wasOK || first):
		c.logger.Warn("health check failing", "check", st.check.Name, "critical", st.check.Critical,
			"liveness", st.check.Liveness, "err", err)
	case err == nil && !wasOK && !first:
		c.logger.Info("health check recovered", "check", st.check.Name)
	}
}

// waitInflight waits for calls still running after Run's context ended,
// giving each at most StopGrace or its check's timeout.
func (c *Checker) waitInflight(checks []*checkState) {
	for _, st := range checks {
		st.mu.Lock()
		done := st.inflight
		st.mu.Unlock()
		if done == nil {
			continue
		}
		t := time.NewTimer(min(st.check.Timeout, StopGrace))
		select {
		case <-done:
		case <-t.C:
			c.logger.Warn("health check ignored cancellation; abandoning its goroutine",
				"check", st.check.Name, "timeout", st.check.Timeout)
		}
		t.Stop()
	}
}

// MarkStarted records that start-up is complete: /startupz turns 200 and
// /readyz no longer fails for that reason.
func (c *Checker) MarkStarted() {
	if !c.started.Swap(true) {
		c.logger.Info("health: start-up complete")
		c.notify()
	}
}

// SetDraining makes /readyz fail from now on, so the platform stops
// sending new traffic while the service shuts down. It cannot be undone.
func (c *Checker) SetDraining() {
	if !c.draining.Swap(true) {
		c.logger.Info("health: draining, readiness now fails")
		c.notify()
	}
}

// Changed returns a channel closed at the next event that may change
// what Ready, Live or a probe answers: a check's first result, a check
// turning failing or passing, MarkStarted, SetDraining. A follower reads
// the state after taking the channel, so it misses no change:
//
//	for {
//		ch := c.Changed()
//		publish(c.Ready())
//		select { case <-ch: case <-ctx.Done(): return }
//	}
//
// It lets other protocols' health (grpc.health.v1) follow /readyz
// without polling.
func (c *Checker) Changed() <-chan struct{} {
	c.changeMu.Lock()
	defer c.changeMu.Unlock()
	return c.changed
}

func (c *Checker) notify() {
	c.changeMu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.changeMu.Unlock()
}

// Started reports whether MarkStarted has been called.
func (c *Checker) Started() bool { return c.started.Load() }

// Draining reports whether SetDraining has been called.
func (c *Checker) Draining() bool { return c.draining.Load() }

// Ready reports what /readyz would answer: start-up is complete, the
// service is not draining and every critical readiness check has passed
// its last run.
func (c *Checker) Ready() bool { return c.report(probeReady, false).Status == StatusOK }

// Live reports what /livez would answer: no liveness check failed its
// last run.
func (c *Checker) Live() bool { return c.report(probeLive, false).Status == StatusOK }

// Results returns the last result of every check, in the order added.
func (c *Checker) Results() []CheckResult {
	c.mu.Lock()
	checks := slices.Clone(c.checks)
	c.mu.Unlock()
	now := c.now()
	out := make([]CheckResult, 0, len(checks))
	for _, st := range checks {
		out = append(out, st.result(now))
	}
	return out
}

func (st *checkState) result(now time.Time) CheckResult {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := CheckResult{
		Name:     st.check.Name,
		Critical: st.check.Critical,
		Liveness: st.check.Liveness,
		OK:       st.ran && st.err == nil,
		Pending:  !st.ran,
	}
	switch {
	case !st.ran:
		r.Error = ErrPending.Error()
	case st.err != nil:
		r.Error = st.err.Error()
	}
	if st.ran {
		r.LastRun = st.at
		r.AgeSeconds = now.Sub(st.at).Seconds()
		r.DurationSeconds = st.took.Seconds()
	}
	return r
}
