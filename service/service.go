package service

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/shoal-dev/shoal/certfile"
	"github.com/shoal-dev/shoal/deadline"
	"github.com/shoal-dev/shoal/grpcserver"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/requestlog"
	"github.com/shoal-dev/shoal/server"
	"github.com/shoal-dev/shoal/shed"
)

// Tracer is what a Service needs of a tracing implementation (package
// tracing has one): server spans around each request, client spans and
// propagation on each attempt of an upstream call, and the trace ID for
// log lines. A Tracer that also has Shutdown(context.Context) error is
// shut down last in the stop sequence, after the servers, so the final
// spans are sent; one that has Route(http.Handler) http.Handler wraps the
// mux, where the matched pattern that names a server span is known.
type Tracer interface {
	Handler(next http.Handler) http.Handler
	Transport(next http.RoundTripper) http.RoundTripper
	TraceID(ctx context.Context) string
}

// Service is one process: its routes go on Handle, its checks on Health,
// its resources on Lifecycle, its metrics on Registry.
type Service struct {
	Options   Options
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	Health    *health.Checker
	Lifecycle *lifecycle.Lifecycle

	mux           *http.ServeMux
	public, admin net.Listener
	grpcLn        net.Listener       // nil without GRPC_PORT
	grpc          *grpcserver.Server // nil without GRPC_PORT
	limiter       *shed.Limiter      // nil with shedding off; shared by HTTP and gRPC
	name          string
	middleware    []func(http.Handler) http.Handler
	tracer        atomic.Pointer[Tracer] // set by Trace; read by loggers on any goroutine
	upstreamTLS   *tls.Config            // nil: plain HTTP to balanced upstreams
	running       bool
	// owned are the closers of upstreams and the tracer, which Close runs
	// for a Service that never ran.
	owned []func(context.Context) error
}

// New checks o, opens the service's listeners (so a port clash fails here,
// before any work starts) and builds its parts.
func New(o Options) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	log := o.Logger
	if log == nil {
		var err error
		if log, err = NewLogger(o.LogLevel, o.Name); err != nil {
			return nil, err
		}
	}
	var upstreamTLS *tls.Config
	if o.UpstreamCAFile != "" || o.UpstreamCertFile != "" {
		c, err := certfile.Client(certfile.Config{CAFile: o.UpstreamCAFile, CertFile: o.UpstreamCertFile, KeyFile: o.UpstreamKeyFile, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("service: upstream TLS: %w", err)
		}
		upstreamTLS = c
	}
	public, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	if err != nil {
		return nil, fmt.Errorf("service: listening on port %d: %w", o.Port, err)
	}
	admin, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.AdminPort)))
	if err != nil {
		public.Close()
		return nil, fmt.Errorf("service: listening on admin port %d: %w", o.AdminPort, err)
	}
	var grpcLn net.Listener
	if o.GRPCPort != 0 {
		if grpcLn, err = net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(max(o.GRPCPort, 0)))); err != nil {
			public.Close()
			admin.Close()
			return nil, fmt.Errorf("service: listening on gRPC port %d: %w", o.GRPCPort, err)
		}
	}
	name := o.PodName
	if name == "" {
		host, _ := os.Hostname()
		name = host + ":" + strconv.Itoa(public.Addr().(*net.TCPAddr).Port)
	}
	s := &Service{
		Options:     o,
		Registry:    metrics.NewRegistry(),
		mux:         http.NewServeMux(),
		public:      public,
		admin:       admin,
		grpcLn:      grpcLn,
		name:        name,
		upstreamTLS: upstreamTLS,
	}
	// Every record logged with a request's context names the request; the
	// tracer, set later by Trace, is asked through s.
	s.Logger = slog.New(requestlog.Handler(log.Handler(), s.traceID)).With("replica", name)
	s.Health = health.New(s.Logger)
	s.Lifecycle = lifecycle.New(lifecycle.Config{DrainDelay: o.DrainDelay, ShutdownTimeout: o.ShutdownTimeout, Logger: s.Logger, Health: s.Health})
	if err := s.build(); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("service: %w", err)
	}
	return s, nil
}

