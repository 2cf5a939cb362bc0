package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/server"
	"github.com/shoal-dev/shoal/shed"
)

// Options are the settings every reference service shares. Bind registers
// each as a flag and an environment variable of the same meaning. The zero
// value is valid: a zero field means what is written beside it; negative
// numbers are invalid unless that says what they mean.
type Options struct {
	Name            string        // service name, for logs; "" means none
	Host            string        // address to bind; "" means all interfaces
	Port            int           // public application port (PORT); 0 picks a free port
	AdminPort       int           // probes, metrics and, with Pprof, profiles (ADMIN_PORT); 0 picks a free port
	Pprof           bool          // PPROF: serve /debug/pprof/ on the admin port; false (the default) leaves it out
	DrainDelay      time.Duration // DRAIN_DELAY; 0 means lifecycle.DefaultDrainDelay (5s), negative means none
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT; 0 means lifecycle.DefaultShutdownTimeout (20s)
	PodName         string        // POD_NAME, the replica's name in X-Served-By; "" means hostname:port
	LogLevel        string        // LOG_LEVEL: debug, info, warn, error; "" means info
	MaxConnAge      time.Duration // MAX_CONN_AGE, keep-alive rebalancing; 0 means never
	MaxConnRequests int           // MAX_CONN_REQUESTS, keep-alive rebalancing; 0 means never
	H2C             bool          // H2C: serve unencrypted HTTP/2 beside HTTP/1.1
	ShedMaxLimit    int           // SHED_MAX_LIMIT: adaptive concurrency cap; 0 turns shedding off
}

// withDefaults returns o with every zero field that has a default set to
// it. The lifecycle defaults its own durations.
func (o Options) withDefaults() Options {
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	return o
}

