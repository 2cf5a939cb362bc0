package service

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/server"
	"github.com/shoal-dev/shoal/shed"
)

// Defaults of [Options] and of the flags [Bind] registers.
const (
	// DefaultPort is the public port's flag default.
	DefaultPort = 8080
	// DefaultAdminPort is the admin port's flag default: probes,
	// /metrics and, when asked, profiles.
	DefaultAdminPort = 9090
	// DefaultRequestTimeout bounds a route's request context unless the
	// route says otherwise ([WithTimeout]). It sits below the server's
	// write timeout (60s) so a handler's deadline passes first and the
	// handler can still answer.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultMaxConnAge is the keep-alive connection age after which a
	// client is asked to reconnect, so that connections spread onto new
	// replicas after a scale-up (jittered by ±10%, see server.Config).
	DefaultMaxConnAge = time.Minute
)

// Options are the settings every service shares. [Bind] registers each as
// a flag and an environment variable of the same meaning. The zero value
// is valid: a zero field means what is written beside it; a negative
// number is invalid unless that says what it means.
type Options struct {
	Name            string        // service name, in every log line and the tracer's resource; "" means none
	Host            string        // HOST, address to bind; "" means all interfaces
	Port            int           // PORT, the public port; 0 picks a free port
	AdminPort       int           // ADMIN_PORT: probes, metrics and, with Pprof, profiles; 0 picks a free port
	Pprof           bool          // PPROF: serve /debug/pprof/ on the admin port; false leaves it out
	DrainDelay      time.Duration // DRAIN_DELAY; 0 means lifecycle.DefaultDrainDelay (5s), negative means none
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT; 0 means lifecycle.DefaultShutdownTimeout (20s)
	PodName         string        // POD_NAME, the replica's name in X-Served-By and logs; "" means hostname:port
	LogLevel        string        // LOG_LEVEL: debug, info, warn, error; "" means info
	MaxConnAge      time.Duration // MAX_CONN_AGE, keep-alive rebalancing; 0 means DefaultMaxConnAge (1m), negative means never
	MaxConnRequests int           // MAX_CONN_REQUESTS, keep-alive rebalancing; 0 means never
	MaxConns        int           // MAX_CONNS, connections open at once (server.Config.MaxConns); 0 means server.DefaultMaxConns (1024), negative means no limit
	H2C             bool          // H2C: serve unencrypted HTTP/2 beside HTTP/1.1 (ignored with TLS, which offers h2 itself)
	ShedMaxLimit    int           // SHED_MAX_LIMIT: adaptive concurrency cap; 0 means shed.DefaultMaxLimit, negative turns shedding off
	RequestTimeout  time.Duration // REQUEST_TIMEOUT, a route's deadline; 0 means DefaultRequestTimeout (30s), negative means none
	// MemoryLimit (MEMORY_LIMIT) is the bytes the process may use, its
	// container's memory limit: the gRPC budgets below are sized from
	// it, programs size theirs from it, and [Program.Run] sets the Go
	// runtime's soft limit to at most nine tenths of it (less in a
	// small container, see the package documentation) unless GOMEMLIMIT
	// is set. 0 means MemoryLimit() (the cgroup's limit or GOMEMLIMIT),
	// which is 0 outside a container: no limit.
	MemoryLimit int64
	// GRPCPort (GRPC_PORT) serves gRPC on its own port (package
	// grpcserver); 0 means no gRPC server, negative picks a free port.
	GRPCPort int
	// GRPCReflection (GRPC_REFLECTION) registers gRPC server reflection,
	// which lists the services to anyone who reaches the port; off by
	// default.
	GRPCReflection bool
	// GRPCMaxRecvMsgSize (GRPC_MAX_RECV_MSG_SIZE) bounds a received gRPC
	// message in bytes; 0 means grpcserver.DefaultMaxRecvMsgSize (4 MiB).
	GRPCMaxRecvMsgSize int
	// GRPCMaxConcurrentStreams (GRPC_MAX_CONCURRENT_STREAMS) bounds one
	// gRPC connection's streams; 0 means
	// grpcserver.DefaultMaxConcurrentStreams (100).
	GRPCMaxConcurrentStreams int
	// GRPCRecvBudget (GRPC_RECV_BUDGET) bounds the bytes of gRPC
	// messages being received or handled at once, across connections;
	// a call takes GRPC_MAX_RECV_MSG_SIZE of it before its message is
	// read and is refused UNAVAILABLE when that is not left. It also
	// bounds the calls in flight, one per 16 KiB of it. 0 means an eighth
	// of MemoryLimit but at least two messages, or
	// grpcserver.DefaultRecvBudget (64 MiB) without a limit; negative
	// means no budget.
	GRPCRecvBudget int64
	// GRPCRecvTimeout (GRPC_RECV_TIMEOUT) is how long an admitted gRPC
	// call may take to receive its message; 0 means
	// grpcserver.DefaultRecvTimeout (10s), negative means none.
	GRPCRecvTimeout time.Duration
	// GRPCMaxConns (GRPC_MAX_CONNS) bounds the gRPC connections open at
	// once; 0 means one per 512 KiB of MemoryLimit (512 at 256 MiB),
	// or grpcserver.DefaultMaxConns (1024) without a limit; negative
	// means no bound.
	GRPCMaxConns int
	// GRPCMaxHeaderListSize (GRPC_MAX_HEADER_LIST_SIZE) bounds a gRPC
	// call's metadata in bytes; 0 means
	// grpcserver.DefaultMaxHeaderListSize (16 KiB).
	GRPCMaxHeaderListSize int
	// RequestLogSample (REQUEST_LOG_SAMPLE) is the share of requests
	// answered below 500 that get a log line; 5xx answers always do.
	// 0 means 1 (every request); negative turns request logs off.
	RequestLogSample float64

	// TLSCertFile and TLSKeyFile (TLS_CERT_FILE, TLS_KEY_FILE) make the
	// public port serve HTTPS with this PEM pair, re-read when the files
	// change; both or neither. "" means plain HTTP.
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile (TLS_CLIENT_CA_FILE) makes the public port demand a
	// client certificate signed by one of these CAs (mutual TLS).
	TLSClientCAFile string
	// UpstreamCAFile, UpstreamCertFile and UpstreamKeyFile
	// (UPSTREAM_CA_FILE, UPSTREAM_CERT_FILE, UPSTREAM_KEY_FILE) make every
	// upstream of the service speak TLS, verifying servers by this CA and,
	// with the pair, presenting a client certificate (mutual TLS). "" means
	// plain HTTP to balanced upstreams, Go's defaults for https:// URLs.
	UpstreamCAFile, UpstreamCertFile, UpstreamKeyFile string

	// Logger receives the service's logs; nil means JSON on stderr at
	// LogLevel. Either way records logged with a request's context carry
	// its request_id and trace_id.
	Logger *slog.Logger
}

