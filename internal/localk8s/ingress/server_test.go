package ingress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

// TestShutdownDrains checks the owner's stop order: the listener closes
// first, a request in flight still completes, then Serve returns.
func TestShutdownDrains(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	b := startBackend(t, "127.0.4.1", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "late")
	})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the backend's cleanup
	var eps endpointSet
	eps.set("web", b.addr)
	h := New(Config{Endpoints: eps.get})
	if err := h.Update([]*networkingv1.Ingress{ingress("web", rule("", path("/", prefix, "web")))}); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://" + s.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp.StatusCode, string(body), err}
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()

	// Poll until the listener is gone; the request is still held.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.Addr().String(), time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		// A reset is a connection queued as the listener closed.
		if err == nil {
			conn.Close()
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial after Shutdown: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("still accepting 30s after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	unblock()
	if r := <-got; r.err != nil || r.code != 200 || r.body != "late" {
		t.Errorf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}

func TestListenPortClash(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.4.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	_, err = Listen(addr, New(Config{}), nil)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a taken port: %v, want EADDRINUSE", err)
	}
	if want := "ingress: listen on " + addr.String(); len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Errorf("error %q does not start with %q", err, want)
	}
}