// Validate reports the first setting that is invalid, by its variable's
// name.
func (o Options) Validate() error {
	switch {
	case o.ShutdownTimeout < 0:
		return fmt.Errorf("service: SHUTDOWN_TIMEOUT %v is negative", o.ShutdownTimeout)
	case o.ShedMaxLimit < 0:
		return fmt.Errorf("service: SHED_MAX_LIMIT %d is negative (0 turns shedding off)", o.ShedMaxLimit)
	}
	scfg := server.Config{MaxConnAge: o.MaxConnAge, MaxConnRequests: o.MaxConnRequests}
	if err := scfg.Validate(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// Bind registers the shared options on cs with the given default port.
func Bind(cs *config.Set, o *Options, defaultPort, defaultAdminPort int) {
	cs.String(&o.Host, "host", "HOST", "", "address to bind; empty means all interfaces")
	cs.Int(&o.Port, "port", "PORT", defaultPort, "public application port")
	cs.Int(&o.AdminPort, "admin-port", "ADMIN_PORT", defaultAdminPort, "admin port: probes, /metrics, and /debug/pprof/ with -pprof")
	cs.Bool(&o.Pprof, "pprof", "PPROF", false, "serve runtime profiles under /debug/pprof/ on the admin port (never the command line)")
	cs.Duration(&o.DrainDelay, "drain-delay", "DRAIN_DELAY", lifecycle.DefaultDrainDelay, "how long to keep serving after SIGTERM before shutdown")
	cs.Duration(&o.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", lifecycle.DefaultShutdownTimeout, "bound on shutdown after the drain")
	cs.String(&o.PodName, "pod-name", "POD_NAME", "", "replica name for X-Served-By; default host:port")
	cs.String(&o.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	cs.Duration(&o.MaxConnAge, "max-conn-age", "MAX_CONN_AGE", 0, "ask clients to reconnect after a connection is this old (0: never)")
	cs.Int(&o.MaxConnRequests, "max-conn-requests", "MAX_CONN_REQUESTS", 0, "ask clients to reconnect after this many requests on a connection (0: never)")
	cs.Bool(&o.H2C, "h2c", "H2C", true, "serve unencrypted HTTP/2 (prior knowledge) beside HTTP/1.1")
	cs.Int(&o.ShedMaxLimit, "shed-max-limit", "SHED_MAX_LIMIT", shed.DefaultMaxLimit, "upper bound of the adaptive concurrency limit; 0 turns load shedding off")
}

// NewLogger returns a JSON logger at the named level, writing to stderr,
// with a "service" attribute unless name is empty.
func NewLogger(level, name string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("service: LOG_LEVEL %q is not debug, info, warn or error", level)
	}
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	if name == "" {
		return slog.New(h), nil
	}
	return slog.New(h).With("service", name), nil
}

// Service is one process's toolkit: its routes go on Mux, its checks on
// Health, its resources on Lifecycle.
type Service struct {
	Options   Options
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	Health    *health.Checker
	Lifecycle *lifecycle.Lifecycle
	Mux       *http.ServeMux

	public, admin net.Listener
	name          string
	middleware    []func(http.Handler) http.Handler
}

// New checks o, opens the service's listeners (so a port clash fails here,
// before any work starts) and builds its parts. A nil log means a JSON
// logger at o.LogLevel, see [NewLogger].
func New(o Options, log *slog.Logger) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	if log == nil {
		var err error
		if log, err = NewLogger(o.LogLevel, o.Name); err != nil {
			return nil, err
		}
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
	name := o.PodName
	if name == "" {
		host, _ := os.Hostname()
		name = host + ":" + strconv.Itoa(public.Addr().(*net.TCPAddr).Port)
	}
	log = log.With("replica", name)
	checker := health.New(log)
	return &Service{
		Options:   o,
		Logger:    log,
		Registry:  metrics.NewRegistry(),
		Health:    checker,
		Lifecycle: lifecycle.New(lifecycle.Config{DrainDelay: o.DrainDelay, ShutdownTimeout: o.ShutdownTimeout, Logger: log, Health: checker}),
		Mux:       http.NewServeMux(),
		public:    public,
		admin:     admin,
		name:      name,
	}, nil
}

// Name is the replica's name as sent in X-Served-By.
func (s *Service) Name() string { return s.name }

// Addr is the public listener's address.
func (s *Service) Addr() net.Addr { return s.public.Addr() }

// AdminAddr is the admin listener's address.
func (s *Service) AdminAddr() net.Addr { return s.admin.Addr() }

// Use adds middleware between the metrics middleware and the mux, outermost
// first.
func (s *Service) Use(mw ...func(http.Handler) http.Handler) {
	s.middleware = append(s.middleware, mw...)
}

// Run serves until a stop signal or ctx ends, then drains and stops in
// order. It returns nil on a clean stop.
func (s *Service) Run(ctx context.Context) error {
	httpMetrics, err := metrics.NewHTTP(s.Registry)
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("service: %w", err)
	}
	var h http.Handler = metrics.Route(s.Mux)
	for i := len(s.middleware) - 1; i >= 0; i-- {
		h = s.middleware[i](h)
	}
	if s.Options.ShedMaxLimit > 0 {
		// Shedding sits outside the routes but inside the metrics, so a
		// rejected request is still counted as a 503.
		limiter, err := shed.New(shed.Config{MaxLimit: s.Options.ShedMaxLimit}, s.Registry)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("service: %w", err)
		}
		h = limiter.Middleware(h)
	}
	// RouteOf counts a request shedding or other middleware answered under
	// the route it asked for, not as unmatched.
	h = server.ServedBy(s.name, httpMetrics.Middleware(metrics.RouteOf(s.Mux, h)))

	app := server.New(server.Config{
		H2C:             s.Options.H2C,
		MaxConnAge:      s.Options.MaxConnAge,
		MaxConnRequests: s.Options.MaxConnRequests,
		Logger:          s.Logger,
	}, h)
	var adminOpts []server.AdminOption
	if s.Options.Pprof {
		adminOpts = append(adminOpts, server.WithPprof())
	}
	adminSrv := server.New(server.Config{Logger: s.Logger}, server.AdminMux(s.Health, metrics.Handler(s.Registry), adminOpts...))
	s.Lifecycle.Serve("public", app, s.public)
	s.Lifecycle.Serve("admin", adminSrv, s.admin)
	s.Logger.Info("serving",
		"addr", s.public.Addr().String(), "admin_addr", s.admin.Addr().String(),
		"h2c", s.Options.H2C, "pprof", s.Options.Pprof, "max_conn_age", s.Options.MaxConnAge.String(), "max_conn_requests", s.Options.MaxConnRequests)
	return s.Lifecycle.Run(ctx)
}

// Close releases the listeners of a Service that will not Run.
func (s *Service) Close() { s.closeListeners() }

func (s *Service) closeListeners() {
	s.public.Close()
	s.admin.Close()
}

// URL returns http://addr for a listener address, with 127.0.0.1 for an
// unspecified host so the URL can be dialled.
func URL(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
