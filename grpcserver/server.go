package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/tap"

	"github.com/shoal-dev/shoal/shed"
)

// Defaults applied to zero fields of [Config].
const (
	// DefaultMaxConnAge is the kit's MAX_CONN_AGE: after about a minute
	// (grpc-go jitters it by ±10%) a connection gets GOAWAY and its
	// client reconnects, so connections spread onto new replicas.
	DefaultMaxConnAge = time.Minute
	// DefaultMaxConnAgeGrace is how long RPCs in flight on a connection
	// past its age may take before it is closed.
	DefaultMaxConnAgeGrace = 20 * time.Second
	// DefaultMaxConcurrentStreams bounds the streams of one connection:
	// 100, HTTP/2's recommended least. Every stream has a goroutine
	// until it ends, so a rapid reset (streams opened and cancelled at
	// once, CVE-2023-44487) holds up to this many per connection: at 1000
	// it took the thumbnailer to 307 MiB of RSS once in 20 runs. Shedding
	// is process-wide (shed.DefaultMaxLimit, 500) and decides under load.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxRecvMsgSize is grpc-go's own, 4 MiB.
	DefaultMaxRecvMsgSize = 4 << 20
	// DefaultKeepaliveMinTime is the shortest interval between a
	// client's pings that the server tolerates; faster pingers get
	// GOAWAY ENHANCE_YOUR_CALM ("too_many_pings").
	DefaultKeepaliveMinTime = 10 * time.Second
	// DefaultKeepaliveTime is how long a connection may be silent before
	// the server pings it, and DefaultKeepaliveTimeout how long it waits
	// for the answer before closing it: a vanished client's connection
	// is closed within about 40s.
	DefaultKeepaliveTime    = 30 * time.Second
	DefaultKeepaliveTimeout = 10 * time.Second
	// DefaultRecvBudget is the receive budget of a Server whose Config
	// sets none: 64 MiB, or two calls' shares if that is more.
	DefaultRecvBudget = 64 << 20
	// DefaultRecvTimeout bounds how long a call may take to receive its
	// first message once admitted.
	DefaultRecvTimeout = 10 * time.Second
	// DefaultMaxConns bounds the connections open at once; an idle
	// HTTP/2 connection costs the server about 45 KiB.
	DefaultMaxConns = 1024
	// DefaultMaxHeaderListSize bounds a call's metadata (HTTP/2's
	// header list, each field counted with 32 bytes of overhead), where
	// grpc-go allows 16 MiB.
	DefaultMaxHeaderListSize = 16 << 10
)

// ServedByKey is the response header metadata naming the replica that
// served an RPC: HTTP's X-Served-By, lowercased as gRPC metadata is.
const ServedByKey = "x-served-by"

// PushbackKey is the trailer by which a shed RPC tells grpc-go's retry
// policy how many milliseconds to wait before retrying.
const PushbackKey = "grpc-retry-pushback-ms"

// ErrStopped is returned by a second call of Serve.
var ErrStopped = errors.New("grpcserver: server stopped")

// Readiness is what the server needs of the kit's health checker
// (health.Checker has it): whether the process is ready, and a channel
// closed when that may have changed.
type Readiness interface {
	Ready() bool
	Changed() <-chan struct{}
}

