package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// connLimit keeps at most max connections open. Each connection costs
// memory whether it works or not (buffers, a goroutine, TLS state), so
// an unbounded number of idle keep-alive or silent connections can take
// a replica past its memory limit. A connection beyond the limit closes
// the one that has waited longest without a request in progress (idle
// between requests, or new and not yet sending one); a connection serving
// a request is never closed for it. When every connection is busy, the
// new one is closed at once.
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
	busy bool
}

func newConnLimit(max int, onClose func(reason string)) *connLimit {
	return &connLimit{max: max, onClose: onClose, at: make(map[net.Conn]*list.Element)}
}

// state is the server's ConnState hook.
func (l *connLimit) state(c net.Conn, s http.ConnState) {
	var evict net.Conn
	l.mu.Lock()
	switch s {
	case http.StateNew:
		l.at[c] = l.conns.PushBack(&limitedConn{c: c})
		if l.conns.Len() > l.max {
			evict = l.longestWaiting()
		}
	case http.StateIdle, http.StateActive:
		if e, ok := l.at[c]; ok {
			e.Value.(*limitedConn).busy = s == http.StateActive
			if s == http.StateIdle {
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
			reason := CloseEvicted
			if evict == c {
				reason = CloseRefused
			}
			l.onClose(reason)
		}
	}
}

// longestWaiting takes the connection that has waited longest without a
// request out of the count and returns it: the new connection itself,
// at the back, when every other is busy. Only a flood of connections
// scans, and at most max of them.
func (l *connLimit) longestWaiting() net.Conn {
	for e := l.conns.Front(); e != nil; e = e.Next() {
		if lc := e.Value.(*limitedConn); !lc.busy {
			l.conns.Remove(e)
			delete(l.at, lc.c)
			return lc.c
		}
	}
	return nil
}
