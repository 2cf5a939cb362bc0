package grpcserver

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/stats"
)

// connTable holds the open connections, so that a connection beyond
// MaxConns can take the place of the one idle longest instead of being
// refused: with refusal alone, whoever opens MaxConns connections first
// and keeps them silent locks every later client out of the port.
//
// A connection is busy while a call other than a health Watch is in
// flight on it (grpcclient keeps a Watch open on every connection, so a
// Watch alone says nothing about work). Calls are matched to their
// connection by its address pair, which the stats handler sees;
// connections sharing a pair (Unix sockets, pipes) cannot be told apart,
// so they are never evicted.
type connTable struct {
	max int // at most this many open; 0: no bound

	mu     sync.Mutex
	open   map[*trackedConn]struct{}
	byAddr map[string]*addrEntry
}

type addrEntry struct {
	c *trackedConn // nil once two open connections share the pair
	n int
}

func newConnTable(max int) *connTable {
	return &connTable{
		max:    max,
		open:   make(map[*trackedConn]struct{}),
		byAddr: make(map[string]*addrEntry),
	}
}

func addrKey(local, remote net.Addr) string {
	if local == nil || remote == nil {
		return ""
	}
	return local.Network() + " " + local.String() + " " + remote.String()
}

// add takes c in, closing the connection idle longest to make room when
// MaxConns are open. It reports the connection evicted (nil if none) and
// false, with c not taken, when every open connection is busy.
func (t *connTable) add(c *trackedConn) (evicted *trackedConn, ok bool) {
	c.idleSince.Store(time.Now().UnixNano())
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.max > 0 && len(t.open) >= t.max {
		for o := range t.open {
			if o.shared || o.busy.Load() > 0 {
				continue
			}
			if evicted == nil || o.idleSince.Load() < evicted.idleSince.Load() {
				evicted = o
			}
		}
		if evicted == nil {
			return nil, false
		}
		t.removeLocked(evicted)
	}
	t.open[c] = struct{}{}
	c.table = t
	key := addrKey(c.LocalAddr(), c.RemoteAddr())
	e := t.byAddr[key]
	if e == nil {
		e = &addrEntry{}
		t.byAddr[key] = e
	}
	e.n++
	if e.n == 1 && key != "" {
		e.c = c
	} else {
		if e.c != nil {
			e.c.shared = true
		}
		e.c = nil
		c.shared = true
	}
	return evicted, true
}

// remove forgets c; it reports false if c was already gone (evicted).
func (t *connTable) remove(c *trackedConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.open[c]; !ok {
		return false
	}
	t.removeLocked(c)
	return true
}

func (t *connTable) removeLocked(c *trackedConn) {
	delete(t.open, c)
	key := addrKey(c.LocalAddr(), c.RemoteAddr())
	if e := t.byAddr[key]; e != nil {
		if e.n--; e.n == 0 {
			delete(t.byAddr, key)
		} else if e.c == c {
			e.c = nil
		}
	}
}

// lookup returns the open connection with this address pair, nil if
// there is none or more than one.
func (t *connTable) lookup(local, remote net.Addr) *trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.byAddr[addrKey(local, remote)]; e != nil {
		return e.c
	}
	return nil
}

// len is the number of connections open.
func (t *connTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

// connStats marks a connection busy for each call on it, from the call's
// start until its stream ends (grpc-go cancels the stream's context on
// every path, an unknown method included, where no End is reported), and
// closes a connection most of whose streams end before their first
// message arrives: a rapid reset.
type connStats struct {
	table *connTable
	// reset is called, once per connection, after a rapid reset closed
	// it; nil means no call.
	reset func(c *trackedConn)
}

var _ stats.Handler = connStats{}

type (
	trackedKey struct{}
	callKey    struct{}
)

// call is what connStats keeps of one call: whether its first message
// arrived.
type call struct{ received atomic.Bool }

func (h connStats) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if c := h.table.lookup(info.LocalAddr, info.RemoteAddr); c != nil {
		return context.WithValue(ctx, trackedKey{}, c)
	}
	return ctx
}

func (connStats) HandleConn(context.Context, stats.ConnStats) {}

