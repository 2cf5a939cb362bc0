package grpcclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // the client side of the health service, for healthCheckConfig
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"

	"github.com/shoal-dev/shoal/balancer"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultSlowStart        = 10 * time.Second
	DefaultMaxAttempts      = 3
	DefaultInitialBackoff   = 50 * time.Millisecond
	DefaultMaxBackoff       = time.Second
	DefaultRetryMaxTokens   = 100
	DefaultRetryTokenRatio  = 0.1
	DefaultKeepaliveTime    = 30 * time.Second
	DefaultKeepaliveTimeout = 10 * time.Second
)

// Config configures the ClientConn [New] makes. Every zero value means
// the documented default, and a negative number or duration is invalid
// unless its comment says otherwise.
type Config struct {
	// Policy balances calls: [PeakEWMA] or [ConsistentHash]. "" means
	// PeakEWMA.
	Policy string
	// SlowStart is the window over which a replica that appears after
	// the first resolution ramps from 10% to its full share. Zero means
	// DefaultSlowStart (10s, as package service's upstreams); negative
	// means none.
	SlowStart time.Duration
	// Ejection configures passive outlier detection, as in package
	// balancer: Unavailable, Internal and DataLoss are failures,
	// DeadlineExceeded a timeout. The zero value means balancer's
	// defaults (5 failures in a row or 3 timeouts eject for 30s and
	// more, at most half of the replicas).
	Ejection balancer.Ejection

	// MaxAttempts of a call, the first included; UNAVAILABLE is retried
	// (grpc-go caps attempts at 5). Zero means DefaultMaxAttempts (3);
	// 1 means no retries.
	MaxAttempts int
	// PerTryTimeout bounds each try of a unary call: a try that runs out
	// of it while the call's deadline is still ahead is tried again on a
	// replica the call has not met, up to MaxAttempts tries, so a replica
	// that accepts calls and never answers costs a call one try, not its
	// deadline. Such a try counts as a timeout towards ejection. Zero
	// means none: each call has only its own deadline.
	PerTryTimeout time.Duration
	// InitialBackoff and MaxBackoff bound the randomized wait before a
	// retry, which doubles each attempt; a server's pushback
	// (grpc-retry-pushback-ms) replaces it. Zero means
	// DefaultInitialBackoff (50ms) and DefaultMaxBackoff (1s).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// RetryMaxTokens and RetryTokenRatio throttle retries across the
	// ClientConn (gRFC A6): each failed attempt takes a token, each
	// success gives back TokenRatio, and retries stop while at most half
	// the tokens are left. Zero means DefaultRetryMaxTokens (100: a burst
	// of 50 failures is retried) and DefaultRetryTokenRatio (0.1:
	// sustained retries of at most a tenth of the calls).
	RetryMaxTokens  float64
	RetryTokenRatio float64

	// KeepaliveTime is the idle time after which the client pings a
	// connection with calls in flight, and KeepaliveTimeout how long it
	// waits for the answer before it closes the connection. Zero means
	// DefaultKeepaliveTime (30s; Shoal's servers accept pings 10s apart)
	// and DefaultKeepaliveTimeout (10s).
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration

	// HealthService is the service name whose grpc.health.v1 status
	// decides whether a connection takes calls; "" means the server's
	// overall health. A server without the health service is taken as
	// healthy.
	HealthService string
	// NoHealthCheck turns the health watch off.
	NoHealthCheck bool

	// DNSInterval is how often dns:/// targets are looked up again, and
	// DNSMinInterval the least time between two lookups (a connection
	// loss asks for one). Zero means balancer.DefaultDNSInterval (5s)
	// and balancer.DefaultDNSMinInterval (1s).
	DNSInterval    time.Duration
	DNSMinInterval time.Duration
	// EndpointSlices makes the resolver of a k8s:///service.namespace:port
	// target, as package service's UpstreamConfig.EndpointSlices;
	// balancer/k8sresolver's Targets is one. Nil leaves client-go out of
	// the program, and such targets fail.
	EndpointSlices func(service, namespace, port string) (balancer.Resolver, error)

	// Credentials secure the connections. Nil means none (plain HTTP/2,
	// as inside a cluster network); use credentials/tls for TLS.
	Credentials credentials.TransportCredentials
	// Registerer receives the client's call metrics
	// (grpc_client_started_total, grpc_client_handled_total{grpc_code},
	// grpc_client_msg_received_total, grpc_client_msg_sent_total,
	// grpc_client_handling_seconds); ClientConns that share one share the
	// series. Nil means none.
	Registerer prometheus.Registerer
	// Logger receives endpoint set changes, ejections and lookup errors.
	// Nil means slog.Default().
	Logger *slog.Logger
	// DialOptions are appended to New's own, so they win.
	DialOptions []grpc.DialOption
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	switch {
	case c.Policy != "" && c.Policy != PeakEWMA && c.Policy != ConsistentHash:
		return fmt.Errorf("grpcclient: Policy %q: want %q or %q", c.Policy, PeakEWMA, ConsistentHash)
	case c.MaxAttempts < 0:
		return fmt.Errorf("grpcclient: MaxAttempts %d is negative", c.MaxAttempts)
	case c.InitialBackoff < 0:
		return fmt.Errorf("grpcclient: InitialBackoff %v is negative", c.InitialBackoff)
	case c.MaxBackoff < 0:
		return fmt.Errorf("grpcclient: MaxBackoff %v is negative", c.MaxBackoff)
	case c.RetryMaxTokens < 0 || c.RetryMaxTokens > 1000:
		return fmt.Errorf("grpcclient: RetryMaxTokens %v out of range 0-1000", c.RetryMaxTokens)
	case c.RetryTokenRatio < 0:
		return fmt.Errorf("grpcclient: RetryTokenRatio %v is negative", c.RetryTokenRatio)
	case c.PerTryTimeout < 0:
		return fmt.Errorf("grpcclient: PerTryTimeout %v is negative", c.PerTryTimeout)
	case c.KeepaliveTime < 0:
		return fmt.Errorf("grpcclient: KeepaliveTime %v is negative", c.KeepaliveTime)
	case c.KeepaliveTimeout < 0:
		return fmt.Errorf("grpcclient: KeepaliveTimeout %v is negative", c.KeepaliveTimeout)
	case c.DNSInterval < 0:
		return fmt.Errorf("grpcclient: DNSInterval %v is negative", c.DNSInterval)
	case c.DNSMinInterval < 0:
		return fmt.Errorf("grpcclient: DNSMinInterval %v is negative", c.DNSMinInterval)
	}
	if err := c.policyConfig().tracker(c.policy()).Validate(); err != nil {
		return fmt.Errorf("grpcclient: %w", err)
	}
	return nil
}

