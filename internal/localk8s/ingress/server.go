package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Server timeouts, after nginx's client_header_timeout and
// keepalive_timeout defaults.
const (
	readHeaderTimeout = 60 * time.Second
	idleTimeout       = 75 * time.Second
)

// Server serves a handler on the ingress address. Create it with
// [Listen], run it with [Server.Serve], stop it with [Server.Shutdown] or
// [Server.Close].
type Server struct {
	srv     *http.Server
	ln      net.Listener
	addr    netip.AddrPort
	handler http.Handler
}

// Listen binds addr for h. logger receives the server's errors (nil
// discards them). A bind failure names the address and wraps the system
// error, so errors.Is(err, syscall.EADDRINUSE) tells a port clash.
func Listen(addr netip.AddrPort, h http.Handler, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("ingress: listen on %s: %w", addr, err)
	}
	return &Server{
		ln:      ln,
		addr:    ln.Addr().(*net.TCPAddr).AddrPort(),
		handler: h,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Serve accepts requests until Shutdown or Close, then returns
// http.ErrServerClosed.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return fmt.Errorf("ingress: serve on %s: %w", s.addr, err)
}

// idleCloser is implemented by handlers that pool connections, as
// [Handler] does.
type idleCloser interface{ CloseIdleConnections() }

// Shutdown stops accepting, waits for requests in flight until ctx ends,
// and then closes the handler's idle connections to endpoints.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.closeIdle()
	if err != nil {
		return fmt.Errorf("ingress: shutdown %s: %w", s.addr, err)
	}
	return nil
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.closeIdle()
	if err != nil {
		return fmt.Errorf("ingress: close %s: %w", s.addr, err)
	}
	return nil
}

func (s *Server) closeIdle() {
	if c, ok := s.handler.(idleCloser); ok {
		c.CloseIdleConnections()
	}
}
