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
	max int

	mu   sync.Mutex
	open int
	// waiting holds the connections without a request in progress,
	// longest waiting first; at indexes each into it.
	waiting list.List
	at      map[net.Conn]*list.Element
}

func newConnLimit(max int) *connLimit {
	return &connLimit{max: max, at: make(map[net.Conn]*list.Element)}
}

// state is the server's ConnState hook.
func (l *connLimit) state(c net.Conn, s http.ConnState) {
	var evict net.Conn
	l.mu.Lock()
	switch s {
	case http.StateNew:
		l.open++
		l.at[c] = l.waiting.PushBack(c)
		if l.open > l.max {
			// The front is the longest waiting; the new connection itself
			// when no other is waiting.
			evict = l.waiting.Remove(l.waiting.Front()).(net.Conn)
			delete(l.at, evict)
		}
	case http.StateIdle:
		if _, ok := l.at[c]; !ok {
			l.at[c] = l.waiting.PushBack(c)
		}
	case http.StateActive:
		l.unwait(c)
	case http.StateHijacked, http.StateClosed:
		l.open--
		l.unwait(c)
	}
	l.mu.Unlock()
	if evict != nil {
		// Closing ends the connection's serve loop, which reports
		// StateClosed and gives its place back.
		_ = evict.Close()
	}
}

func (l *connLimit) unwait(c net.Conn) {
	if e, ok := l.at[c]; ok {
		l.waiting.Remove(e)
		delete(l.at, c)
	}
}