// Config configures a [Server]. The zero value is valid; every field
// documents its default.
type Config struct {
	// Name is sent as ServedByKey on every RPC; "" sends none.
	Name string
	// Logger receives panics, request lines and the phases of the stop.
	// Nil discards them.
	Logger *slog.Logger
	// Registry receives the RPC metrics (grpc_server_started_total,
	// grpc_server_handled_total, grpc_server_handling_seconds,
	// grpc_server_panics_total, ...). Nil registers none.
	Registry prometheus.Registerer
	// Health drives grpc.health.v1: SERVING while Ready, else
	// NOT_SERVING, for "" and every registered service. Nil means
	// SERVING until the drain. From the drain on, NOT_SERVING always.
	Health Readiness
	// Limiter sheds RPCs beyond its adaptive concurrency limit with
	// Unavailable and PushbackKey; pass the one the HTTP server uses so
	// the process has one limit. Nil sheds nothing.
	Limiter *shed.Limiter
	// MaxConnAge is the age after which a connection gets GOAWAY,
	// jittered ±10% by grpc-go. Zero means DefaultMaxConnAge (1m);
	// negative means never.
	MaxConnAge time.Duration
	// MaxConnAgeGrace bounds RPCs in flight on a connection past its age.
	// Zero means DefaultMaxConnAgeGrace (20s).
	MaxConnAgeGrace time.Duration
	// MaxConcurrentStreams bounds one connection's streams. Zero means
	// DefaultMaxConcurrentStreams (100).
	MaxConcurrentStreams uint32
	// MaxRecvMsgSize bounds a received message, in bytes. Zero means
	// DefaultMaxRecvMsgSize (4 MiB).
	MaxRecvMsgSize int
	// RecvBudget bounds the bytes that the messages of calls being
	// received or handled may hold at once, across every connection
	// (see the package doc). Each call takes MaxRecvMsgSize, its
	// stream's window (64 KiB) and its metadata before its message is
	// read, and keeps what its message turned out to hold until it ends;
	// a call that finds too little left is refused UNAVAILABLE before its
	// message is read. Zero means DefaultRecvBudget (64 MiB), raised to
	// two calls' shares; negative means no budget, as grpc-go.
	RecvBudget int64
	// RecvTimeout is how long an admitted call may take to receive its
	// first message before it is cut off (CANCELLED). Zero means
	// DefaultRecvTimeout (10s); negative means none.
	RecvTimeout time.Duration
	// MaxConns bounds the connections open at once. Beyond it a new
	// connection takes the place of the one idle longest (no call in
	// flight but a health Watch), which is closed; when every connection
	// is busy the new one is closed as soon as it is accepted, so its
	// client tries another replica. Zero means DefaultMaxConns (1024);
	// negative means no bound.
	MaxConns int
	// MaxHeaderListSize bounds a call's metadata, in bytes. Zero means
	// DefaultMaxHeaderListSize (16 KiB).
	MaxHeaderListSize uint32
	// KeepaliveMinTime, KeepaliveTime and KeepaliveTimeout: zero means
	// their defaults (10s, 30s, 10s). Clients may ping without streams.
	KeepaliveMinTime, KeepaliveTime, KeepaliveTimeout time.Duration
	// Reflection registers grpc.reflection (v1 and v1alpha), which lets
	// anyone who reaches the port list the services. Off by default.
	Reflection bool
	// RequestLogSample is the share of RPCs ending OK or with a client
	// error (codes that HTTP would answer below 500) that get a log line;
	// the others always do. Zero means 1 (every RPC); negative turns
	// request lines off.
	RequestLogSample float64
	// Rand draws the sampling; nil means math/rand/v2's Float64.
	Rand func() float64
	// Options are appended to the server's own; interceptors chained here
	// run inside the kit's (after shedding), as Service.Use's middleware.
	Options []grpc.ServerOption
}

