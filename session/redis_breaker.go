package session

import (
	"errors"
	"sync"
	"time"
)

// Defaults of [WithBreaker].
const (
	// DefaultBreakerThreshold is how many calls in a row must fail before
	// the breaker opens: enough that one lost packet does not open it, few
	// enough that a hung store holds up only a handful of requests.
	DefaultBreakerThreshold = 3
	// DefaultBreakerCooldown is how long an open breaker fails calls at
	// once before it lets one through to see whether the store is back.
	// It matches the Retry-After of [WriteError].
	DefaultBreakerCooldown = time.Second
)

// ErrBreakerOpen is wrapped, together with [ErrUnavailable], by the errors
// of calls a [RedisStore] refused without trying because its store failed
// repeatedly and has not answered since.
var ErrBreakerOpen = errors.New("session: circuit open: store failing, not tried")

// breaker fails calls at once while the store is down, so that an outage
// costs each request microseconds rather than a timeout.
//
// Closed, every call goes through; threshold failures in a row open it.
// Open, calls fail at once until cooldown has passed; then one call at a
// time goes through as a trial (half-open). Any success closes the
// breaker; a failed trial opens it for another cooldown. Time comes from
// now, so the states are tested without sleeping.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int       // consecutive failed calls
	openUntil time.Time // zero while closed
	trial     bool      // a half-open trial is in flight
}

func newBreaker(threshold int, cooldown time.Duration, now func() time.Time) *breaker {
	if threshold <= 0 {
		threshold = DefaultBreakerThreshold
	}
	if cooldown <= 0 {
		cooldown = DefaultBreakerCooldown
	}
	if now == nil {
		now = time.Now
	}
	return &breaker{threshold: threshold, cooldown: cooldown, now: now}
}

// outcome is what a call told about the store.
type outcome int

const (
	answered outcome = iota // the store answered, whatever it said
	failed                  // the store did not answer in time, or refused
	unknown                 // the caller gave up first: says nothing
)

// allow reports whether a call may go to the store, and whether it is the
// half-open trial; every allowed call must be followed by done.
func (b *breaker) allow() (ok, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openUntil.IsZero():
		return true, false
	case b.trial || b.now().Before(b.openUntil):
		return false, false
	}
	b.trial = true
	return true, true
}

// done records the outcome of a call allow let through, or of a call that
// bypassed it (a health check's ping, with trial false).
func (b *breaker) done(o outcome, trial bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if trial {
		b.trial = false
	}
	switch o {
	case unknown:
		return
	case answered:
		b.failures, b.openUntil = 0, time.Time{}
		return
	}
	b.failures++
	if trial || (b.openUntil.IsZero() && b.failures >= b.threshold) {
		b.openUntil = b.now().Add(b.cooldown)
	}
}

// open reports whether the breaker is failing calls without trying them.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openUntil.IsZero()
}