// build makes the parts HTTP and gRPC share (the shedder, so the process
// has one concurrency limit) and the gRPC server, so programs can
// register on it before Run.
func (s *Service) build() error {
	o := s.Options
	if o.ShedMaxLimit > 0 {
		l, err := shed.New(shed.Config{MaxLimit: o.ShedMaxLimit}, s.Registry)
		if err != nil {
			return err
		}
		s.limiter = l
	}
	if s.grpcLn == nil {
		return nil
	}
	recv, conns := grpcLimits(o, o.MemoryLimit)
	g, err := grpcserver.New(grpcserver.Config{
		Name:                 s.name,
		Logger:               s.Logger,
		Registry:             s.Registry,
		Health:               s.Health,
		Limiter:              s.limiter,
		MaxConnAge:           o.MaxConnAge,
		MaxConcurrentStreams: uint32(o.GRPCMaxConcurrentStreams),
		MaxRecvMsgSize:       o.GRPCMaxRecvMsgSize,
		RecvBudget:           recv,
		RecvTimeout:          o.GRPCRecvTimeout,
		MaxConns:             conns,
		MaxHeaderListSize:    uint32(o.GRPCMaxHeaderListSize),
		Reflection:           o.GRPCReflection,
		RequestLogSample:     o.RequestLogSample,
	})
	if err != nil {
		return err
	}
	s.grpc = g
	return nil
}

// grpcLimits are the gRPC receive budget and connection bound of o, the
// zero ones derived from the process's memory limit (0: unknown, which
// leaves them to grpcserver's defaults).
func grpcLimits(o Options, limit int64) (recv int64, conns int) {
	recv, conns = o.GRPCRecvBudget, o.GRPCMaxConns
	if limit <= 0 {
		return recv, conns
	}
	if recv == 0 {
		msg := int64(cmp.Or(o.GRPCMaxRecvMsgSize, grpcserver.DefaultMaxRecvMsgSize))
		// Two messages and their windows, as grpcserver counts a share.
		recv = max(limit/8, 2*(msg+(128<<10)))
	}
	if conns == 0 {
		conns = int(max(limit/(512<<10), 64))
	}
	return recv, conns
}

// GRPCServer is where the program registers its gRPC services (generated
// RegisterXxxServer functions take it), before Run. They are served on
// GRPC_PORT through package grpcserver, with health, metrics, shedding by
// the same limit as HTTP, and the drain; without GRPC_PORT registrations
// are accepted and nothing is served, so a program registers
// unconditionally.
func (s *Service) GRPCServer() grpc.ServiceRegistrar {
	if s.grpc == nil {
		return discard{}
	}
	return s.grpc
}

// discard is the registrar of a Service without GRPC_PORT.
type discard struct{}

func (discard) RegisterService(*grpc.ServiceDesc, any) {}

// GRPCAddr is the gRPC listener's address, or nil without GRPC_PORT.
func (s *Service) GRPCAddr() net.Addr {
	if s.grpcLn == nil {
		return nil
	}
	return s.grpcLn.Addr()
}

func (s *Service) traceID(ctx context.Context) string {
	if t := s.getTracer(); t != nil {
		return t.TraceID(ctx)
	}
	return ""
}

// getTracer is the Tracer given to Trace, or nil.
func (s *Service) getTracer() Tracer {
	if p := s.tracer.Load(); p != nil {
		return *p
	}
	return nil
}

// Name is the replica's name as sent in X-Served-By.
func (s *Service) Name() string { return s.name }

// Addr is the public listener's address.
func (s *Service) Addr() net.Addr { return s.public.Addr() }

// AdminAddr is the admin listener's address.
func (s *Service) AdminAddr() net.Addr { return s.admin.Addr() }

// Handle registers h for pattern (net/http.ServeMux syntax, such as
// "GET /items/{id}"). The request's context ends after
// Options.RequestTimeout, or the route's own timeout when h came from
// [WithTimeout], or sooner when the caller's X-Request-Timeout-Ms says
// so. Handle panics, as ServeMux does, on a pattern that conflicts.
func (s *Service) Handle(pattern string, h http.Handler) {
	if t, ok := h.(timeoutHandler); ok {
		s.mux.Handle(pattern, t.bounded)
		return
	}
	s.mux.Handle(pattern, deadline.Middleware(s.Options.RequestTimeout, h))
}