// Validate reports a field of c out of range.
func (c Config) Validate() error {
	switch {
	case c.MaxConnAgeGrace < 0:
		return fmt.Errorf("grpcserver: MaxConnAgeGrace %v is negative", c.MaxConnAgeGrace)
	case c.MaxRecvMsgSize < 0:
		return fmt.Errorf("grpcserver: MaxRecvMsgSize %d is negative", c.MaxRecvMsgSize)
	case c.RecvBudget > 0 && c.RecvBudget < c.withDefaults().callShare():
		return fmt.Errorf("grpcserver: RecvBudget %d is below one call's share %d (MaxRecvMsgSize, its window and metadata), so no large message could be received",
			c.RecvBudget, c.withDefaults().callShare())
	case c.KeepaliveMinTime < 0 || c.KeepaliveTime < 0 || c.KeepaliveTimeout < 0:
		return errors.New("grpcserver: a keepalive duration is negative")
	case c.RequestLogSample > 1 || c.RequestLogSample != c.RequestLogSample:
		return fmt.Errorf("grpcserver: RequestLogSample %v is not a share (at most 1)", c.RequestLogSample)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxConnAge == 0 {
		c.MaxConnAge = DefaultMaxConnAge
	}
	if c.MaxConnAgeGrace == 0 {
		c.MaxConnAgeGrace = DefaultMaxConnAgeGrace
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxRecvMsgSize == 0 {
		c.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if c.MaxHeaderListSize == 0 {
		c.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if c.RecvBudget == 0 {
		c.RecvBudget = max(DefaultRecvBudget, 2*c.callShare())
	}
	if c.RecvTimeout == 0 {
		c.RecvTimeout = DefaultRecvTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.KeepaliveMinTime == 0 {
		c.KeepaliveMinTime = DefaultKeepaliveMinTime
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = DefaultKeepaliveTime
	}
	if c.KeepaliveTimeout == 0 {
		c.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if c.RequestLogSample == 0 {
		c.RequestLogSample = 1
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// callShare is what a call takes of the receive budget before its
// message is read, metadata aside: the largest message, its 5-byte
// prefix and the stream's window. c has its defaults.
func (c Config) callShare() int64 {
	return int64(c.MaxRecvMsgSize) + 5 + streamWindow
}

// Server is a gRPC server run by the kit's lifecycle (it is a
// lifecycle.Server). Register services on it as on a *grpc.Server (it is
// a grpc.ServiceRegistrar), before Serve; see the package doc for why it
// holds two grpc.Servers.
type Server struct {
	cfg     Config
	log     *slog.Logger
	gens    [2]*grpc.Server
	stops   [2]context.CancelFunc // cancel a generation's health watches before its GracefulStop
	health  *grpchealth.Server
	metrics *grpcprom.ServerMetrics
	admit   *admission // nil without a receive budget
	// admitOwn is the budget of reflection, and admitHealth that of
	// grpc.health.v1, each apart so that neither a flood of the
	// program's calls nor reflection's ever starves the probes.
	admitOwn, admitHealth *admission
	connsRefused          prometheus.Counter
	connsEvicted          prometheus.Counter
	connsReset            prometheus.Counter
	resets                atomic.Uint64 // connections closed as rapid resets, for the log's pace
	table                 *connTable    // the connections handed over and not yet closed

	mu       sync.Mutex
	names    []string // services registered by the program
	served   bool     // Serve was called
	draining bool
	closed   bool // Shutdown or Close was called
	ln       net.Listener
	conns    [2]*connListener
	pending  [2]sync.WaitGroup // connections handed to a generation and not yet taken
	stopped  [2]chan struct{}  // closed when a generation's GracefulStop returned
	gsOnce   [2]sync.Once
	follow   chan struct{} // closed to stop following Health
	accepted chan struct{} // closed when the accept loop has returned
	wg       sync.WaitGroup
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// New builds a Server from cfg and registers grpc.health.v1 on it (and
// reflection when asked), and its metrics on cfg.Registry.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		health:   grpchealth.NewServer(),
		follow:   make(chan struct{}),
		accepted: make(chan struct{}),
	}
	for i := range s.stopped {
		s.stopped[i] = make(chan struct{})
	}
	if cfg.RecvBudget > 0 {
		s.admit = newAdmission(cfg.RecvBudget, cfg.callShare(), max(cfg.RecvTimeout, 0))
		s.admitOwn = s.admit.sibling(2 * cfg.callShare())
		conns := cfg.MaxConns
		if conns < 0 {
			conns = DefaultMaxConns
		}
		// Two shares for checks being received, and room for a Watch
		// on every connection (grpcclient opens one on each), which
		// keeps its metadata and request while it lasts.
		s.admitHealth = s.admit.sibling(2*cfg.callShare() + int64(conns)*watchRoom)
		s.admitHealth.probes = true
	}
	s.table = newConnTable(max(cfg.MaxConns, 0))
	s.connsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grpc_server_connections_refused_total",
		Help: "Connections closed as soon as accepted: MaxConns were open, each with a call in flight.",
	})
	s.connsEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grpc_server_connections_evicted_total",
		Help: "Idle connections closed to admit a new one beyond MaxConns, the one idle longest each time.",
	})
	s.connsReset = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grpc_server_connections_reset_total",
		Help: "Connections closed as a rapid reset: more than 100 of their calls, and more than half, ended before their first message.",
	})
	var panics prometheus.Counter
	if reg := cfg.Registry; reg != nil {
		open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "grpc_server_connections_open",
			Help: "Connections accepted and not yet closed.",
		}, func() float64 { return float64(s.table.len()) })
		own := []prometheus.Collector{s.connsRefused, s.connsEvicted, s.connsReset, open}
		if s.admit != nil {
			own = append(own, s.admit.collectors()...)
		}
		for _, c := range own {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("grpcserver: register metrics: %w", err)
			}
		}
		s.metrics = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
		panics = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "grpc_server_panics_total",
			Help: "RPCs whose handler panicked; each was answered Internal.",
		})
		if err := reg.Register(s.metrics); err != nil {
			return nil, fmt.Errorf("grpcserver: register metrics: %w", err)
		}
		if err := reg.Register(panics); err != nil {
			reg.Unregister(s.metrics)
			return nil, fmt.Errorf("grpcserver: register metrics: %w", err)
		}
	}
	for i := range s.gens {
		ctx, cancel := context.WithCancel(context.Background())
		s.stops[i] = cancel
		s.gens[i] = grpc.NewServer(s.options(ctx, panics)...)
	}
	if cfg.Health != nil {
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(s, s.health)
	if cfg.Reflection {
		reflection.Register(s)
	}
	return s, nil
}

