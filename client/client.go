package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied to zero fields of [Config].
const (
	DefaultMaxIdleConnsPerHost   = 64
	DefaultIdleConnTimeout       = 60 * time.Second
	DefaultDialTimeout           = 5 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultMaxAttempts           = 3
	DefaultBackoffBase           = 25 * time.Millisecond
	DefaultBackoffMax            = time.Second
)

// Config configures [New] and [NewTransport]. The zero value is valid;
// every zero field means the default written beside it, and a negative
// number or duration is invalid (see [Config.Validate]).
type Config struct {
	// MaxIdleConnsPerHost is the idle pool kept per endpoint; size it to
	// the concurrency expected per replica so bursts reuse connections
	// instead of dialling. Zero means DefaultMaxIdleConnsPerHost (64).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes pooled connections idle this long. It must
	// stay below the servers' idle timeout (about 90s for Shoal servers)
	// so the client, not the server, closes an idle connection and no
	// request is written onto a connection the server is closing.
	// Zero means DefaultIdleConnTimeout (60s).
	IdleConnTimeout time.Duration
	// DialTimeout bounds connection establishment. Zero means
	// DefaultDialTimeout (5s).
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Zero means
	// DefaultTLSHandshakeTimeout (5s).
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after
	// the request is written. Zero means DefaultResponseHeaderTimeout
	// (30s).
	ResponseHeaderTimeout time.Duration
	// H2C speaks HTTP/2 without TLS (prior knowledge) to http:// URLs,
	// so one connection per replica multiplexes every request.
	H2C bool
	// TLSClientConfig is used for https:// URLs. Nil means Go's defaults.
	TLSClientConfig *tls.Config

	// Transport sends each attempt. Nil means NewTransport(cfg). Set it
	// to a balancer.Balancer (itself over NewTransport) to spread
	// requests, and retries, over replicas.
	Transport http.RoundTripper

	// MaxAttempts is the number of tries per request, the first
	// included. Zero means DefaultMaxAttempts (3); 1 disables retries.
	MaxAttempts int
	// PerTryTimeout bounds each attempt, response body included, inside
	// the caller's context deadline. Zero means the default, no bound
	// beyond the caller's.
	PerTryTimeout time.Duration
	// BackoffBase is the backoff before the first retry; it doubles per
	// retry and the wait is drawn uniformly from [0, backoff] ("full
	// jitter"). Zero means DefaultBackoffBase (25ms).
	BackoffBase time.Duration
	// BackoffMax caps the backoff, and the wait a Retry-After header
	// asks for; a cap below BackoffBase means BackoffBase. Zero means
	// DefaultBackoffMax (1s).
	BackoffMax time.Duration
	// Budget caps retries as a share of requests.
	Budget BudgetConfig

	// Registerer receives the client's metrics; nil means none.
	Registerer prometheus.Registerer
	// Now is the clock of the retry budget and of the call duration
	// metric. Nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for jitter and must be safe
	// for concurrent use. Nil means math/rand/v2's Float64.
	Rand func() float64
	// Sleep waits d or until ctx ends, returning ctx's error then. Nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports the first invalid field of c: a negative number or
// duration, in c or in c.Budget.
func (c Config) Validate() error {
	if err := c.validateTransport(); err != nil {
		return err
	}
	switch {
	case c.MaxAttempts < 0:
		return fmt.Errorf("client: MaxAttempts %d is negative", c.MaxAttempts)
	case c.PerTryTimeout < 0:
		return fmt.Errorf("client: PerTryTimeout %v is negative", c.PerTryTimeout)
	case c.BackoffBase < 0:
		return fmt.Errorf("client: BackoffBase %v is negative", c.BackoffBase)
	case c.BackoffMax < 0:
		return fmt.Errorf("client: BackoffMax %v is negative", c.BackoffMax)
	}
	return c.Budget.Validate()
}

// validateTransport checks the fields [NewTransport] uses.
func (c Config) validateTransport() error {
	switch {
	case c.MaxIdleConnsPerHost < 0:
		return fmt.Errorf("client: MaxIdleConnsPerHost %d is negative", c.MaxIdleConnsPerHost)
	case c.IdleConnTimeout < 0:
		return fmt.Errorf("client: IdleConnTimeout %v is negative", c.IdleConnTimeout)
	case c.DialTimeout < 0:
		return fmt.Errorf("client: DialTimeout %v is negative", c.DialTimeout)
	case c.TLSHandshakeTimeout < 0:
		return fmt.Errorf("client: TLSHandshakeTimeout %v is negative", c.TLSHandshakeTimeout)
	case c.ResponseHeaderTimeout < 0:
		return fmt.Errorf("client: ResponseHeaderTimeout %v is negative", c.ResponseHeaderTimeout)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
// c.Budget keeps its zeros: [NewRetryBudget] applies its defaults.
func (c Config) withDefaults() Config {
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if c.IdleConnTimeout == 0 {
		c.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.TLSHandshakeTimeout == 0 {
		c.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if c.ResponseHeaderTimeout == 0 {
		c.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffBase)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	return c
}

// NewTransport returns an http.Transport tuned for calls between
// services, per cfg's transport fields. It has no error to return, so it
// panics if one of those fields is negative; [New] reports that as an
// error, and [Config.Validate] checks a Config beforehand.
func NewTransport(cfg Config) *http.Transport {
	if err := cfg.validateTransport(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	dialer := &net.Dialer{
		Timeout:   cfg.DialTimeout,
		KeepAlive: 30 * time.Second,
	}
	t := &http.Transport{
		Proxy:                  nil, // service-to-service traffic never goes through an HTTP proxy
		DialContext:            dialer.DialContext,
		MaxIdleConns:           0, // the per-host bound is the one that matters
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		TLSClientConfig:        cfg.TLSClientConfig,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	if cfg.H2C {
		p := new(http.Protocols)
		p.SetHTTP1(false)
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
		t.Protocols = p
	}
	return t
}

// New returns an http.Client whose Transport retries per cfg over
// cfg.Transport (or a fresh [NewTransport]). The client sets no overall
// Timeout: the request's context carries the caller's deadline. An
// invalid cfg is an error naming the field.
func New(cfg Config) (*http.Client, error) {
	rt, err := NewRetryTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

// NewRetryTransport returns the retrying RoundTripper [New] uses, for
// callers that build their own http.Client.
func NewRetryTransport(cfg Config) (*RetryTransport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	next := cfg.Transport
	if next == nil {
		next = NewTransport(cfg)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &RetryTransport{
		next:        next,
		maxAttempts: cfg.MaxAttempts,
		perTry:      cfg.PerTryTimeout,
		base:        cfg.BackoffBase,
		max:         cfg.BackoffMax,
		budget:      NewRetryBudget(cfg.Budget, cfg.Now),
		rand:        cfg.Rand,
		sleep:       cfg.Sleep,
		now:         cfg.Now,
		metrics:     m,
	}, nil
}