// HandleFunc registers f for pattern; see [Service.Handle].
func (s *Service) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	s.Handle(pattern, http.HandlerFunc(f))
}

// WithTimeout returns h with its own request timeout, replacing
// Options.RequestTimeout on the route [Service.Handle] registers it for;
// d <= 0 means none beyond the caller's.
func WithTimeout(d time.Duration, h http.Handler) http.Handler {
	return timeoutHandler{bounded: deadline.Middleware(d, h)}
}

// timeoutHandler is a route with its own timeout: Handle unwraps it; served
// elsewhere (another mux), it is bounded the same way.
type timeoutHandler struct{ bounded http.Handler }

func (t timeoutHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { t.bounded.ServeHTTP(w, r) }

// Use adds middleware between the load shedder and the routes, outermost
// first. Call it before Run.
func (s *Service) Use(mw ...func(http.Handler) http.Handler) {
	s.middleware = append(s.middleware, mw...)
}

// Trace makes t trace every request and every upstream call. Call it
// before Run; upstreams made before it are traced too.
func (s *Service) Trace(t Tracer) {
	s.tracer.Store(&t)
	if sd, ok := t.(interface{ Shutdown(context.Context) error }); ok {
		// Closers run in reverse order of registration, after the
		// servers: registered first, the tracer is flushed last, with the
		// spans of the drain.
		s.Lifecycle.OnClose("tracer", sd.Shutdown)
		s.owned = append(s.owned, sd.Shutdown)
	}
}

// handler is the public server's handler, in the order the package doc
// gives.
func (s *Service) handler() (http.Handler, error) {
	httpMetrics, err := metrics.NewHTTP(s.Registry)
	if err != nil {
		return nil, err
	}
	panics := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "http_handler_panics_total",
		Help: "Requests whose handler panicked; each was answered 500 if it had not started its response.",
	})
	if err := s.Registry.Register(panics); err != nil {
		return nil, err
	}
	var h http.Handler = metrics.Route(s.mux)
	tracer := s.getTracer()
	if r, ok := tracer.(interface {
		Route(http.Handler) http.Handler
	}); ok {
		// The middleware in between replaces the request, so only a
		// wrapper of the mux sees the pattern the span is named for.
		h = r.Route(h)
	}
	for i := len(s.middleware) - 1; i >= 0; i-- {
		h = s.middleware[i](h)
	}
	if s.limiter != nil {
		h = s.limiter.Middleware(h)
	}
	// RouteOf counts a request the shedder or the caller's middleware
	// answered under the route it asked for, not as unmatched.
	h = metrics.RouteOf(s.mux, h)
	h = server.Recover(s.Logger, panics.Inc, h)
	if s.Options.RequestLogSample >= 0 {
		rate := s.Options.RequestLogSample
		h = requestlog.Middleware(requestlog.Config{
			Logger:     s.Logger,
			SampleRate: rate,
			Route:      func(w http.ResponseWriter, _ *http.Request) string { return metrics.RouteFromWriter(w) },
			TraceID:    s.traceID,
		}, h)
	}
	h = httpMetrics.Middleware(h)
	h = requestlog.ID(h)
	if tracer != nil {
		h = tracer.Handler(h)
	}
	return server.ServedBy(s.name, h), nil
}

