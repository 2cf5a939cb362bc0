package kubeproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a TCP server on loopback that runs serve for each
// connection and counts them.
type backend struct {
	name string
	addr netip.AddrPort
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	count int
	conns map[net.Conn]struct{}
}

// startBackend listens on ip (port chosen by the system) and stops with
// the test.
func startBackend(t testing.TB, ip string, serve func(b *backend, c net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen backend on %s: %v", ip, err)
	}
	b := &backend{ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), conns: map[net.Conn]struct{}{}}
	b.name = b.addr.String()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.count++
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				serve(b, c)
				c.Close()
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *backend) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// greet writes the backend's name and closes.
func greet(b *backend, c net.Conn) { io.WriteString(c, b.name) }

// echo answers every line with "name: line".
func echo(b *backend, c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if _, err := fmt.Fprintf(c, "%s: %s\n", b.name, sc.Text()); err != nil {
			return
		}
	}
}

// startProxy listens on a free port of 127.0.0.1 and serves until the test
// ends.
func startProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve() }()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return p
}

func dial(t testing.TB, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// readAll reads one connection of greet to its end.
func readAll(t testing.TB, p *Proxy) (string, error) {
	t.Helper()
	c := dial(t, p)
	defer c.Close()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestSpreadIsUniform(t *testing.T) {
	var bs []*backend
	var eps []netip.AddrPort
	for i := 1; i <= 4; i++ {
		b := startBackend(t, fmt.Sprintf("127.0.3.%d", i), greet)
		bs = append(bs, b)
		eps = append(eps, b.addr)
	}
	p := startProxy(t, Config{Rand: rand.New(rand.NewPCG(1, 2))})
	p.SetEndpoints(eps)

	const n = 800
	seen := map[string]int{}
	for range n {
		got, err := readAll(t, p)
		if err != nil {
			t.Fatalf("read through proxy: %v", err)
		}
		seen[got]++
	}
	conns := p.Connections()
	expected := float64(n) / float64(len(bs))
	chi2 := 0.0
	for _, b := range bs {
		if seen[b.name] != b.accepted() || uint64(b.accepted()) != conns[b.addr] {
			t.Errorf("%s: client saw %d, backend accepted %d, proxy counted %d", b.name, seen[b.name], b.accepted(), conns[b.addr])
		}
		d := float64(b.accepted()) - expected
		chi2 += d * d / expected
	}
	// 3 degrees of freedom: P(chi2 > 16.27) = 0.001 for a uniform pick.
	if chi2 > 16.27 {
		t.Errorf("chi-square %.2f over %v: not uniform", chi2, seen)
	}
	t.Logf("spread %v, chi-square %.2f", seen, chi2)
}

func TestPickIsDeterministicGivenRand(t *testing.T) {
	eps := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.3.1:80"),
		netip.MustParseAddrPort("127.0.3.2:80"),
		netip.MustParseAddrPort("127.0.3.3:80"),
	}
	seq := func() []netip.AddrPort {
		p, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), Config{Rand: rand.New(rand.NewPCG(7, 7))})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.SetEndpoints(eps)
		var out []netip.AddrPort
		for range 50 {
			tg, ok := p.pick()
			if !ok {
				t.Fatal("no pick with endpoints set")
			}
			out = append(out, tg.addr)
		}
		return out
	}
	a, b := seq(), seq()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("pick %d differs between runs with the same seed: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestEstablishedConnectionSurvivesEndpointChange(t *testing.T) {
	a := startBackend(t, "127.0.3.1", echo)
	b := startBackend(t, "127.0.3.2", echo)
	p := startProxy(t, Config{})
	p.SetEndpoints([]netip.AddrPort{a.addr})

	c := dial(t, p)
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(msg string) string {
		t.Helper()
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read %q: %v", msg, err)
		}
		return strings.TrimSpace(line)
	}
	if got, want := roundTrip("one"), a.name+": one"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The endpoint leaves the set; conntrack keeps the flow on it.
	p.SetEndpoints([]netip.AddrPort{b.addr})
	if got, want := roundTrip("two"), a.name+": two"; got != want {
		t.Fatalf("after SetEndpoints got %q, want %q", got, want)
	}
	p.SetEndpoints(nil)
	if got, want := roundTrip("three"), a.name+": three"; got != want {
		t.Fatalf("with no endpoints got %q, want %q", got, want)
	}
}

