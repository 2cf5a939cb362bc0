package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/server"
)

// limitServer serves h under cfg on loopback and returns its address.
// onState, when set, sees every connection state change after the
// server's own hook.
func limitServer(t *testing.T, cfg server.Config, h http.Handler, onState func(net.Conn, http.ConnState)) string {
	t.Helper()
	srv := server.New(cfg, h)
	if base := srv.ConnState; onState != nil {
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			base(c, s)
			onState(c, s)
		}
	}
	return serveOn(t, srv)
}

// rawConn is one HTTP/1.1 keep-alive connection driven by hand.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{c: c, r: bufio.NewReader(c)}
}

// get sends one request and reads its response; an error means the
// server closed the connection.
func (rc *rawConn) get(path string) (int, error) {
	_ = rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(rc.c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// closed reports whether the server has closed the connection, waiting
// up to d for it.
func (rc *rawConn) closed(d time.Duration) bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	_, err := rc.r.Peek(1)
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// closeCounter counts the connections a server reports closing, by
// reason (Config.OnClose).
type closeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (cc *closeCounter) add(reason string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.n == nil {
		cc.n = map[string]int{}
	}
	cc.n[reason]++
}

func (cc *closeCounter) get(reason string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.n[reason]
}

// wait waits until want connections were reported closed for reason
// (the server reports after it closed them), failing if it sees more
// or 30s pass.
func (cc *closeCounter) wait(t *testing.T, reason string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for cc.get(reason) < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := cc.get(reason); got != want {
		t.Errorf("%d connections reported closed as %q, want %d", got, reason, want)
	}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
}

// Idle keep-alive connections make room for new ones, oldest first, and
// a replica holds no more than MaxConns.
func TestMaxConnsClosesTheLongestIdle(t *testing.T) {
	const limit = 4
	// The server marks a connection idle after the client has its
	// response; each request here waits for that, so the order in which
	// connections went idle is the order they were used.
	idle := make(chan string, 64)
	addr := limitServer(t, server.Config{MaxConns: limit}, okHandler(), func(c net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			idle <- c.RemoteAddr().String()
		}
	})
	use := func(rc *rawConn) (int, error) {
		code, err := rc.get("/")
		if err != nil {
			return code, err
		}
		for want := rc.c.LocalAddr().String(); ; {
			select {
			case got := <-idle:
				if got == want {
					return code, nil
				}
			case <-time.After(30 * time.Second):
				return code, errors.New("the server never marked the connection idle")
			}
		}
	}
	var conns []*rawConn
	for i := range limit {
		rc := dialRaw(t, addr)
		if code, err := use(rc); err != nil || code != 200 {
			t.Fatalf("connection %d: %d, %v", i, code, err)
		}
		conns = append(conns, rc)
	}
	// Each new connection closes the one idle longest.
	for i := range limit {
		rc := dialRaw(t, addr)
		if code, err := use(rc); err != nil || code != 200 {
			t.Fatalf("new connection %d: %d, %v", i, code, err)
		}
		if !conns[i].closed(30 * time.Second) {
			t.Fatalf("connection %d, the longest idle, is still open after new connection %d", i, i)
		}
		for j := i + 1; j < limit; j++ {
			if conns[j].closed(10 * time.Millisecond) {
				t.Fatalf("connection %d closed before the older %d", j, i)
			}
		}
		conns = append(conns, rc)
	}
	// The survivors still serve.
	for i, rc := range conns[limit:] {
		if code, err := rc.get("/"); err != nil || code != 200 {
			t.Fatalf("kept connection %d: %d, %v", i, code, err)
		}
	}
}

// A connection serving a request is never closed to make room; with
// every place busy the new connection is closed instead.
func TestMaxConnsKeepsBusyConnections(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	var closes closeCounter
	addr := limitServer(t, server.Config{MaxConns: 2, OnClose: closes.add}, h, nil)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		rc := dialRaw(t, addr)
		wg.Go(func() { codes[i], errs[i] = rc.get("/hold") })
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the held requests never reached the handler")
		}
	}
	extra := dialRaw(t, addr)
	if code, err := extra.get("/"); err == nil {
		t.Errorf("a third connection with both places busy was served (%d); want it closed", code)
	}
	closes.wait(t, server.CloseRefused, 1)
	close(release)
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || codes[i] != 200 {
			t.Errorf("held request %d: %d, %v; want 200", i, codes[i], errs[i])
		}
	}
	if n := closes.get(server.CloseEvicted); n != 0 {
		t.Errorf("%d connections reported evicted, want none", n)
	}
}