// Run serves until a stop signal or ctx ends, then drains and stops in
// order (package lifecycle). It returns nil on a clean stop.
func (s *Service) Run(ctx context.Context) error {
	if s.running {
		return errors.New("service: Run called twice")
	}
	s.running = true
	h, err := s.handler()
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("service: %w", err)
	}
	closed, err := connsClosed(s.Registry)
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("service: %w", err)
	}
	age := s.Options.MaxConnAge
	if age < 0 {
		age = 0
	}
	app := server.New(server.Config{
		H2C:             s.Options.H2C && s.Options.TLSCertFile == "",
		MaxConnAge:      age,
		MaxConnRequests: s.Options.MaxConnRequests,
		MaxConns:        s.Options.MaxConns,
		Logger:          s.Logger,
		OnClose:         closed("public"),
	}, h)
	public := s.public
	if s.Options.TLSCertFile != "" {
		tlsCfg, err := certfile.Server(certfile.Config{
			CertFile: s.Options.TLSCertFile, KeyFile: s.Options.TLSKeyFile,
			ClientCAFile: s.Options.TLSClientCAFile, Logger: s.Logger,
		})
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("service: TLS: %w", err)
		}
		// With srv.TLSConfig nil, Serve negotiates h2 itself by ALPN.
		public = tls.NewListener(public, tlsCfg)
	}
	var adminOpts []server.AdminOption
	if s.Options.Pprof {
		adminOpts = append(adminOpts, server.WithPprof())
	}
	adminSrv := server.New(server.Config{Logger: s.Logger, OnClose: closed("admin")}, server.AdminMux(s.Health, metrics.Handler(s.Registry), adminOpts...))
	s.Lifecycle.Serve("public", app, public)
	s.Lifecycle.Serve("admin", adminSrv, s.admin)
	grpcAddr := ""
	if s.grpc != nil {
		s.Lifecycle.Own("grpc", s.grpc, s.grpcLn)
		grpcAddr = s.grpcLn.Addr().String()
	}
	s.Logger.Info("serving",
		"addr", s.public.Addr().String(), "admin_addr", s.admin.Addr().String(), "grpc_addr", grpcAddr,
		"tls", s.Options.TLSCertFile != "", "mtls", s.Options.TLSClientCAFile != "",
		"h2c", s.Options.H2C && s.Options.TLSCertFile == "", "pprof", s.Options.Pprof,
		"max_conn_age", age.String(), "max_conn_requests", s.Options.MaxConnRequests,
		"request_timeout", s.Options.RequestTimeout.String(), "tracing", s.getTracer() != nil,
		"memory_limit", s.Options.MemoryLimit, "go_memory_limit", goMemoryLimit())
	return s.Lifecycle.Run(ctx)
}

// Close releases the listeners, upstreams and tracer of a Service that
// will not Run.
func (s *Service) Close() {
	s.closeListeners()
	d := s.Options.ShutdownTimeout
	if d == 0 {
		d = lifecycle.DefaultShutdownTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for i := len(s.owned) - 1; i >= 0; i-- {
		_ = s.owned[i](ctx)
	}
}

func (s *Service) closeListeners() {
	s.public.Close()
	s.admin.Close()
	if s.grpcLn != nil {
		s.grpcLn.Close()
	}
}

// URL returns the base URL of a listener address, http:// (or https://
// for the public address of a service with TLS), with 127.0.0.1 for an
// unspecified host so the URL can be dialled.
func URL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// connsClosed registers http_server_connections_closed_total on reg and
// returns, for a server's name, the server.Config.OnClose that counts
// into it. Every series starts at zero, so a rate over it is defined
// before the first close.
func connsClosed(reg prometheus.Registerer) (func(server string) func(reason string), error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_server_connections_closed_total",
		Help: "HTTP connections the server closed to keep a limit, by server and reason: evicted (idle longest, for a connection beyond MAX_CONNS), refused (beyond MAX_CONNS with every other serving a request), slow_body (an HTTP/1.1 connection whose handler waited on the slowest request body, for a connection beyond MAX_CONNS with every other serving a request), resets (an HTTP/2 client that cancelled most of its streams), streams (an HTTP/2 client most of whose streams came past the server's MaxStreams).",
	}, []string{"server", "reason"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	for _, srv := range []string{"public", "admin"} {
		for _, r := range []string{server.CloseEvicted, server.CloseRefused, server.CloseSlowBody, server.CloseResets, server.CloseStreams} {
			c.WithLabelValues(srv, r)
		}
	}
	return func(srv string) func(string) {
		return func(reason string) { c.WithLabelValues(srv, reason).Inc() }
	}, nil
}
