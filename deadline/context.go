package deadline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// routeContext is the context Middleware gives a request. Its deadline is
// fixed at once, but the timer and the child registered on the request's
// context that context.WithDeadline needs are made only when something
// asks for Done (context.WithCancel and AfterFunc on it do), or when Err
// finds the time up: a handler that never waits on its context, as most
// of a fast route's do not, costs neither, nor their four allocations.
// Until then Err compares the clock with the deadline, so it reports
// DeadlineExceeded on time either way.
type routeContext struct {
	context.Context // the request's
	deadline        time.Time

	ready atomic.Bool // inner is set; read without mu once true
	ended atomic.Bool // the handler returned: the context is canceled
	mu    sync.Mutex
	inner context.Context // context.WithDeadline(Context, deadline)
	stop  context.CancelFunc
}

// newRouteContext bounds parent by d, or by parent's own deadline when it
// is sooner, as context.WithDeadline would.
func newRouteContext(parent context.Context, d time.Time) *routeContext {
	if cur, ok := parent.Deadline(); ok && cur.Before(d) {
		d = cur
	}
	return &routeContext{Context: parent, deadline: d}
}

// live returns the real context, making it on first use.
func (c *routeContext) live() context.Context {
	if c.ready.Load() {
		return c.inner
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.stop = context.WithDeadline(c.Context, c.deadline)
		if c.ended.Load() {
			c.stop()
		}
		c.ready.Store(true)
	}
	return c.inner
}

// end cancels the context, as the deferred cancel of a context.WithTimeout
// would when the handler returns.
func (c *routeContext) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended.Store(true)
	if c.stop != nil {
		c.stop()
	}
}

func (c *routeContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *routeContext) Done() <-chan struct{} { return c.live().Done() }

func (c *routeContext) Err() error {
	if !c.ready.Load() && !c.ended.Load() && c.Context.Err() == nil && time.Now().Before(c.deadline) {
		return nil
	}
	return c.live().Err()
}

// Value goes to the real context once it exists, so context.WithCancel of
// this one finds the cancelCtx whose Done it was given and registers
// there rather than starting a goroutine.
func (c *routeContext) Value(key any) any {
	if c.ready.Load() {
		return c.inner.Value(key)
	}
	return c.Context.Value(key)
}

func (c *routeContext) String() string {
	return fmt.Sprintf("%v.WithDeadline(%s)", c.Context, c.deadline)
}
