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
// every path, an unknown method included, where no End is reported).
type connStats struct{ table *connTable }

var _ stats.Handler = connStats{}

type trackedKey struct{}

func (h connStats) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if c := h.table.lookup(info.LocalAddr, info.RemoteAddr); c != nil {
		return context.WithValue(ctx, trackedKey{}, c)
	}
	return ctx
}

func (connStats) HandleConn(context.Context, stats.ConnStats) {}

func (connStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	c, _ := ctx.Value(trackedKey{}).(*trackedConn)
	if c == nil || info.FullMethodName == watchMethod {
		return ctx
	}
	c.busy.Add(1)
	context.AfterFunc(ctx, func() {
		c.idleSince.Store(time.Now().UnixNano())
		c.busy.Add(-1)
	})
	return ctx
}

func (connStats) HandleRPC(context.Context, stats.RPCStats) {}

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
	shared    bool         // its address pair is another open connection's too; under table.mu
}

func (c *trackedConn) mark() { c.once.Do(c.taken) }

func (c *trackedConn) SetDeadline(t time.Time) error { c.mark(); return c.Conn.SetDeadline(t) }

func (c *trackedConn) Read(p []byte) (int, error)  { c.mark(); return c.Conn.Read(p) }
func (c *trackedConn) Write(p []byte) (int, error) { c.mark(); return c.Conn.Write(p) }

// Close is called by grpc-go however the connection ends.
func (c *trackedConn) Close() error {
	c.mark()
	c.table.remove(c)
	return c.Conn.Close()
}
