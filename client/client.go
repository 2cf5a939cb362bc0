package client

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures [New] and [NewTransport]. The zero value is valid;
// every zero field means the default written beside it.
type Config struct {
	// MaxIdleConnsPerHost is the idle pool kept per endpoint; size it to
	// the concurrency expected per replica so bursts reuse connections
	// instead of dialling. Zero means 64.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes pooled connections idle this long. It must
	// stay below the servers' idle timeout (about 90s for Shoal servers)
	// so the client, not the server, closes an idle connection and no
	// request is written onto a connection the server is closing.
	// Zero means 60s.
	IdleConnTimeout time.Duration
	// DialTimeout bounds connection establishment. Zero means 5s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Zero means 5s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after
	// the request is written. Zero means 30s.
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
	// included. Zero means 3; 1 disables retries.
	MaxAttempts int
	// PerTryTimeout bounds each attempt, response body included, inside
	// the caller's context deadline. Zero means no bound beyond the
	// caller's.
	PerTryTimeout time.Duration
	// BackoffBase is the backoff before the first retry; it doubles per
	// retry and the wait is drawn uniformly from [0, backoff] ("full
	// jitter"). Zero means 25ms.
	BackoffBase time.Duration
	// BackoffMax caps the backoff, and the wait a Retry-After header
	// asks for. Zero means 1s.
	BackoffMax time.Duration
	// Budget caps retries as a share of requests.
	Budget BudgetConfig

	// Registerer receives the client's metrics; nil means none.
	Registerer prometheus.Registerer
	// Now is the clock of the retry budget. Nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for jitter and must be safe
	// for concurrent use. Nil means math/rand/v2's Float64.
	Rand func() float64
	// Sleep waits d or until ctx ends, returning ctx's error then. Nil
	// means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// NewTransport returns an http.Transport tuned for calls between
// services, per cfg's transport fields.
func NewTransport(cfg Config) *http.Transport {
	perHost := cfg.MaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = 64
	}
	dialer := &net.Dialer{
		Timeout:   orDefault(cfg.DialTimeout, 5*time.Second),
		KeepAlive: 30 * time.Second,
	}
	t := &http.Transport{
		Proxy:                  nil, // service-to-service traffic never goes through an HTTP proxy
		DialContext:            dialer.DialContext,
		MaxIdleConns:           0, // the per-host bound is the one that matters
		MaxIdleConnsPerHost:    perHost,
		IdleConnTimeout:        orDefault(cfg.IdleConnTimeout, 60*time.Second),
		TLSHandshakeTimeout:    orDefault(cfg.TLSHandshakeTimeout, 5*time.Second),
		ResponseHeaderTimeout:  orDefault(cfg.ResponseHeaderTimeout, 30*time.Second),
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
// Timeout: the request's context carries the caller's deadline.
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
	next := cfg.Transport
	if next == nil {
		next = NewTransport(cfg)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r := &RetryTransport{
		next:        next,
		maxAttempts: cfg.MaxAttempts,
		perTry:      cfg.PerTryTimeout,
		base:        orDefault(cfg.BackoffBase, 25*time.Millisecond),
		max:         orDefault(cfg.BackoffMax, time.Second),
		budget:      NewRetryBudget(cfg.Budget, cfg.Now),
		rand:        cfg.Rand,
		sleep:       cfg.Sleep,
		metrics:     m,
	}
	if r.maxAttempts <= 0 {
		r.maxAttempts = 3
	}
	r.max = max(r.max, r.base)
	if r.rand == nil {
		r.rand = rand.Float64
	}
	if r.sleep == nil {
		r.sleep = sleep
	}
	return r, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