// options are one generation's server options; stopping ends when that
// generation begins its GracefulStop.
func (s *Server) options(stopping context.Context, panics prometheus.Counter) []grpc.ServerOption {
	c := s.cfg
	age, grace := c.MaxConnAge, c.MaxConnAgeGrace
	if age < 0 {
		age, grace = 0, 0 // grpc-go: zero is infinity
	}
	ic := s.interceptors(stopping, panics)
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: c.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: age, MaxConnectionAgeGrace: grace,
			Time: c.KeepaliveTime, Timeout: c.KeepaliveTimeout,
		}),
		grpc.MaxConcurrentStreams(c.MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(c.MaxRecvMsgSize),
		grpc.MaxHeaderListSize(c.MaxHeaderListSize),
		grpc.StaticStreamWindowSize(streamWindow),
		grpc.StaticConnWindowSize(connWindow),
		grpc.ChainUnaryInterceptor(ic.unary...),
		grpc.ChainStreamInterceptor(ic.stream...),
	}
	// connStats first: its TagRPC notes when a call began, before the
	// receive budget's makes it wait.
	opts = append(opts, grpc.StatsHandler(connStats{table: s.table, reset: s.resetConn}))
	if s.admit != nil {
		opts = append(opts, grpc.InTapHandle(s.tap), grpc.StatsHandler(statsHandler{}))
	}
	return append(opts, c.Options...)
}

// tap admits a call to the receive budget of its service.
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	switch svc := serviceOf(info.FullMethodName); {
	case svc == healthpb.Health_ServiceDesc.ServiceName:
		return s.admitHealth.tap(ctx, info)
	case internalService(svc):
		return s.admitOwn.tap(ctx, info)
	}
	return s.admit.tap(ctx, info)
}

// RegisterService registers a service on both generations; it panics,
// as grpc.Server does, after Serve.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served {
		panic(fmt.Sprintf("grpcserver: RegisterService(%q) after Serve", desc.ServiceName))
	}
	for _, g := range s.gens {
		g.RegisterService(desc, impl)
	}
	if !internalService(desc.ServiceName) {
		s.names = append(s.names, desc.ServiceName)
	}
}

// internalService reports the services the kit registers itself, which
// get no health status of their own.
func internalService(name string) bool {
	return name == healthpb.Health_ServiceDesc.ServiceName ||
		name == "grpc.reflection.v1.ServerReflection" || name == "grpc.reflection.v1alpha.ServerReflection"
}

// GetServiceInfo returns the registered services, as grpc.Server's does
// (reflection and metrics read it).
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.gens[0].GetServiceInfo() }

// Services returns the names of the services the program registered,
// each with a grpc.health.v1 status of its own.
func (s *Server) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.names...)
}

// Serve accepts connections on ln and serves them until Shutdown or
// Close, and returns nil then, once every goroutine it started has
// returned (at once, if they came first); ln is closed on return.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	switch {
	case s.served:
		s.mu.Unlock()
		ln.Close()
		return ErrStopped
	case s.closed:
		// Stopped before it started (the lifecycle's stop can overtake
		// the goroutine that calls Serve): a clean stop.
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.served, s.ln = true, ln
	for i := range s.conns {
		s.conns[i] = newConnListener(ln.Addr())
	}
	names := append([]string{""}, s.names...)
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.InitializeMetrics(s.gens[0])
	}
	if h := s.cfg.Health; h != nil {
		s.wg.Go(func() { s.followHealth(h, names) })
	} else {
		for _, n := range names {
			s.health.SetServingStatus(n, healthpb.HealthCheckResponse_SERVING)
		}
	}
	errs := make([]error, len(s.gens))
	for i, g := range s.gens {
		s.wg.Go(func() {
			if err := g.Serve(s.conns[i]); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errs[i] = err
			}
		})
	}
	err := s.accept(ln)
	close(s.accepted)
	if err != nil {
		// The listener failed before any stop: stop the rest so that
		// nothing outlives Serve.
		s.Close()
	}
	s.wg.Wait()
	return errors.Join(append([]error{err}, errs...)...)
}