func (c Config) policy() string {
	if c.Policy == "" {
		return PeakEWMA
	}
	return c.Policy
}

func (c Config) policyConfig() *PolicyConfig {
	slow := c.SlowStart
	switch {
	case slow == 0:
		slow = DefaultSlowStart
	case slow < 0:
		slow = 0
	}
	ej := c.Ejection
	return &PolicyConfig{
		SlowStart: Duration(slow),
		Ejection: EjectionConfig{
			Disabled: ej.Disabled, ConsecutiveFailures: ej.ConsecutiveFailures, Timeouts: ej.Timeouts,
			BaseTime: Duration(ej.BaseTime), MaxTime: Duration(ej.MaxTime), MaxPercent: ej.MaxPercent,
		},
	}
}

// ServiceConfig returns the service config, as JSON, that [New] gives the
// ClientConn as its default: the policy, the retry policy for every
// method, retry throttling and the health check.
func (c Config) ServiceConfig() (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	type retryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	type methodConfig struct {
		Name        []struct{}   `json:"name"`
		RetryPolicy *retryPolicy `json:"retryPolicy,omitempty"`
	}
	type throttling struct {
		MaxTokens  float64 `json:"maxTokens"`
		TokenRatio float64 `json:"tokenRatio"`
	}
	type healthCheck struct {
		ServiceName string `json:"serviceName"`
	}
	sc := struct {
		LB         []map[string]*PolicyConfig `json:"loadBalancingConfig"`
		Methods    []methodConfig             `json:"methodConfig,omitempty"`
		Throttling *throttling                `json:"retryThrottling,omitempty"`
		Health     *healthCheck               `json:"healthCheckConfig,omitempty"`
	}{
		LB: []map[string]*PolicyConfig{{c.policy(): c.policyConfig()}},
	}
	attempts := c.MaxAttempts
	if attempts == 0 {
		attempts = DefaultMaxAttempts
	}
	if attempts > 1 {
		initial, maxB := or(c.InitialBackoff, DefaultInitialBackoff), or(c.MaxBackoff, DefaultMaxBackoff)
		sc.Methods = []methodConfig{{
			Name: []struct{}{{}}, // every method
			RetryPolicy: &retryPolicy{
				MaxAttempts:          attempts,
				InitialBackoff:       seconds(initial),
				MaxBackoff:           seconds(max(maxB, initial)),
				BackoffMultiplier:    2,
				RetryableStatusCodes: []string{"UNAVAILABLE"},
			},
		}}
		sc.Throttling = &throttling{MaxTokens: c.RetryMaxTokens, TokenRatio: c.RetryTokenRatio}
		if sc.Throttling.MaxTokens == 0 {
			sc.Throttling.MaxTokens = DefaultRetryMaxTokens
		}
		if sc.Throttling.TokenRatio == 0 {
			sc.Throttling.TokenRatio = DefaultRetryTokenRatio
		}
	}
	if !c.NoHealthCheck {
		sc.Health = &healthCheck{ServiceName: c.HealthService}
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("grpcclient: service config: %w", err)
	}
	return string(b), nil
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// seconds writes d as a protobuf JSON duration, e.g. "0.05s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.9gs", d.Seconds())
}

