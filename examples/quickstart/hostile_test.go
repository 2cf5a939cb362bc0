package main_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCutBodyIsNotPassedOnAsComplete: a backend that promises 1000 bytes,
// sends 19 and resets must not make /hello look like a complete answer.
func TestCutBodyIsNotPassedOnAsComplete(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if req.URL.Path == "/ping" && req.Header.Get("X-Request-ID") == "cut-me" {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly the first part")
					c.(*net.TCPConn).SetLinger(0) // reset
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong")
			}(c)
		}
	}()
	_, app, _ := serving(t, build(t), "BACKEND="+ln.Addr().String(), "DRAIN_DELAY=-1s")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, app+"/hello", nil)
	req.Header.Set("X-Request-ID", "cut-me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return // the answer broke before its headers: not complete either
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK {
		t.Fatalf("a body cut short upstream came back as a complete 200 (%d bytes: %q)", len(body), body)
	}
}

// TestCallerWithNoTimeLeftGets504: X-Request-Timeout-Ms: 0 means the
// caller has already given up. The call never leaves, and the answer says
// timeout, not that the backend is down.
func TestCallerWithNoTimeLeftGets504(t *testing.T) {
	var hits atomic.Int64
	backend := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-ID") == "no-time" {
			hits.Add(1)
		}
		io.WriteString(w, "pong")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(ln)
	defer backend.Close()
	_, app, admin := serving(t, build(t), "BACKEND="+ln.Addr().String(), "DRAIN_DELAY=-1s")
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, app+"/hello", nil)
		req.Header.Set("X-Request-ID", "no-time")
		req.Header.Set("X-Request-Timeout-Ms", "0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("X-Request-Timeout-Ms: 0 answered %d, want 504", resp.StatusCode)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the backend saw %d calls made for requests whose time had run out", n)
	}
	_, metrics, _ := get(t, admin+"/metrics")
	if strings.Contains(metrics, `route="/hello"} `) && strings.Contains(metrics, `code="502"`) {
		t.Errorf("/metrics counts 502s for requests that ran out of time")
	}
}
