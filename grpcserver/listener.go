package grpcserver

import (
	"net"
	"sync"
)

// connListener is the listener one generation's grpc.Server serves: its
// Accept yields the connections the accept loop hands it. Closing it,
// which grpc.Server does when it stops, leaves the real listener open.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// put hands c to the server accepting on l, waiting until it has taken
// it, and reports false if l closed first (c is then still the caller's).
func (l *connListener) put(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}
