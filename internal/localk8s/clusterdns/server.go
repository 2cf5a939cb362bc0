package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults of Config.
const (
	DefaultAddr   = "127.0.2.10:53"
	DefaultDomain = "cluster.local"
	DefaultTTL    = 5 // seconds, the default of the CoreDNS kubernetes plugin
	// DefaultHostResolvConf is where the default upstreams are read.
	DefaultHostResolvConf = "/etc/resolv.conf"
)

// defaultForwardTimeout bounds one exchange with one upstream.
const defaultForwardTimeout = 2 * time.Second

// Config configures a Server. The zero value is valid; every field
// documents its default.
type Config struct {
	// Addr is the address served over both UDP and TCP. Empty means
	// DefaultAddr. Port 0 picks a free port, the same for both.
	Addr string
	// Domain is the cluster domain. Empty means DefaultDomain.
	Domain string
	// TTL of every answer, in seconds. Zero means DefaultTTL.
	TTL uint32
	// Upstreams are the servers ("IP" or "IP:port", port 53 by default)
	// that answer names outside Domain, tried in order over the transport
	// the query came on. Nil means the nameservers of HostResolvConf, read
	// once at Start; an empty slice means none. Without any, such names get
	// SERVFAIL. The server's own address is left out, lest it loop.
	Upstreams []string
	// HostResolvConf is the file the default Upstreams come from. Empty
	// means DefaultHostResolvConf.
	HostResolvConf string
	// Logger receives the server's logs. Nil means they are discarded.
	Logger *slog.Logger
}

// ErrInvalidConfig is wrapped by the errors Start returns for a bad Config.
var ErrInvalidConfig = errors.New("invalid config")

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	zone      zone
	upstreams []string
	// forwardTimeout bounds one exchange with one upstream.
	forwardTimeout time.Duration
	log            *slog.Logger
	table          atomic.Pointer[index]

	// ctx ends at Close, cutting short the exchanges with upstreams that
	// the listeners wait for.
	ctx    context.Context
	cancel context.CancelFunc

	addr      netip.AddrPort
	udp, tcp  *dns.Server
	serveErrs chan error
	closeOnce sync.Once
	closeErr  error
}

// withDefaults returns c with its zero fields replaced by their defaults.
// Upstreams stays nil: newServer reads them from HostResolvConf, where a
// missing file is a warning rather than an error.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.HostResolvConf == "" {
		c.HostResolvConf = DefaultHostResolvConf
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// newServer validates cfg and builds a Server without listeners.
func newServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	addr, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("clusterdns: %w: Addr %q is not IP:port: %w", ErrInvalidConfig, cfg.Addr, err)
	}
	domain := strings.ToLower(dns.Fqdn(cfg.Domain))
	if _, ok := dns.IsDomainName(domain); !ok || domain == "." {
		return nil, fmt.Errorf("clusterdns: %w: Domain %q is not a domain name", ErrInvalidConfig, cfg.Domain)
	}
	log := cfg.Logger
	ups := cfg.Upstreams
	if ups == nil {
		ups, err = readNameservers(cfg.HostResolvConf)
		if err != nil {
			log.Warn("no upstream DNS servers: names outside the cluster domain will fail",
				"file", cfg.HostResolvConf, "error", err)
		}
	}
	upstreams := make([]string, 0, len(ups))
	for _, u := range ups {
		ap, err := parseUpstream(u)
		if err != nil {
			return nil, fmt.Errorf("clusterdns: %w: upstream %q: %w", ErrInvalidConfig, u, err)
		}
		if ap == addr {
			continue // forwarding to ourselves would loop
		}
		upstreams = append(upstreams, ap.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		zone:           zone{name: domain, ttl: cfg.TTL, ns: addr.Addr().Unmap()},
		upstreams:      upstreams,
		forwardTimeout: defaultForwardTimeout,
		log:            log,
		ctx:            ctx,
		cancel:         cancel,
		addr:           addr,
	}, nil
}