func TestRemovedEndpointGetsNoNewConnections(t *testing.T) {
	a := startBackend(t, "127.0.3.1", greet)
	b := startBackend(t, "127.0.3.2", greet)
	p := startProxy(t, Config{Rand: rand.New(rand.NewPCG(3, 4))})
	p.SetEndpoints([]netip.AddrPort{a.addr, b.addr})
	for range 20 {
		if _, err := readAll(t, p); err != nil {
			t.Fatal(err)
		}
	}
	before := p.Connections()
	if before[a.addr] == 0 || before[b.addr] == 0 {
		t.Fatalf("20 connections over two endpoints reached only one: %v", before)
	}
	p.SetEndpoints([]netip.AddrPort{b.addr})
	for range 30 {
		got, err := readAll(t, p)
		if err != nil {
			t.Fatal(err)
		}
		if got != b.name {
			t.Fatalf("connection reached %q after it left the endpoints", got)
		}
	}
	after := p.Connections()
	if after[a.addr] != before[a.addr] || after[b.addr] != before[b.addr]+30 {
		t.Errorf("connections before %v, after %v", before, after)
	}
	if got := uint64(a.accepted()); got != before[a.addr] {
		t.Errorf("removed endpoint accepted %d connections, proxy sent %d before removal", got, before[a.addr])
	}
}

// TestRejected covers the two ways a Service connection fails: no ready
// endpoints, and an endpoint that refuses. Neither is retried elsewhere.
func TestRejected(t *testing.T) {
	refusing := freeAddr(t, "127.0.3.9")
	live := startBackend(t, "127.0.3.1", greet)
	tests := []struct {
		name string
		eps  []netip.AddrPort
	}{
		{name: "no endpoints", eps: nil},
		{name: "endpoint refuses", eps: []netip.AddrPort{refusing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, Config{})
			p.SetEndpoints(tt.eps)
			// The reset can arrive before connect(2) returns, failing
			// the dial, or after, failing the first read; a FIN would
			// read as a clean EOF instead.
			var got []byte
			c, err := net.DialTimeout("tcp", p.Addr().String(), 10*time.Second)
			if err == nil {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				got, err = io.ReadAll(c)
				c.Close()
			}
			if len(got) != 0 {
				t.Errorf("read %q from a rejected connection", got)
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("connection ended with %v, want a reset", err)
			}
		})
	}
	if n := live.accepted(); n != 0 {
		t.Errorf("live backend outside the endpoint set got %d connections", n)
	}
}

// freeAddr returns an address on ip where nothing listens.
func freeAddr(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return addr
}

func TestHalfClose(t *testing.T) {
	// The backend reads the whole request, which ends only when the
	// client shuts down its write side, then answers on the same socket.
	b := startBackend(t, "127.0.3.1", func(b *backend, c net.Conn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes: %s", len(req), strings.ToUpper(string(req)))
	})
	p := startProxy(t, Config{})
	p.SetEndpoints([]netip.AddrPort{b.addr})

	c := dial(t, p).(*net.TCPConn)
	defer c.Close()
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if want := "got 5 bytes: HELLO"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCloseEndsConnectionsAndWaits(t *testing.T) {
	b := startBackend(t, "127.0.3.1", echo)
	p, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve() }()
	p.SetEndpoints([]netip.AddrPort{b.addr})

	c := dial(t, p)
	defer c.Close()
	fmt.Fprintln(c, "ping")
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Serve returned %v, want ErrClosed", err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("connection still open after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr().String(), 5*time.Second); err == nil {
		t.Error("proxy still accepting after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.Serve(); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close returned %v, want ErrClosed", err)
	}
	// goleak in TestMain fails the run if a copy goroutine outlived Close.
}

func TestListenPortClash(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.3.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	_, err = Listen(addr, Config{})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a taken port returned %v, want EADDRINUSE", err)
	}
	if !strings.Contains(err.Error(), addr.String()) || !strings.HasPrefix(err.Error(), "kubeproxy: ") {
		t.Errorf("error %q does not name the package and the address %s", err, addr)
	}
}

func TestListenValidates(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // in the error; empty means valid
	}{
		{name: "zero is valid", cfg: Config{}},
		// A negative DialTimeout used to mean the default.
		{name: "negative dial timeout", cfg: Config{DialTimeout: -time.Second}, field: "DialTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), tt.cfg)
			if err == nil {
				defer p.Close()
			}
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Listen: %v, want no error", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Fatalf("Listen: %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

// TestConcurrentConnectionsAndEndpointChanges races new connections
// against endpoint changes; every connection must reach an endpoint of
// some set it could have seen, and the counters must add up.
func TestConcurrentConnectionsAndEndpointChanges(t *testing.T) {
	var eps []netip.AddrPort
	for i := 1; i <= 3; i++ {
		eps = append(eps, startBackend(t, fmt.Sprintf("127.0.3.%d", i), greet).addr)
	}
	p := startProxy(t, Config{})
	sets := [][]netip.AddrPort{eps[:2], eps[1:], eps}
	p.SetEndpoints(sets[0])

	const workers, perWorker = 4, 25
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				// Workers change the set under each other's connections.
				p.SetEndpoints(sets[(w+i)%len(sets)])
				c, err := net.DialTimeout("tcp", p.Addr().String(), 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				b, err := io.ReadAll(c)
				c.Close()
				if err != nil || len(b) == 0 {
					errs <- fmt.Errorf("read %q: %v", b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total uint64
	for _, n := range p.Connections() {
		total += n
	}
	if total != workers*perWorker {
		t.Errorf("proxy counted %d connections, want %d", total, workers*perWorker)
	}
}
