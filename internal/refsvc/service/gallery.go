package service

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/session"
)

// GalleryOptions are the gallery's own settings. The zero value is valid:
// a zero field means the default named beside it; negative durations are
// invalid.
type GalleryOptions struct {
	RedisURL         string        // REDIS_URL; "" keeps sessions in this process's memory
	RedisTimeout     time.Duration // REDIS_TIMEOUT: bound on one Redis call; 0 means session.DefaultRedisTimeout (300ms)
	RedisCritical    bool          // REDIS_CRITICAL: fail /readyz while Redis is unreachable; false reports it and stays ready (docs/dependencies.md)
	SessionSecret    string        // SESSION_SECRET; "" means a random secret, good for one process only
	SessionTTL       time.Duration // SESSION_TTL; 0 means session.DefaultTTL (30m)
	CookieSecure     string        // COOKIE_SECURE: always, never or forwarded (X-Forwarded-Proto); "" means always
	ThumbnailerURL   string        // THUMBNAILER_URL: one address, balanced by kube-proxy; "" means DefaultThumbnailerURL
	ThumbnailerAddrs string        // THUMBNAILER_ADDRS: host:port list, balanced here; "" means none
	ThumbnailerDNS   string        // THUMBNAILER_DNS: name:port of a headless Service, balanced here; "" means none
	ThumbnailerHost  string        // THUMBNAILER_HOST: Host header of calls balanced here; "" means DefaultThumbnailerHost
	DNSServer        string        // THUMBNAILER_DNS_SERVER: host:port of the DNS server; "" means the system's
	Policy           string        // BALANCE_POLICY; "" means balancer.NameConsistentHash
	Timeout          time.Duration // THUMBNAILER_TIMEOUT; 0 means gallery.DefaultTimeout (10s)
	H2C              bool          // THUMBNAILER_H2C
	MemoryLimit      int64         // MEMORY_LIMIT: bytes the process may use; a quarter bounds uploads held at once; 0 means gallery.DefaultUploadBytes for them
}

// Defaults of [GalleryOptions].
const (
	// DefaultThumbnailerURL is a thumbnailer on the same machine, as
	// `shoal demo` runs it.
	DefaultThumbnailerURL = "http://127.0.0.1:8081"
	// DefaultThumbnailerHost is the Host header of thumbnailer calls the
	// gallery balances itself: the Service's name, as kube-proxy would see
	// it.
	DefaultThumbnailerHost = "thumbnailer"
)

// withDefaults returns g with every zero field that has a default set to
// it.
func (g GalleryOptions) withDefaults() GalleryOptions {
	if g.SessionTTL == 0 {
		g.SessionTTL = session.DefaultTTL
	}
	if g.ThumbnailerURL == "" {
		g.ThumbnailerURL = DefaultThumbnailerURL
	}
	if g.ThumbnailerHost == "" {
		g.ThumbnailerHost = DefaultThumbnailerHost
	}
	if g.Policy == "" {
		g.Policy = balancer.NameConsistentHash
	}
	if g.Timeout == 0 {
		g.Timeout = gallery.DefaultTimeout
	}
	if g.RedisTimeout == 0 {
		g.RedisTimeout = session.DefaultRedisTimeout
	}
	return g
}

// Validate reports the first setting that is invalid, by its variable's
// name; the packages g feeds check the rest.
func (g GalleryOptions) Validate() error {
	switch {
	case g.SessionTTL < 0:
		return fmt.Errorf("service: SESSION_TTL %v is negative", g.SessionTTL)
	case g.MemoryLimit < 0:
		return fmt.Errorf("service: MEMORY_LIMIT %d is negative", g.MemoryLimit)
	case g.Timeout < 0:
		return fmt.Errorf("service: THUMBNAILER_TIMEOUT %v is negative", g.Timeout)
	case g.RedisTimeout < 0:
		return fmt.Errorf("service: REDIS_TIMEOUT %v is negative", g.RedisTimeout)
	}
	if _, err := session.ParseCookieSecure(g.CookieSecure); err != nil {
		return fmt.Errorf("service: COOKIE_SECURE %q is not always, never or forwarded", g.CookieSecure)
	}
	return nil
}

