// Package blackhole starts, for a test, a TCP listener that accepts every
// connection and never answers: the replica that is up but hung, which
// only a timeout can judge.
package blackhole

import (
	"net"
	"sync"
	"testing"
)

// Listen listens on addr (host:port; port 0 picks one), accepts every
// connection and never reads or writes, until the test ends; then it
// closes the listener and every accepted connection. It returns the
// address it listens on.
func Listen(t testing.TB, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("blackhole: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
