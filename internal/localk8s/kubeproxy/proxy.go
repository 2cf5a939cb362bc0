package kubeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by [Proxy.Serve] after [Proxy.Close], as
// [net/http.ErrServerClosed] is by a closed server.
var ErrClosed = errors.New("kubeproxy: proxy closed")

// DefaultDialTimeout bounds the connection to an endpoint when
// [Config.DialTimeout] is zero.
const DefaultDialTimeout = 10 * time.Second

// Config tunes a [Proxy]. The zero value is valid; every field documents
// its default, and a negative DialTimeout is invalid.
type Config struct {
	// Logger receives one record per failed connection. If nil, records
	// are discarded.
	Logger *slog.Logger
	// Rand picks the endpoint of each new connection. It is used by the
	// accept loop alone, so it need not be safe for concurrent use; with a
	// seeded source the sequence of picks is deterministic. If nil, a
	// randomly seeded PCG is used.
	Rand *rand.Rand
	// DialTimeout bounds the connection to the chosen endpoint. Zero
	// means DefaultDialTimeout (10s).
	DialTimeout time.Duration
}

// Validate reports a field of c out of range.
func (c Config) Validate() error {
	if c.DialTimeout < 0 {
		return fmt.Errorf("kubeproxy: DialTimeout %v is negative", c.DialTimeout)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// Proxy is a Service's TCP front door. Create it with [Listen], run it
// with [Proxy.Serve], stop it with [Proxy.Close].
type Proxy struct {
	ln     *net.TCPListener
	addr   netip.AddrPort
	log    *slog.Logger
	rand   *rand.Rand
	dialer net.Dialer

	// targets is the current endpoint set; the accept loop reads it
	// without a lock.
	targets atomic.Pointer[[]target]

	// ctx is cancelled by Close, aborting dials in progress.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	counters map[netip.AddrPort]*atomic.Uint64 // kept across endpoint changes
	conns    map[*net.TCPConn]struct{}
	closed   bool
	serving  bool
	wg       sync.WaitGroup // the accept loop and every connection's goroutines
}

// target is one endpoint and its connection counter.
type target struct {
	addr  netip.AddrPort
	count *atomic.Uint64
}

// Listen binds the Service address. The proxy has no endpoints until
// [Proxy.SetEndpoints] and accepts nothing until [Proxy.Serve]. A bind
// failure names the address and wraps the system error, so
// errors.Is(err, syscall.EADDRINUSE) tells a port clash.
func Listen(addr netip.AddrPort, cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("kubeproxy: listen on %s: %w", addr, err)
	}
	p := &Proxy{
		ln:       ln,
		addr:     ln.Addr().(*net.TCPAddr).AddrPort(),
		log:      cfg.Logger,
		rand:     cfg.Rand,
		counters: make(map[netip.AddrPort]*atomic.Uint64),
		conns:    make(map[*net.TCPConn]struct{}),
	}
	p.dialer.Timeout = cfg.DialTimeout
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.targets.Store(new([]target))
	return p, nil
}

// Addr is the address the proxy listens on (with the port the system
// chose when Listen was given port 0).
func (p *Proxy) Addr() netip.AddrPort { return p.addr }

// SetEndpoints replaces the ready endpoints new connections are spread
// over. Established connections are left alone. The slice is copied.
func (p *Proxy) SetEndpoints(eps []netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := make([]target, len(eps))
	for i, ep := range eps {
		c, ok := p.counters[ep]
		if !ok {
			c = new(atomic.Uint64)
			p.counters[ep] = c
		}
		ts[i] = target{addr: ep, count: c}
	}
	p.targets.Store(&ts)
}

// Connections reports how many connections have been sent to each
// endpoint the proxy has ever had.
func (p *Proxy) Connections() map[netip.AddrPort]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[netip.AddrPort]uint64, len(p.counters))
	for ep, c := range p.counters {
		m[ep] = c.Load()
	}
	return m
}

// pick chooses the endpoint of a new connection uniformly at random. Only
// the accept loop calls it, which is what lets p.rand go unlocked.
func (p *Proxy) pick() (target, bool) {
	ts := *p.targets.Load()
	switch len(ts) {
	case 0:
		return target{}, false
	case 1:
		return ts[0], true
	}
	return ts[p.rand.IntN(len(ts))], true
}

// Serve accepts connections until [Proxy.Close] and then returns
// ErrClosed. It may be called once.
func (p *Proxy) Serve() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.serving {
		p.mu.Unlock()
		return errors.New("kubeproxy: Serve called twice")
	}
	p.serving = true
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	var backoff time.Duration
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if p.ctx.Err() != nil {
				return ErrClosed
			}
			// Out of file descriptors and the like: back off as net/http
			// does, rather than spin, and keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("kubeproxy: accept failed", "addr", p.addr, "retry_in", backoff, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
				return ErrClosed
			}
			continue
		}
		backoff = 0
		t, ok := p.pick()
		if !ok {
			p.log.Debug("kubeproxy: no endpoints, connection rejected", "addr", p.addr, "client", c.RemoteAddr())
			reset(c)
			continue
		}
		t.count.Add(1)
		if !p.track(c) {
			reset(c)
			return ErrClosed
		}
		p.wg.Add(1)
		go p.handle(c, t.addr)
	}
}

// track registers a connection for Close; it reports false once the proxy
// is closed, and the caller must then close c itself.
func (p *Proxy) track(c *net.TCPConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...*net.TCPConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// handle connects client to ep and copies bytes both ways until both
// sides have finished or either fails.
func (p *Proxy) handle(client *net.TCPConn, ep netip.AddrPort) {
	defer p.wg.Done()
	nc, err := p.dialer.DialContext(p.ctx, "tcp", ep.String())
	if err != nil {
		p.log.Debug("kubeproxy: endpoint dial failed", "addr", p.addr, "endpoint", ep, "err", err)
		p.untrack(client)
		reset(client)
		return
	}
	up := nc.(*net.TCPConn)
	if !p.track(up) {
		p.untrack(client)
		reset(client)
		reset(up)
		return
	}
	defer p.untrack(client, up)

	errc := make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		errc <- pipe(up, client)
	}()
	err = pipe(client, up)
	if err != nil {
		// A failure in one direction ends both, as a reset would for a
		// connection that was only NATed; closing also unblocks the
		// other copy.
		reset(client)
		reset(up)
		<-errc
		return
	}
	if err := <-errc; err != nil {
		reset(client)
		reset(up)
		return
	}
	client.Close()
	up.Close()
}

// pipe copies src to dst until src's EOF, then half-closes dst so the
// peer sees the EOF too while the other direction keeps flowing.
func pipe(dst, src *net.TCPConn) error {
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	return dst.CloseWrite()
}

// reset closes c with an RST instead of a FIN, which is what a client of a
// rejecting or refusing Service sees.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// Close stops accepting, closes every proxied connection, and waits for
// the proxy's goroutines to finish.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	p.cancel()
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("kubeproxy: close listener %s: %w", p.addr, err)
	}
	return nil
}
