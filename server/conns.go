package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit keeps at most max connections open. Each connection costs
// memory whether it works or not (buffers, a goroutine, TLS state), so
// an unbounded number of idle keep-alive or silent connections can take
// a replica past its memory limit. A connection beyond the limit closes
// the one that has waited longest without a request in progress (idle
// between requests, or new and not yet sending one). When every
// connection is busy, it closes the HTTP/1.1 connection whose handler is
// waiting, inside a body Read, for the slowest body (see slowBody): a
// busy connection is otherwise never closed for it, and clients that
// sent headers and then a byte now and then held every place, refusing
// everyone else (1,100 of them refused 84% of new connections to a
// gallery). With no such body either, the new connection is closed at
// once.
type connLimit struct {
	max     int
	onClose func(reason string) // may be nil

	mu sync.Mutex
	// conns holds every open connection, in the order each last began to
	// wait for a request (busy ones stay where they were); at indexes
	// each into it. An element lives as long as its connection, so a
	// request moves one, allocating nothing.
	conns list.List
	at    map[net.Conn]*list.Element
}

type limitedConn struct {
	c    net.Conn
	st   *connState // nil without New's ConnContext
	busy bool
	// waiting is when it last began to wait for a request, in Unix
	// nanoseconds: opened, or went idle.
	waiting int64
}

func newConnLimit(max int, onClose func(reason string)) *connLimit {
	return &connLimit{max: max, onClose: onClose, at: make(map[net.Conn]*list.Element)}
}

// opened gives the limit c's state, which New's ConnContext makes just
// before the server reports c new.
func (l *connLimit) opened(c net.Conn, st *connState) {
	now := time.Now().UnixNano()
	l.mu.Lock()
	l.at[c] = l.conns.PushBack(&limitedConn{c: c, st: st, waiting: now})
	l.mu.Unlock()
}

// state is the server's ConnState hook.
func (l *connLimit) state(c net.Conn, s http.ConnState) {
	var evict net.Conn
	reason := CloseEvicted
	var now int64
	if s == http.StateNew || s == http.StateIdle {
		now = time.Now().UnixNano()
	}
	l.mu.Lock()
	switch s {
	case http.StateNew:
		if _, ok := l.at[c]; !ok {
			l.at[c] = l.conns.PushBack(&limitedConn{c: c, waiting: now})
		}
		if l.conns.Len() > l.max {
			evict, reason = l.longestWaiting(c, now)
		}
	case http.StateIdle, http.StateActive:
		if e, ok := l.at[c]; ok {
			lc := e.Value.(*limitedConn)
			lc.busy = s == http.StateActive
			if s == http.StateIdle {
				lc.waiting = now
				l.conns.MoveToBack(e)
			}
		}
	case http.StateHijacked, http.StateClosed:
		if e, ok := l.at[c]; ok {
			l.conns.Remove(e)
			delete(l.at, c)
		}
	}
	l.mu.Unlock()
	if evict != nil {
		// Closing ends the connection's serve loop, which reports
		// StateClosed and gives its place back.
		_ = evict.Close()
		if l.onClose != nil {
			l.onClose(reason)
		}
	}
}

// longestWaiting takes the connection to close for newcomer out of the
// count and returns it with the reason, at now in Unix nanoseconds: the
// one that has waited longest without a request, if for youngWait
// (CloseEvicted); else the one reading the slowest body (CloseSlowBody);
// else the one that has waited longest, however briefly (CloseEvicted);
// else newcomer itself (CloseRefused). A connection that has just opened
// or finished a request goes after a slow body: closing the slow body
// makes its client reconnect, and while the trickling clients' new
// connections each closed the longest waiting, they closed ordinary
// clients' connections before their requests were read (a third of them
// under 1,100 trickling clients). Only a flood of connections scans,
// and at most max of them.
func (l *connLimit) longestWaiting(newcomer net.Conn, now int64) (net.Conn, string) {
	var (
		oldest, slowest *list.Element
		slowestRate     float64
	)
	for e := l.conns.Front(); e != nil; e = e.Next() {
		lc := e.Value.(*limitedConn)
		switch {
		case lc.c == newcomer:
		case !lc.busy && now-lc.waiting >= int64(youngWait):
			l.take(e)
			return lc.c, CloseEvicted
		case !lc.busy:
			if oldest == nil {
				oldest = e
			}
		case lc.st != nil:
			if rate, ok := lc.st.slowBody(now); ok && (slowest == nil || rate < slowestRate) {
				slowest, slowestRate = e, rate
			}
		}
	}
	switch {
	case slowest != nil:
		l.take(slowest)
		return slowest.Value.(*limitedConn).c, CloseSlowBody
	case oldest != nil:
		l.take(oldest)
		return oldest.Value.(*limitedConn).c, CloseEvicted
	}
	if e, ok := l.at[newcomer]; ok {
		l.take(e)
	}
	return newcomer, CloseRefused
}

// youngWait is how long a connection waits for a request before it goes
// ahead of a slow body for closing: ample for a client to send its
// request once connected.
const youngWait = time.Second

// take removes e's connection from the count.
func (l *connLimit) take(e *list.Element) {
	l.conns.Remove(e)
	delete(l.at, e.Value.(*limitedConn).c)
}

// What makes an HTTP/1.1 body slow enough for its connection to be
// closed for a newcomer when every place is busy: the handler has spent
// slowBodyAfter inside Read on it and has had less than slowBodyRate a
// second of that time. The same bar as shed.Budget's for evicting a body
// from memory: far below any client on a real link, far above a trickle.
const (
	slowBodyAfter = time.Second
	slowBodyRate  = 128 << 10
)

// bodyRead is what a connection's handler has read of its current
// HTTP/1.1 request body, kept by rateBody and read by connLimit.
type bodyRead struct {
	since atomic.Int64 // Unix nanoseconds the Read under way began; 0 outside Read
	nanos atomic.Int64 // time spent in the body's Reads that have returned
	bytes atomic.Int64
}

// slowBody reports whether c's handler is, at now, blocked reading a slow
// body, and that body's rate in bytes a second of Read.
func (st *connState) slowBody(now int64) (float64, bool) {
	since := st.body.since.Load()
	if since == 0 {
		return 0, false
	}
	in := time.Duration(st.body.nanos.Load() + now - since)
	if in < slowBodyAfter {
		return 0, false
	}
	rate := float64(st.body.bytes.Load()) / in.Seconds()
	return rate, rate < slowBodyRate
}
