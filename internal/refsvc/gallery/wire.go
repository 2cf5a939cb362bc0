package gallery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/grpcclient"
	"github.com/shoal-dev/shoal/health"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
	"github.com/shoal-dev/shoal/service"
	"github.com/shoal-dev/shoal/session"
	"github.com/shoal-dev/shoal/shed"
)

// Settings are the gallery service's own settings, beside the
// service.Options every service shares. The zero value is valid: a zero
// field means the default named beside it; negative durations and sizes
// are invalid.
type Settings struct {
	RedisURL      string        // REDIS_URL; "" keeps sessions in this process's memory
	RedisTimeout  time.Duration // REDIS_TIMEOUT: bound on one Redis call; 0 means session.DefaultRedisTimeout (300ms)
	RedisCritical bool          // REDIS_CRITICAL: fail /readyz while Redis is unreachable; false reports it and stays ready (docs/dependencies.md)
	SessionSecret string        // SESSION_SECRET; "" means a random secret, good for one process only
	SessionTTL    time.Duration // SESSION_TTL; 0 means session.DefaultTTL (30m)
	CookieSecure  string        // COOKIE_SECURE: always, never or forwarded (X-Forwarded-Proto); "" means always

	// Where the thumbnailer is: the first of Thumbnailer,
	// ThumbnailerAddrs, ThumbnailerDNS and ThumbnailerURL that is set.
	//
	// Thumbnailer (THUMBNAILER) is a service.UpstreamConfig Target: a URL,
	// a host:port list or dns://[server]/name:port. Not k8s:///: the
	// gallery does not link client-go, and its ServiceAccount may not
	// watch EndpointSlices.
	Thumbnailer      string
	ThumbnailerAddrs string // THUMBNAILER_ADDRS: host:port list, balanced here
	ThumbnailerDNS   string // THUMBNAILER_DNS: name:port of a headless Service, re-resolved and balanced here
	DNSServer        string // THUMBNAILER_DNS_SERVER: host:port of the DNS server for ThumbnailerDNS; "" means the system's
	ThumbnailerURL   string // THUMBNAILER_URL: one address, balanced by kube-proxy; "" means DefaultThumbnailerURL

	// ThumbnailerGRPC (THUMBNAILER_GRPC) is a gRPC target of the
	// thumbnailer: dns:///name:port for a headless Service
	// (dns://server:port/name:port asks that DNS server), or any target
	// grpcclient.New takes. Set, the gallery calls Resize over gRPC
	// through grpcclient, balanced by consistent hashing on the digest
	// (BALANCE_POLICY=peak_ewma picks peak-EWMA instead), and the four
	// settings above are not used; "" keeps the HTTP call.
	ThumbnailerGRPC string

	ThumbnailerHost string // THUMBNAILER_HOST: Host header of calls balanced here; "" means DefaultThumbnailerHost
	Policy          string // BALANCE_POLICY; "" means balancer.NameConsistentHash
	H2C             bool   // THUMBNAILER_H2C: call the thumbnailer over unencrypted HTTP/2
	// Timeout (THUMBNAILER_TIMEOUT) is the deadline of one thumbnail call,
	// retries included, each try getting half of it; 0 means
	// DefaultTimeout (10s). The POST /v1/thumbnails route's deadline, in
	// place of the service's REQUEST_TIMEOUT, is this plus the route's
	// other waits: memory for the upload (up to 5s), two Redis calls (up
	// to REDIS_TIMEOUT each) and a second to answer; 16.6s by default.
	Timeout time.Duration
	// MemoryLimit is the bytes the process may use; a quarter bounds the
	// uploads, and the thumbnails read back for them, held at once
	// (Config.UploadBytes). 0 means the service's MEMORY_LIMIT
	// (service.Options.MemoryLimit), and DefaultUploadBytes for them
	// when that is 0 too.
	MemoryLimit int64
}

// Defaults of [Settings].
const (
	// DefaultThumbnailerURL is a thumbnailer on the same machine, as
	// `shoal demo` runs it.
	DefaultThumbnailerURL = "http://127.0.0.1:8081"
	// DefaultThumbnailerHost is the Host header of thumbnailer calls the
	// gallery balances itself: the Service's name, as kube-proxy would see
	// it.
	DefaultThumbnailerHost = "thumbnailer"
)