func (h connStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	c, _ := ctx.Value(trackedKey{}).(*trackedConn)
	if c == nil {
		return ctx
	}
	r := &call{}
	watch := info.FullMethodName == watchMethod
	if !watch {
		c.busy.Add(1)
	}
	c.calls.Add(1)
	begun := time.Now()
	ended := func() {
		now := time.Now()
		if !watch {
			c.idleSince.Store(now.UnixNano())
			c.busy.Add(-1)
		}
		// Only a call cancelled as soon as it began: one that waited for
		// the receive budget until its deadline, or was cut off by it,
		// is the server's doing, not its client's.
		if !r.received.Load() && now.Sub(begun) < resetWindow && c.abandon() && h.reset != nil {
			h.reset(c)
		}
	}
	if ctx.Err() != nil {
		// Reset before its handler began, a rapid reset's mark: counted
		// here, at once, rather than in a goroutine of its own, which
		// under such a flood runs behind the resets grpc-go goes on
		// reading.
		ended()
		return ctx
	}
	context.AfterFunc(ctx, ended)
	return context.WithValue(ctx, callKey{}, r)
}

func (connStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InPayload); ok {
		if r, _ := ctx.Value(callKey{}).(*call); r != nil {
			r.received.Store(true)
		}
	}
}

// Beyond resetFloor calls on a connection that ended before their first
// message within resetWindow of their start, and more than half its
// calls, the connection is a rapid reset (streams opened and cancelled
// at once, each costing the server a stream, a goroutine and its
// contexts while the client pays a frame): it is closed, and what its
// client had queued in the socket is never read. grpc-go's bound of MaxConcurrentStreams handlers per connection
// only paces such a connection; without the close, a client that opens
// connection after connection, each with thousands of resets queued,
// kept the thumbnailer busy for half a minute after a 4 s attack, its
// heap growing all the while. A well-behaved client sends a unary call's
// message with its headers, so its calls end before their message only
// when it calls a method the server does not have, or when they wait
// for the receive budget (see resetWindow).
const resetFloor = 100

// resetWindow is how soon after its start a call that ends before its
// message counts towards a rapid reset. A reset follows its headers at
// once; a well-behaved client's call that waited for the receive budget
// ends at its deadline, or at the budget's eviction (500ms).
const resetWindow = 10 * time.Millisecond

// trackedConn is a connection handed to a generation. It calls taken
// once, at the first call grpc.Server makes on it after accepting it.
// grpc.Server checks whether it is stopping between Accept and that first
// call (SetDeadline, or Close when it is stopping); waiting for taken
// before GracefulStop closes the window in which a connection accepted
// just before the stop would be closed without a word instead of served
// and sent GOAWAY.
type trackedConn struct {
	net.Conn
	once  sync.Once
	taken func()
	table *connTable // set by add

	busy      atomic.Int32 // calls in flight, health Watches aside
	idleSince atomic.Int64 // Unix nanoseconds: accepted, or its last call ended
	calls     atomic.Int64 // calls begun
	abandoned atomic.Int64 // calls ended before their first message, within resetWindow
	reset     atomic.Bool  // closed as a rapid reset
	shared    bool         // its address pair is another open connection's too; under table.mu
}

func (c *trackedConn) mark() { c.once.Do(c.taken) }

func (c *trackedConn) SetDeadline(t time.Time) error { c.mark(); return c.Conn.SetDeadline(t) }

func (c *trackedConn) Read(p []byte) (int, error)  { c.mark(); return c.Conn.Read(p) }
func (c *trackedConn) Write(p []byte) (int, error) { c.mark(); return c.Conn.Write(p) }

// abandon counts a call that ended before its first message, and
// reports true, once, when that makes c a rapid reset, which it closes.
func (c *trackedConn) abandon() bool {
	n := c.abandoned.Add(1)
	if n <= resetFloor || 2*n <= c.calls.Load() || c.reset.Swap(true) {
		return false
	}
	c.Close()
	return true
}

// Close is called by grpc-go however the connection ends.
func (c *trackedConn) Close() error {
	c.mark()
	c.table.remove(c)
	return c.Conn.Close()
}