// Clients that send a request's headers and then its body a byte at a
// time cannot keep a client out by holding every place: with all of them
// busy, the connection whose handler has waited longest in Read on the
// slowest body makes room, and the newcomer is served. Before, each
// newcomer was refused for as long as the trickles lasted.
func TestMaxConnsClosesTheSlowestBodyForANewcomer(t *testing.T) {
	const limit = 2
	entered := make(chan struct{}, limit)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			entered <- struct{}{}
			_, _ = io.Copy(io.Discard, r.Body)
		}
		io.WriteString(w, "ok")
	})
	var closes closeCounter
	addr := limitServer(t, server.Config{MaxConns: limit, OnClose: closes.add, BodyRateGrace: time.Minute}, h, nil)
	var slow []*rawConn
	for range limit {
		rc := dialRaw(t, addr)
		if _, err := fmt.Fprintf(rc.c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx"); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, rc)
	}
	for range limit {
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the slow uploads never reached the handler")
		}
	}
	// A newcomer is refused until a body has been waited on for a second;
	// then one makes room.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rc := dialRaw(t, addr)
		code, err := rc.get("/")
		_ = rc.c.Close()
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no newcomer served while %d connections trickle their bodies (last: %d, %v)", limit, code, err)
		}
		time.Sleep(10 * time.Millisecond) // a poll, not a wait for time to pass
	}
	closes.wait(t, server.CloseSlowBody, 1)
	open := 0
	for _, rc := range slow {
		if !rc.closed(10 * time.Millisecond) {
			open++
		}
	}
	if open != limit-1 {
		t.Errorf("%d of the %d slow uploads still open, want %d", open, limit, limit-1)
	}
}

// An adversary's flood of silent connections cannot keep a client out:
// each new connection closes the longest silent one, and the client's
// request is served.
func TestMaxConnsSilentFlood(t *testing.T) {
	const limit, flood = 16, 400
	var closes closeCounter
	addr := limitServer(t, server.Config{MaxConns: limit, ReadHeaderTimeout: time.Minute, OnClose: closes.add}, okHandler(), nil)
	var silent []*rawConn
	for range flood {
		silent = append(silent, dialRaw(t, addr))
	}
	c := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer c.Transport.(*http.Transport).CloseIdleConnections()
	for i := range 20 {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("request %d beside %d silent connections: %v", i, flood, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "ok") {
			t.Fatalf("request %d: %s %q", i, resp.Status, body)
		}
	}
	// All but the last limit-1 silent connections (and the client's) were
	// closed; the server holds no more than its limit.
	open := 0
	for _, rc := range silent {
		if !rc.closed(5 * time.Millisecond) {
			open++
		}
	}
	if open > limit {
		t.Errorf("%d of %d silent connections are still open, want at most %d", open, flood, limit)
	}
	// Each silent connection closed was reported evicted (just after its
	// close), none refused.
	deadline := time.Now().Add(30 * time.Second)
	for closes.get(server.CloseEvicted) < flood-open && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := closes.get(server.CloseEvicted); n < flood-open {
		t.Errorf("%d connections reported evicted, want at least the %d silent ones closed", n, flood-open)
	}
	if n := closes.get(server.CloseRefused); n != 0 {
		t.Errorf("%d connections reported refused, want none", n)
	}
}