// accept hands each connection to the current generation until the
// listener is closed (nil) or fails (its error).
func (s *Server) accept(ln net.Listener) error {
	defer ln.Close()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if ne, ok := err.(interface{ Temporary() bool }); ok && ne.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("grpcserver: accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay) // as net/http does; Close ends the loop by closing ln
				continue
			}
			return fmt.Errorf("grpcserver: accept: %w", err)
		}
		delay = 0
		s.hand(c)
	}
}

// resetConn counts and logs a connection closed as a rapid reset.
func (s *Server) resetConn(c *trackedConn) {
	s.connsReset.Inc()
	// A flood closes hundreds of connections a second: the 1st, 2nd,
	// 4th, 8th... are logged, each with the count so far.
	if n := s.resets.Add(1); n&(n-1) == 0 {
		s.log.Warn("grpcserver: closed a connection most of whose calls ended before their message (rapid reset)",
			"peer", c.RemoteAddr().String(), "calls", c.calls.Load(), "abandoned", c.abandoned.Load(), "closed_so_far", n)
	}
}

// hand gives c to the generation taking new connections: the first until
// the drain, then the second.
func (s *Server) hand(c net.Conn) {
	tc := &trackedConn{Conn: c}
	evicted, ok := s.table.add(tc)
	if !ok {
		s.connsRefused.Inc()
		c.Close()
		return
	}
	if evicted != nil {
		// Its generation's grpc.Server sees the connection end and
		// closes its transport; no call was in flight on it.
		s.connsEvicted.Inc()
		evicted.Conn.Close()
	}
	for {
		s.mu.Lock()
		g := 0
		if s.draining {
			g = 1
		}
		s.pending[g].Add(1)
		s.mu.Unlock()
		tc.taken = s.pending[g].Done
		if s.conns[g].put(tc) {
			return
		}
		s.pending[g].Done()
		if g == 1 {
			s.table.remove(tc)
			c.Close() // both generations stopped
			return
		}
		// The first generation stopped between the check and the hand:
		// the drain began; the second takes it.
	}
}

// followHealth publishes h's readiness on every name until the drain.
func (s *Server) followHealth(h Readiness, names []string) {
	for {
		ch := h.Changed()
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if h.Ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		for _, n := range names {
			s.health.SetServingStatus(n, st)
		}
		select {
		case <-ch:
		case <-s.follow:
			return
		}
	}
}

// Drain begins the stop: grpc.health.v1 answers NOT_SERVING from now on,
// for every name; new connections go to the second generation, which
// serves them; the first generation sends GOAWAY on its connections
// (GracefulStop), whose RPCs in flight finish. Drain does not block.
func (s *Server) Drain() {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return
	}
	s.draining = true
	s.stopFollowing()
	s.mu.Unlock()
	// Health first, so a client that moves and asks again hears
	// NOT_SERVING; Shutdown also ignores any later status.
	s.health.Shutdown()
	s.log.Info("grpcserver: draining: health NOT_SERVING, GOAWAY on existing connections")
	s.gracefulStop(0)
}

// stopFollowing ends followHealth. s.mu must be held.
func (s *Server) stopFollowing() {
	select {
	case <-s.follow:
	default:
		close(s.follow)
	}
}

// gracefulStop starts generation g's GracefulStop once, in a goroutine
// Serve (or Close) waits for, after every connection handed to g has
// been taken.
func (s *Server) gracefulStop(g int) {
	s.gsOnce[g].Do(func() {
		s.wg.Go(func() {
			s.pending[g].Wait()
			s.stops[g]() // end health watches, which never end by themselves
			s.gens[g].GracefulStop()
			close(s.stopped[g])
		})
	})
}

// Shutdown stops accepting, sends GOAWAY on every connection and waits
// for the RPCs in flight until ctx ends; then it returns an error and
// the caller should Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	s.mu.Lock()
	s.closed = true
	ln, served := s.ln, s.served
	s.mu.Unlock()
	if served {
		ln.Close()
		// No connection is handed over after the loop returns, so the
		// second generation's pending count only falls from here.
		select {
		case <-s.accepted:
		case <-ctx.Done():
			return fmt.Errorf("grpcserver: shutdown: %w", ctx.Err())
		}
	}
	s.gracefulStop(1)
	for _, ch := range s.stopped {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("grpcserver: shutdown: %w", ctx.Err())
		}
	}
	return nil
}

// Close stops at once: connections close and RPCs in flight are
// cancelled. It returns when the goroutines the server started have.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.stopFollowing()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.health.Shutdown()
	for i, g := range s.gens {
		s.stops[i]()
		g.Stop()
	}
	for _, l := range s.conns {
		if l != nil {
			l.Close()
		}
	}
	s.wg.Wait()
	return nil
}
