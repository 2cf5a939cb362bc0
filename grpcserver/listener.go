package grpcserver

import (
	"net"
	"sync"
	"time"
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

// trackedConn calls taken once, at the first call grpc.Server makes on
// the connection after accepting it. grpc.Server checks whether it is
// stopping between Accept and that first call (SetDeadline, or Close
// when it is stopping); waiting for taken before GracefulStop closes the
// window in which a connection accepted just before the stop would be
// closed without a word instead of served and sent GOAWAY.
type trackedConn struct {
	net.Conn
	once   sync.Once
	taken  func()
	closed func() // at Close, which grpc-go calls however the connection ends
}

func (c *trackedConn) mark() { c.once.Do(c.taken) }

func (c *trackedConn) SetDeadline(t time.Time) error { c.mark(); return c.Conn.SetDeadline(t) }

func (c *trackedConn) Read(p []byte) (int, error)  { c.mark(); return c.Conn.Read(p) }
func (c *trackedConn) Write(p []byte) (int, error) { c.mark(); return c.Conn.Write(p) }
func (c *trackedConn) Close() error {
	c.mark()
	c.closed()
	return c.Conn.Close()
}