// withDefaults returns s with every zero field that has a default set to
// it.
func (s Settings) withDefaults() Settings {
	if s.SessionTTL == 0 {
		s.SessionTTL = session.DefaultTTL
	}
	if s.ThumbnailerURL == "" {
		s.ThumbnailerURL = DefaultThumbnailerURL
	}
	if s.ThumbnailerHost == "" {
		s.ThumbnailerHost = DefaultThumbnailerHost
	}
	if s.Policy == "" {
		s.Policy = balancer.NameConsistentHash
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.RedisTimeout == 0 {
		s.RedisTimeout = session.DefaultRedisTimeout
	}
	return s
}

// Validate reports the first setting that is invalid, by its variable's
// name; the packages s feeds check the rest.
func (s Settings) Validate() error {
	switch {
	case s.SessionTTL < 0:
		return fmt.Errorf("gallery: SESSION_TTL %v is negative", s.SessionTTL)
	case s.MemoryLimit < 0:
		return fmt.Errorf("gallery: MemoryLimit %d is negative", s.MemoryLimit)
	case s.Timeout < 0:
		return fmt.Errorf("gallery: THUMBNAILER_TIMEOUT %v is negative", s.Timeout)
	case s.RedisTimeout < 0:
		return fmt.Errorf("gallery: REDIS_TIMEOUT %v is negative", s.RedisTimeout)
	}
	if _, err := session.ParseCookieSecure(s.CookieSecure); err != nil {
		return fmt.Errorf("gallery: COOKIE_SECURE %q is not always, never or forwarded", s.CookieSecure)
	}
	if s.Policy != "" {
		if _, err := balancer.PolicyByName(s.Policy); err != nil {
			return fmt.Errorf("gallery: BALANCE_POLICY: %w", err)
		}
	}
	return nil
}

// thumbnailerTarget returns the service.UpstreamConfig Target the
// settings name and the variable it came from, for errors.
func (s Settings) thumbnailerTarget() (target, variable string) {
	switch {
	case s.Thumbnailer != "":
		return s.Thumbnailer, "THUMBNAILER"
	case s.ThumbnailerAddrs != "":
		return s.ThumbnailerAddrs, "THUMBNAILER_ADDRS"
	case s.ThumbnailerDNS != "":
		return "dns://" + s.DNSServer + "/" + s.ThumbnailerDNS, "THUMBNAILER_DNS"
	default:
		return s.ThumbnailerURL, "THUMBNAILER_URL"
	}
}

// thumbnailRouteTimeout is the deadline of a whole POST /v1/thumbnails
// request: what the route may wait for, added up, so that the thumbnailer
// call always gets its whole Timeout (even one above REQUEST_TIMEOUT) and
// the route can still answer after it. Those waits are memory for the
// upload (shed.DefaultBudgetWait), the call (Timeout), the session's load
// and the history's save (a Redis call each), and a second to answer.
// With the defaults it is 16.6s.
func (s Settings) thumbnailRouteTimeout() time.Duration {
	return shed.DefaultBudgetWait + s.Timeout + 2*s.RedisTimeout + time.Second
}

// Bind registers the gallery's settings on cs, each a flag and a variable.
func Bind(cs *config.Set, s *Settings) {
	cs.Secret(&s.RedisURL, "redis-url", "REDIS_URL", "Redis URL for sessions, e.g. redis://redis:6379/0; empty keeps sessions in memory")
	cs.Duration(&s.RedisTimeout, "redis-timeout", "REDIS_TIMEOUT", session.DefaultRedisTimeout, "bound on one Redis call, retries included; a session route answers 503 when it runs out")
	cs.Bool(&s.RedisCritical, "redis-critical", "REDIS_CRITICAL", false, "fail /readyz while Redis is unreachable (default: stay ready, answer 503 at once on session routes)")
	cs.Secret(&s.SessionSecret, "session-secret", "SESSION_SECRET", "secret that signs session cookies, shared by every replica")
	cs.Duration(&s.SessionTTL, "session-ttl", "SESSION_TTL", session.DefaultTTL, "session lifetime after last use")
	cs.String(&s.CookieSecure, "cookie-secure", "COOKIE_SECURE", string(session.CookieSecureAlways),
		"Secure attribute of the session cookie: always, never, or forwarded (when the request came over TLS or X-Forwarded-Proto is https)")
	cs.String(&s.Thumbnailer, "thumbnailer", "THUMBNAILER", "",
		"where the thumbnailer is: http://host:port, a host:port list or dns://[server]/name:port; wins over the three below")
	cs.String(&s.ThumbnailerAddrs, "thumbnailer-addrs", "THUMBNAILER_ADDRS", "", "comma-separated host:port list of thumbnailer replicas, balanced by the client")
	cs.String(&s.ThumbnailerDNS, "thumbnailer-dns", "THUMBNAILER_DNS", "", "name:port whose A/AAAA records are the thumbnailer replicas (a headless Service)")
	cs.String(&s.DNSServer, "thumbnailer-dns-server", "THUMBNAILER_DNS_SERVER", "", "host:port of the DNS server for -thumbnailer-dns; empty means the system's")
	cs.String(&s.ThumbnailerURL, "thumbnailer-url", "THUMBNAILER_URL", DefaultThumbnailerURL, "thumbnailer base URL (used when no target, address list or DNS name is given)")
	cs.String(&s.ThumbnailerGRPC, "thumbnailer-grpc", "THUMBNAILER_GRPC", "",
		"gRPC target of the thumbnailer, e.g. dns:///thumbnailer-headless:8082; set, the gallery calls it over gRPC instead of HTTP")
	cs.String(&s.ThumbnailerHost, "thumbnailer-host", "THUMBNAILER_HOST", DefaultThumbnailerHost, "Host header of thumbnailer calls balanced by the client")
	cs.String(&s.Policy, "balance-policy", "BALANCE_POLICY", balancer.NameConsistentHash, "client-side balancing policy: round_robin, peak_ewma, consistent_hash")
	cs.Duration(&s.Timeout, "thumbnailer-timeout", "THUMBNAILER_TIMEOUT", DefaultTimeout, "deadline of one thumbnail call, retries included; the thumbnail route's deadline is derived from it")
	cs.Bool(&s.H2C, "thumbnailer-h2c", "THUMBNAILER_H2C", false, "call the thumbnailer over unencrypted HTTP/2")
}

// Add wires the gallery's session store, thumbnailer upstream, routes and
// checks into svc. The upstream is svc's, and so is the Redis client once
// Add returns nil: both are closed after the servers stop. On an error Add
// closes the Redis client itself; the caller closes svc (service.Program
// does), which closes the upstream.
func Add(svc *service.Service, s Settings) (err error) {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.MemoryLimit == 0 {
		s.MemoryLimit = svc.Options.MemoryLimit
	}
	s = s.withDefaults()
	if s.SessionSecret == "" {
		// Without a shared secret, cookies signed by one replica fail on
		// another: fine for one process on a laptop, wrong in a cluster.
		s.SessionSecret = rand.Text() + rand.Text()
		svc.Logger.Warn("SESSION_SECRET is unset: using a random secret, so sessions do not survive a restart or span replicas")
	}
	var store session.Store
	var rdb *redis.Client
	if s.RedisURL == "" {
		svc.Logger.Warn("REDIS_URL is unset: sessions live in this process's memory and are lost with it")
		store = session.NewMemoryStore(time.Now)
	} else {
		rdb, err = newRedisClient(s.RedisURL, s.RedisTimeout)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = rdb.Close()
			}
		}()
		store = session.NewRedisStore(rdb, session.DefaultRedisPrefix, session.WithTimeout(s.RedisTimeout))
	}
	sessions, err := session.NewManager(session.Config{
		Store: store, Secret: []byte(s.SessionSecret), TTL: s.SessionTTL, Logger: svc.Logger,
		CookieSecure: session.CookieSecure(s.CookieSecure),
	})
	if err != nil {
		return fmt.Errorf("gallery: sessions: %w", err)
	}
	// Every replica shares Redis, so failing readiness on it takes them all
	// out of the Service at once and clients get the proxy's error instead
	// of our quick 503; by default the check is reported, not critical
	// (docs/dependencies.md has the measurements).
	if err := svc.Health.Add(health.Check{Name: "sessions", Func: sessions.Check, Interval: 2 * time.Second, Timeout: time.Second, Critical: s.RedisCritical}); err != nil {
		return fmt.Errorf("gallery: %w", err)
	}

	cfg := Config{
		Sessions: sessions, Timeout: s.Timeout, Logger: svc.Logger,
		UploadBytes: s.MemoryLimit / 4, ThumbnailRouteTimeout: s.thumbnailRouteTimeout(),
	}
	var cc *grpc.ClientConn
	if s.ThumbnailerGRPC != "" {
		if cc, err = dialThumbnailer(svc, s); err != nil {
			return err
		}
		// Closed after the servers stop, as an upstream is; by Add
		// itself when Add fails.
		defer func() {
			if err != nil {
				_ = cc.Close()
			}
		}()
		// Reported, never critical: every replica shares the
		// thumbnailers, and the HTTP call has no readiness check either;
		// a gallery without them still signs users in and answers 502
		// at once.
		if err := svc.Health.Add(health.Check{Name: "thumbnailer", Func: grpcCheck(cc), Interval: 2 * time.Second, Timeout: time.Second}); err != nil {
			return fmt.Errorf("gallery: %w", err)
		}
		cfg.GRPC = pb.NewThumbnailerClient(cc)
	} else {
		target, variable := s.thumbnailerTarget()
		up, err := svc.Upstream(service.UpstreamConfig{
			Name: "thumbnailer", Target: target, Host: s.ThumbnailerHost, Policy: s.Policy, H2C: s.H2C,
			PerTryTimeout: s.Timeout / 2,
		})
		if err != nil {
			return fmt.Errorf("gallery: %s: %w", variable, err)
		}
		cfg.ThumbnailerURL, cfg.Client = up.BaseURL, up.Client()
	}
	api, err := New(cfg)
	if err != nil {
		return err
	}
	api.Register(svc)
	if cc != nil {
		svc.Lifecycle.OnClose("thumbnailer grpc", func(context.Context) error { return cc.Close() })
	}
	if rdb != nil {
		svc.Lifecycle.OnClose("redis", func(context.Context) error { return rdb.Close() })
	}
	return nil
}