// withDefaults returns o with every zero field that has a default set to
// it. The lifecycle and server default their own.
func (o Options) withDefaults() Options {
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.MaxConnAge == 0 {
		o.MaxConnAge = DefaultMaxConnAge
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.ShedMaxLimit == 0 {
		o.ShedMaxLimit = shed.DefaultMaxLimit
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = MemoryLimit()
	}
	return o
}

// Validate reports the first setting that is invalid, by its variable's
// name.
func (o Options) Validate() error {
	switch {
	case o.Port < 0 || o.Port > 65535:
		return fmt.Errorf("service: PORT %d is not a port number", o.Port)
	case o.AdminPort < 0 || o.AdminPort > 65535:
		return fmt.Errorf("service: ADMIN_PORT %d is not a port number", o.AdminPort)
	case o.GRPCPort > 65535:
		return fmt.Errorf("service: GRPC_PORT %d is not a port number", o.GRPCPort)
	case o.GRPCMaxRecvMsgSize < 0:
		return fmt.Errorf("service: GRPC_MAX_RECV_MSG_SIZE %d is negative", o.GRPCMaxRecvMsgSize)
	case o.GRPCMaxConcurrentStreams < 0 || o.GRPCMaxConcurrentStreams > math.MaxUint32:
		return fmt.Errorf("service: GRPC_MAX_CONCURRENT_STREAMS %d is not a stream count", o.GRPCMaxConcurrentStreams)
	case o.GRPCMaxHeaderListSize < 0 || o.GRPCMaxHeaderListSize > math.MaxUint32:
		return fmt.Errorf("service: GRPC_MAX_HEADER_LIST_SIZE %d is not a size", o.GRPCMaxHeaderListSize)
	case o.MemoryLimit < 0:
		return fmt.Errorf("service: MEMORY_LIMIT %d is negative", o.MemoryLimit)
	case o.ShutdownTimeout < 0:
		return fmt.Errorf("service: SHUTDOWN_TIMEOUT %v is negative", o.ShutdownTimeout)
	case o.RequestLogSample > 1:
		return fmt.Errorf("service: REQUEST_LOG_SAMPLE %v is above 1 (1 logs every request, negative none)", o.RequestLogSample)
	case math.IsNaN(o.RequestLogSample):
		return errors.New("service: REQUEST_LOG_SAMPLE NaN is not a share (1 logs every request, negative none)")
	case (o.TLSCertFile == "") != (o.TLSKeyFile == ""):
		return fmt.Errorf("service: TLS_CERT_FILE and TLS_KEY_FILE go together; only one is set")
	case o.TLSClientCAFile != "" && o.TLSCertFile == "":
		return fmt.Errorf("service: TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE")
	case (o.UpstreamCertFile == "") != (o.UpstreamKeyFile == ""):
		return fmt.Errorf("service: UPSTREAM_CERT_FILE and UPSTREAM_KEY_FILE go together; only one is set")
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	age := o.MaxConnAge
	if age < 0 {
		age = 0 // server.Config: zero is never
	}
	scfg := server.Config{MaxConnAge: age, MaxConnRequests: o.MaxConnRequests}
	if err := scfg.Validate(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// Bind registers o's settings on cs, each a flag and a variable. The
// defaults are DefaultPort and DefaultAdminPort unless o.Port or
// o.AdminPort is already set, and the package defaults.
func Bind(cs *config.Set, o *Options) {
	port, adminPort := DefaultPort, DefaultAdminPort
	if o.Port != 0 {
		port = o.Port
	}
	if o.AdminPort != 0 {
		adminPort = o.AdminPort
	}
	cs.String(&o.Host, "host", "HOST", "", "address to bind; empty means all interfaces")
	cs.Int(&o.Port, "port", "PORT", port, "public application port")
	cs.Int(&o.AdminPort, "admin-port", "ADMIN_PORT", adminPort, "admin port: probes, /metrics, and /debug/pprof/ with -pprof")
	cs.Bool(&o.Pprof, "pprof", "PPROF", false, "serve runtime profiles under /debug/pprof/ on the admin port (never the command line)")
	cs.Duration(&o.DrainDelay, "drain-delay", "DRAIN_DELAY", lifecycle.DefaultDrainDelay, "how long to keep serving after SIGTERM before shutdown")
	cs.Duration(&o.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", lifecycle.DefaultShutdownTimeout, "bound on shutdown after the drain")
	cs.String(&o.PodName, "pod-name", "POD_NAME", "", "replica name for X-Served-By; default host:port")
	cs.String(&o.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	cs.Duration(&o.MaxConnAge, "max-conn-age", "MAX_CONN_AGE", DefaultMaxConnAge, "ask clients to reconnect after a connection is this old, ±10% (negative: never)")
	cs.Int(&o.MaxConnRequests, "max-conn-requests", "MAX_CONN_REQUESTS", 0, "ask clients to reconnect after this many requests on a connection (0: never)")
	cs.Int(&o.MaxConns, "max-conns", "MAX_CONNS", server.DefaultMaxConns, "connections open at once; beyond it the longest idle is closed (negative: no limit)")
	cs.Bool(&o.H2C, "h2c", "H2C", true, "serve unencrypted HTTP/2 (prior knowledge) beside HTTP/1.1")
	cs.Int(&o.ShedMaxLimit, "shed-max-limit", "SHED_MAX_LIMIT", shed.DefaultMaxLimit, "upper bound of the adaptive concurrency limit (negative: no load shedding)")
	cs.Int64(&o.MemoryLimit, "memory-limit", "MEMORY_LIMIT", 0, "bytes the process may use (its container's limit); budgets are sized from it and GOMEMLIMIT, unless set, is at most nine tenths of it, less its resident code (0: the cgroup limit or GOMEMLIMIT)")
	cs.Duration(&o.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", DefaultRequestTimeout, "deadline of a request's work unless its route sets one (negative: none)")
	cs.Int(&o.GRPCPort, "grpc-port", "GRPC_PORT", o.GRPCPort, "gRPC port, apart from the public port (0: no gRPC server)")
	cs.Bool(&o.GRPCReflection, "grpc-reflection", "GRPC_REFLECTION", false, "register gRPC server reflection (lists the services to anyone who reaches the port)")
	cs.Int(&o.GRPCMaxRecvMsgSize, "grpc-max-recv-msg-size", "GRPC_MAX_RECV_MSG_SIZE", 0, "largest gRPC message received, in bytes (0: 4 MiB)")
	cs.Int(&o.GRPCMaxConcurrentStreams, "grpc-max-concurrent-streams", "GRPC_MAX_CONCURRENT_STREAMS", 0, "streams per gRPC connection (0: 100)")
	cs.Int64(&o.GRPCRecvBudget, "grpc-recv-budget", "GRPC_RECV_BUDGET", 0, "bytes of gRPC messages received or handled at once (0: an eighth of the memory limit, at least two messages; negative: none)")
	cs.Duration(&o.GRPCRecvTimeout, "grpc-recv-timeout", "GRPC_RECV_TIMEOUT", 0, "how long a gRPC call may take to receive its message (0: 10s; negative: no bound)")
	cs.Int(&o.GRPCMaxConns, "grpc-max-conns", "GRPC_MAX_CONNS", 0, "gRPC connections open at once (0: one per 512 KiB of the memory limit; negative: no bound)")
	cs.Int(&o.GRPCMaxHeaderListSize, "grpc-max-header-list-size", "GRPC_MAX_HEADER_LIST_SIZE", 0, "largest gRPC call metadata, in bytes (0: 16 KiB)")
	cs.Float64(&o.RequestLogSample, "request-log-sample", "REQUEST_LOG_SAMPLE", 1, "share of requests below 500 that get a log line; 5xx always do (negative: no request log)")
	cs.String(&o.TLSCertFile, "tls-cert-file", "TLS_CERT_FILE", "", "PEM certificate of the public port; with -tls-key-file it serves HTTPS, re-reading the files when they change")
	cs.String(&o.TLSKeyFile, "tls-key-file", "TLS_KEY_FILE", "", "PEM private key of -tls-cert-file")
	cs.String(&o.TLSClientCAFile, "tls-client-ca-file", "TLS_CLIENT_CA_FILE", "", "PEM CAs that must have signed a client's certificate (mutual TLS)")
	cs.String(&o.UpstreamCAFile, "upstream-ca-file", "UPSTREAM_CA_FILE", "", "PEM CAs that verify upstream servers; set, every upstream speaks TLS")
	cs.String(&o.UpstreamCertFile, "upstream-cert-file", "UPSTREAM_CERT_FILE", "", "PEM client certificate presented to upstreams (mutual TLS)")
	cs.String(&o.UpstreamKeyFile, "upstream-key-file", "UPSTREAM_KEY_FILE", "", "PEM private key of -upstream-cert-file")
}

func parseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if level == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return l, fmt.Errorf("service: LOG_LEVEL %q is not debug, info, warn or error", level)
	}
	return l, nil
}

// NewLogger returns a JSON logger at the named level, writing to stderr,
// with a "service" attribute unless name is empty.
func NewLogger(level, name string) (*slog.Logger, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	if name != "" {
		log = log.With("service", name)
	}
	return log, nil
}
