package client

import (
	"fmt"
	"sync"
	"time"
)

// Defaults applied to zero fields of [BudgetConfig]: Finagle's.
const (
	DefaultBudgetRatio        = 0.2
	DefaultBudgetMinPerSecond = 10
	DefaultBudgetWindow       = 10 * time.Second
)

// BudgetConfig sizes a [RetryBudget]. The zero value means Finagle's
// defaults: 20% of requests, 10 retries a second, over 10 seconds. A
// negative field is invalid.
type BudgetConfig struct {
	// Ratio of retries to requests over the window. Zero means
	// DefaultBudgetRatio (0.2).
	Ratio float64
	// MinPerSecond retries are always allowed, so a client with little
	// traffic can still retry. Zero means DefaultBudgetMinPerSecond (10).
	MinPerSecond float64
	// Window over which requests and retries are counted. Zero means
	// DefaultBudgetWindow (10s).
	Window time.Duration
}

// Validate reports the first invalid field of c.
func (c BudgetConfig) Validate() error {
	switch {
	case !(c.Ratio >= 0):
		return fmt.Errorf("client: Budget.Ratio %v is negative or NaN", c.Ratio)
	case !(c.MinPerSecond >= 0):
		return fmt.Errorf("client: Budget.MinPerSecond %v is negative or NaN", c.MinPerSecond)
	case c.Window < 0:
		return fmt.Errorf("client: Budget.Window %v is negative", c.Window)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c BudgetConfig) withDefaults() BudgetConfig {
	if c.Ratio == 0 {
		c.Ratio = DefaultBudgetRatio
	}
	if c.MinPerSecond == 0 {
		c.MinPerSecond = DefaultBudgetMinPerSecond
	}
	if c.Window == 0 {
		c.Window = DefaultBudgetWindow
	}
	return c
}

const budgetBuckets = 10

// RetryBudget allows a retry while the retries in the last window stay
// below Ratio × requests + MinPerSecond × window. It is safe for
// concurrent use; Now is its clock.
type RetryBudget struct {
	ratio   float64
	reserve float64
	width   time.Duration // of one bucket
	now     func() time.Time

	mu       sync.Mutex
	epoch    time.Time
	head     int64 // index of the newest bucket since epoch
	requests [budgetBuckets]float64
	retries  [budgetBuckets]float64
}

// NewRetryBudget returns a budget; now nil means time.Now. It has no
// error to return, so it panics if cfg is invalid; [New] reports that as
// an error, and [BudgetConfig.Validate] checks a BudgetConfig beforehand.
func NewRetryBudget(cfg BudgetConfig, now func() time.Time) *RetryBudget {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	return &RetryBudget{
		ratio:   cfg.Ratio,
		reserve: cfg.MinPerSecond * cfg.Window.Seconds(),
		width:   cfg.Window / budgetBuckets,
		now:     now,
		epoch:   now(),
	}
}

// advance moves the window to now, clearing buckets that fell out of it.
func (b *RetryBudget) advance() int {
	idx := int64(b.now().Sub(b.epoch) / b.width)
	if idx > b.head {
		for i := b.head + 1; i <= idx && i <= b.head+budgetBuckets; i++ {
			b.requests[i%budgetBuckets] = 0
			b.retries[i%budgetBuckets] = 0
		}
		b.head = idx
	}
	return int(b.head % budgetBuckets)
}

// Deposit records one request, which earns Ratio of a retry.
func (b *RetryBudget) Deposit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[b.advance()]++
}

// TryWithdraw takes one retry from the budget and reports whether there
// was one to take.
func (b *RetryBudget) TryWithdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.advance()
	if b.balanceLocked() < 1 {
		return false
	}
	b.retries[i]++
	return true
}

// Balance returns the number of retries the budget would allow now.
func (b *RetryBudget) Balance() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	return b.balanceLocked()
}

func (b *RetryBudget) balanceLocked() float64 {
	var req, ret float64
	for i := range budgetBuckets {
		req += b.requests[i]
		ret += b.retries[i]
	}
	return b.ratio*req + b.reserve - ret
}