// New returns a grpc.ClientConn for target (dns:///name:port,
// dns://server:port/name:port, k8s:///service.namespace:port, or any
// scheme registered with grpc-go, e.g. passthrough:///host:port or
// unix:///path) configured as [Config] says; a target without a scheme
// is a dns one. Like grpc.NewClient it does not connect until the first
// call (or Connect). Close the ClientConn to stop its resolver.
func New(target string, cfg Config) (*grpc.ClientConn, error) {
	sc, err := cfg.ServiceConfig()
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(target, SchemeK8s+":") && cfg.EndpointSlices == nil {
		return nil, fmt.Errorf("%w: %q needs Config.EndpointSlices (package balancer/k8sresolver)", ErrTarget, target)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	resolvers := []resolver.Builder{withLogger(DNS(balancer.DNSConfig{
		Interval: cfg.DNSInterval, MinInterval: cfg.DNSMinInterval, Logger: log,
	}), log)}
	if cfg.EndpointSlices != nil {
		resolvers = append(resolvers, withLogger(EndpointSlices(cfg.EndpointSlices), log))
	}
	creds := cfg.Credentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(resolvers...),
		grpc.WithDefaultServiceConfig(sc),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    or(cfg.KeepaliveTime, DefaultKeepaliveTime),
			Timeout: or(cfg.KeepaliveTimeout, DefaultKeepaliveTimeout),
		}),
	}
	if cfg.Registerer != nil {
		m, err := clientMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(m.UnaryClientInterceptor()),
			grpc.WithChainStreamInterceptor(m.StreamClientInterceptor()))
	}
	if cfg.PerTryTimeout > 0 {
		attempts := cfg.MaxAttempts
		if attempts == 0 {
			attempts = DefaultMaxAttempts
		}
		// Inside the metrics, which count the call once, tries and all.
		opts = append(opts, grpc.WithChainUnaryInterceptor(perTry(cfg.PerTryTimeout, attempts)))
	}
	opts = append(opts, cfg.DialOptions...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: %w", err)
	}
	return cc, nil
}

// clientMetrics registers the call metrics on reg, or returns the ones
// another ClientConn registered there.
func clientMetrics(reg prometheus.Registerer) (*grpcprom.ClientMetrics, error) {
	m := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram())
	err := reg.Register(m)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(*grpcprom.ClientMetrics); ok {
			return old, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("grpcclient: register metrics: %w", err)
	}
	return m, nil
}