// BindGallery registers the gallery's settings on cs.
func BindGallery(cs *config.Set, g *GalleryOptions) {
	cs.String(&g.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL for sessions, e.g. redis://redis:6379/0; empty keeps sessions in memory")
	cs.Duration(&g.RedisTimeout, "redis-timeout", "REDIS_TIMEOUT", session.DefaultRedisTimeout, "bound on one Redis call, retries included; a session route answers 503 when it runs out")
	cs.Bool(&g.RedisCritical, "redis-critical", "REDIS_CRITICAL", false, "fail /readyz while Redis is unreachable (default: stay ready, answer 503 at once on session routes)")
	cs.String(&g.SessionSecret, "session-secret", "SESSION_SECRET", "", "secret that signs session cookies, shared by every replica")
	cs.Duration(&g.SessionTTL, "session-ttl", "SESSION_TTL", session.DefaultTTL, "session lifetime after last use")
	cs.String(&g.CookieSecure, "cookie-secure", "COOKIE_SECURE", string(session.CookieSecureAlways),
		"Secure attribute of the session cookie: always, never, or forwarded (when the request came over TLS or X-Forwarded-Proto is https)")
	cs.String(&g.ThumbnailerURL, "thumbnailer-url", "THUMBNAILER_URL", DefaultThumbnailerURL, "thumbnailer base URL (used when no address list or DNS name is given)")
	cs.String(&g.ThumbnailerAddrs, "thumbnailer-addrs", "THUMBNAILER_ADDRS", "", "comma-separated host:port list of thumbnailer replicas, balanced by the client")
	cs.String(&g.ThumbnailerDNS, "thumbnailer-dns", "THUMBNAILER_DNS", "", "name:port whose A/AAAA records are the thumbnailer replicas (a headless Service)")
	cs.String(&g.ThumbnailerHost, "thumbnailer-host", "THUMBNAILER_HOST", DefaultThumbnailerHost, "Host header of thumbnailer calls balanced by the client (with -thumbnailer-addrs or -thumbnailer-dns)")
	cs.String(&g.DNSServer, "thumbnailer-dns-server", "THUMBNAILER_DNS_SERVER", "", "host:port of the DNS server for -thumbnailer-dns; empty means the system's")
	cs.String(&g.Policy, "balance-policy", "BALANCE_POLICY", balancer.NameConsistentHash, "client-side balancing policy: round_robin, peak_ewma, consistent_hash")
	cs.Duration(&g.Timeout, "thumbnailer-timeout", "THUMBNAILER_TIMEOUT", gallery.DefaultTimeout, "deadline of one thumbnail call, retries included")
	cs.Int64(&g.MemoryLimit, "memory-limit", "MEMORY_LIMIT", MemoryLimit(), "bytes the process may use; a quarter bounds the uploads held at once (default: the cgroup limit or GOMEMLIMIT)")
	cs.Bool(&g.H2C, "thumbnailer-h2c", "THUMBNAILER_H2C", false, "call the thumbnailer over unencrypted HTTP/2")
}

// AddGallery wires the gallery's store, client, routes and checks into svc.
// It hands the Redis client and the thumbnailer upstream to svc.Lifecycle,
// which closes them after the servers stop; on an error it closes them
// itself.
func AddGallery(ctx context.Context, svc *Service, g GalleryOptions) (err error) {
	if err := g.Validate(); err != nil {
		return err
	}
	g = g.withDefaults()
	if g.SessionSecret == "" {
		// Without a shared secret, cookies signed by one replica fail on
		// another: fine for one process on a laptop, wrong in a cluster.
		g.SessionSecret = rand.Text() + rand.Text()
		svc.Logger.Warn("SESSION_SECRET is unset: using a random secret, so sessions do not survive a restart or span replicas")
	}
	var store session.Store
	var rdb *redis.Client
	if g.RedisURL == "" {
		svc.Logger.Warn("REDIS_URL is unset: sessions live in this process's memory and are lost with it")
		store = session.NewMemoryStore(time.Now)
	} else {
		rdb, err = newRedisClient(g.RedisURL, g.RedisTimeout)
		if err != nil {
			return err
		}
		defer closeOnError(&err, rdb.Close)
		store = session.NewRedisStore(rdb, session.DefaultRedisPrefix, session.WithTimeout(g.RedisTimeout))
	}
	sessions, err := session.NewManager(session.Config{
		Store: store, Secret: []byte(g.SessionSecret), TTL: g.SessionTTL, Logger: svc.Logger,
		CookieSecure: session.CookieSecure(g.CookieSecure),
	})
	if err != nil {
		return fmt.Errorf("service: sessions: %w", err)
	}
	// Every replica shares Redis, so failing readiness on it takes them all
	// out of the Service at once and clients get the proxy's error instead
	// of our quick 503; by default the check is reported, not critical
	// (docs/dependencies.md has the measurements).
	if err := svc.Health.Add(health.Check{Name: "sessions", Func: sessions.Check, Interval: 2 * time.Second, Timeout: time.Second, Critical: g.RedisCritical}); err != nil {
		return fmt.Errorf("service: %w", err)
	}

	reg := prometheus.WrapRegistererWith(prometheus.Labels{"upstream": "thumbnailer"}, svc.Registry)
	up, err := newUpstream(g, reg, svc.Logger)
	if err != nil {
		return err
	}
	defer closeOnError(&err, up.Close)
	api, err := gallery.New(gallery.Config{
		Sessions: sessions, ThumbnailerURL: up.BaseURL, Client: up.Client, Timeout: g.Timeout, Logger: svc.Logger,
		UploadBytes: g.MemoryLimit / 4,
	})
	if err != nil {
		return err
	}
	api.Register(svc.Mux)
	// Closers run in reverse order: the balancer, then Redis.
	if rdb != nil {
		svc.Lifecycle.OnClose("redis", func(context.Context) error { return rdb.Close() })
	}
	svc.Lifecycle.OnClose("thumbnailer upstream", func(context.Context) error { return up.Close() })
	return nil
}

// closeOnError runs closeFn when *err is set, for a resource whose owner
// was never handed it.
func closeOnError(err *error, closeFn func() error) {
	if *err != nil {
		_ = closeFn()
	}
}

func newRedisClient(redisURL string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("service: REDIS_URL: %w", err)
	}
	// Fail fast while Redis is down or hung: go-redis' defaults retry a
	// refused dial and a command for a second or more, and wait 3s for a
	// reply that a hung Redis never sends, so every session request would
	// hang that long before its 503. The store's deadline reaches the
	// socket only with ContextTimeoutEnabled; the socket timeouts bound a
	// call made without one.
	opts.DialerRetries, opts.MaxRetries = 1, 1
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.PoolTimeout = timeout
	return redis.NewClient(opts), nil
}