// parseUpstream accepts "IP" (port 53) and "IP:port".
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, errors.New("want IP or IP:port")
	}
	return netip.AddrPortFrom(a, 53), nil
}

// Start binds cfg.Addr over UDP and TCP and serves until Close. Names under
// the cluster domain get SERVFAIL until the first Update.
func Start(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.start()
}

// start binds and serves a Server from newServer.
func (s *Server) start() (*Server, error) {
	pc, ln, err := listen(s.addr)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.addr = netip.MustParseAddrPort(pc.LocalAddr().String())

	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	h := dns.HandlerFunc(s.serveDNS)
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify}
	s.serveErrs = make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() { s.serveErrs <- srv.ActivateAndServe() }()
	}
	// Wait until both serve, so that Close can shut them down; a server
	// that fails to start returns before notifying.
	var startErr error
	running := 0
	for range 2 {
		select {
		case <-started:
			running++
		case err := <-s.serveErrs:
			startErr = errors.Join(startErr, err)
		}
	}
	if startErr != nil {
		s.cancel()
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			_ = srv.Shutdown() // "not started" for the one that failed
		}
		for range running {
			<-s.serveErrs
		}
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("clusterdns: serve %s: %w", s.addr, startErr)
	}
	s.log.Info("cluster DNS serving", "addr", s.addr.String(), "domain", s.zone.name, "upstreams", s.upstreams)
	return s, nil
}

// listen binds UDP and TCP on the same address; for port 0 it retries until
// the port the kernel picks for UDP is free for TCP too.
func listen(addr netip.AddrPort) (net.PacketConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr.String())
		if err != nil {
			return nil, nil, fmt.Errorf("clusterdns: %w", err)
		}
		bound := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", bound)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if addr.Port() != 0 || attempt == 10 {
			return nil, nil, fmt.Errorf("clusterdns: %w", err)
		}
	}
}

// Addr is the address the server listens on, over UDP and TCP.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Update makes t the table the server answers from. The server keeps a copy:
// the caller may change t afterwards.
func (s *Server) Update(t Table) {
	s.table.Store(newIndex(t, s.zone.name, time.Now()))
}

// Close stops both listeners and waits for queries in flight, cutting short
// the ones waiting on an upstream.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		var errs []error
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if err := srv.Shutdown(); err != nil {
				errs = append(errs, err)
			}
		}
		for range 2 {
			if err := <-s.serveErrs; err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("clusterdns: close: %w", err)
		}
	})
	return s.closeErr
}

// serveDNS is the handler of both listeners.
func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	m := s.respond(s.ctx, req, network)
	if network == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("cluster DNS write failed", "remote", w.RemoteAddr().String(), "error", err)
	}
}

// respond computes the reply to req received over network ("udp" or
// "tcp"): from the table for the cluster domain and the addresses it knows,
// from an upstream for the rest.
func (s *Server) respond(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	if len(req.Question) != 1 {
		return reply(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name))
	tab := s.table.Load()
	var m *dns.Msg
	if s.zone.inZone(name) {
		m = s.zone.answer(tab, req)
	} else if r, ok := s.zone.reverse(tab, req); ok {
		m = r
	} else {
		return s.forward(ctx, req, network)
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
	}
	m.Compress = true
	return m
}

// forward relays req to the upstreams in order, over the transport it came
// on, and returns the first reply; SERVFAIL when none answers.
func (s *Server) forward(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	for _, up := range s.upstreams {
		resp, err := s.exchange(ctx, req, network, up)
		if err == nil {
			return resp
		}
		s.log.Debug("cluster DNS upstream failed", "upstream", up, "name", req.Question[0].Name, "error", err)
		if ctx.Err() != nil {
			break
		}
	}
	return reply(req, dns.RcodeServerFailure)
}

// exchange asks one upstream. The client library bounds the exchange by
// deadlines only, so the end of ctx is turned into a past deadline.
func (s *Server) exchange(ctx context.Context, req *dns.Msg, network, upstream string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: s.forwardTimeout}
	conn, err := c.DialContext(ctx, upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, req, conn)
	return resp, err
}