// grpcPolicies are the gRPC policies of the BALANCE_POLICY values that
// have one.
var grpcPolicies = map[string]string{
	balancer.NameConsistentHash: grpcclient.ConsistentHash,
	balancer.NamePeakEWMA:       grpcclient.PeakEWMA,
}

// dialThumbnailer makes the ClientConn of THUMBNAILER_GRPC: grpcclient's
// resolvers, retries and keepalive, its metrics labelled
// upstream="thumbnailer" as the HTTP upstream's are.
func dialThumbnailer(svc *service.Service, s Settings) (*grpc.ClientConn, error) {
	policy, ok := grpcPolicies[s.Policy]
	if !ok {
		return nil, fmt.Errorf("gallery: BALANCE_POLICY %q has no gRPC policy (want %s or %s)", s.Policy, balancer.NameConsistentHash, balancer.NamePeakEWMA)
	}
	cc, err := grpcclient.New(s.ThumbnailerGRPC, grpcclient.Config{
		Policy: policy,
		// As the HTTP call's: a hung replica costs a call half its time.
		PerTryTimeout: s.Timeout / 2,
		Registerer:    prometheus.WrapRegistererWith(prometheus.Labels{"upstream": "thumbnailer"}, svc.Registry),
		Logger:        svc.Logger.With("upstream", "thumbnailer"),
	})
	if err != nil {
		return nil, fmt.Errorf("gallery: THUMBNAILER_GRPC: %w", err)
	}
	return cc, nil
}

func newRedisClient(redisURL string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		// url.Error repeats the URL, password and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("gallery: REDIS_URL: not a valid URL: %w", ue.Err)
		}
		return nil, fmt.Errorf("gallery: REDIS_URL: %w", err)
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
