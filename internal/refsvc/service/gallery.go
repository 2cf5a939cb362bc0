package service

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/internal/refsvc/config"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/session"
)

// GalleryOptions are the gallery's own settings.
type GalleryOptions struct {
	RedisURL         string        // REDIS_URL; empty means an in-memory store
	SessionSecret    string        // SESSION_SECRET
	SessionTTL       time.Duration // SESSION_TTL
	ThumbnailerURL   string        // THUMBNAILER_URL: one address, balanced by kube-proxy
	ThumbnailerAddrs string        // THUMBNAILER_ADDRS: host:port list, balanced here
	ThumbnailerDNS   string        // THUMBNAILER_DNS: name:port of a headless Service, balanced here
	DNSServer        string        // THUMBNAILER_DNS_SERVER: host:port of the DNS server
	Policy           string        // BALANCE_POLICY
	Timeout          time.Duration // THUMBNAILER_TIMEOUT
	H2C              bool          // THUMBNAILER_H2C
}

// BindGallery registers the gallery's settings on cs.
func BindGallery(cs *config.Set, g *GalleryOptions) {
	cs.String(&g.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL for sessions, e.g. redis://redis:6379/0; empty keeps sessions in memory")
	cs.String(&g.SessionSecret, "session-secret", "SESSION_SECRET", "", "secret that signs session cookies, shared by every replica")
	cs.Duration(&g.SessionTTL, "session-ttl", "SESSION_TTL", session.DefaultTTL, "session lifetime after last use")
	cs.String(&g.ThumbnailerURL, "thumbnailer-url", "THUMBNAILER_URL", "http://127.0.0.1:8081", "thumbnailer base URL (used when no address list or DNS name is given)")
	cs.String(&g.ThumbnailerAddrs, "thumbnailer-addrs", "THUMBNAILER_ADDRS", "", "comma-separated host:port list of thumbnailer replicas, balanced by the client")
	cs.String(&g.ThumbnailerDNS, "thumbnailer-dns", "THUMBNAILER_DNS", "", "name:port whose A/AAAA records are the thumbnailer replicas (a headless Service)")
	cs.String(&g.DNSServer, "thumbnailer-dns-server", "THUMBNAILER_DNS_SERVER", "", "host:port of the DNS server for -thumbnailer-dns; empty means the system's")
	cs.String(&g.Policy, "balance-policy", "BALANCE_POLICY", balancer.NameConsistentHash, "client-side balancing policy: round_robin, peak_ewma, consistent_hash")
	cs.Duration(&g.Timeout, "thumbnailer-timeout", "THUMBNAILER_TIMEOUT", 10*time.Second, "deadline of one thumbnail call, retries included")
	cs.Bool(&g.H2C, "thumbnailer-h2c", "THUMBNAILER_H2C", false, "call the thumbnailer over unencrypted HTTP/2")
}

// AddGallery wires the gallery's store, client, routes and checks into svc.
func AddGallery(ctx context.Context, svc *Service, g GalleryOptions) error {
	if g.SessionSecret == "" {
		// Without a shared secret, cookies signed by one replica fail on
		// another: fine for one process on a laptop, wrong in a cluster.
		g.SessionSecret = rand.Text() + rand.Text()
		svc.Logger.Warn("SESSION_SECRET is unset: using a random secret, so sessions do not survive a restart or span replicas")
	}
	store, err := newSessionStore(svc, g.RedisURL)
	if err != nil {
		return err
	}
	sessions, err := session.NewManager(session.Config{
		Store: store, Secret: []byte(g.SessionSecret), TTL: g.SessionTTL, Logger: svc.Logger,
		TrustForwardedProto: true,
	})
	if err != nil {
		return fmt.Errorf("service: sessions: %w", err)
	}
	if err := svc.Health.Add(health.Check{Name: "sessions", Func: sessions.Check, Interval: 2 * time.Second, Timeout: time.Second, Critical: true}); err != nil {
		return fmt.Errorf("service: %w", err)
	}

	httpClient, base, err := thumbnailerClient(svc, g)
	if err != nil {
		return err
	}
	api, err := gallery.New(gallery.Config{
		Sessions: sessions, ThumbnailerURL: base, Client: httpClient, Timeout: g.Timeout, Logger: svc.Logger,
	})
	if err != nil {
		return err
	}
	api.Register(svc.Mux)
	return nil
}

func newSessionStore(svc *Service, redisURL string) (session.Store, error) {
	if redisURL == "" {
		svc.Logger.Warn("REDIS_URL is unset: sessions live in this process's memory and are lost with it")
		return session.NewMemoryStore(time.Now), nil
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("service: REDIS_URL: %w", err)
	}
	// Fail fast while Redis is down: go-redis' defaults retry a refused
	// dial and a command for a second or more, longer than the readiness
	// check's timeout, and every session request would hang that long
	// before its 503.
	opts.DialTimeout, opts.DialerRetries, opts.MaxRetries = time.Second, 1, 1
	rdb := redis.NewClient(opts)
	svc.Lifecycle.OnClose("redis", func(context.Context) error { return rdb.Close() })
	return session.NewRedisStore(rdb, session.DefaultRedisPrefix), nil
}

// thumbnailerClient returns the client for thumbnailer calls and the base
// URL to call. With an address list or a DNS name, requests are balanced
// per request by the balancer; otherwise they go to one URL, typically a
// ClusterIP Service that kube-proxy balances per connection.
func thumbnailerClient(svc *Service, g GalleryOptions) (*http.Client, string, error) {
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"upstream": "thumbnailer"}, svc.Registry)
	ccfg := client.Config{H2C: g.H2C, PerTryTimeout: g.Timeout / 2, Registerer: reg}
	var resolver balancer.Resolver
	switch {
	case g.ThumbnailerAddrs != "":
		addrs := strings.Split(g.ThumbnailerAddrs, ",")
		for i := range addrs {
			addrs[i] = strings.TrimSpace(addrs[i])
		}
		r, err := balancer.NewStatic(addrs...)
		if err != nil {
			return nil, "", fmt.Errorf("service: THUMBNAILER_ADDRS: %w", err)
		}
		resolver = r
	case g.ThumbnailerDNS != "":
		host, portStr, err := net.SplitHostPort(g.ThumbnailerDNS)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			return nil, "", fmt.Errorf("service: THUMBNAILER_DNS %q is not name:port", g.ThumbnailerDNS)
		}
		r, err := balancer.NewDNS(balancer.DNSConfig{Host: host, Port: port, Nameserver: g.DNSServer, Logger: svc.Logger})
		if err != nil {
			return nil, "", fmt.Errorf("service: THUMBNAILER_DNS: %w", err)
		}
		resolver = r
	default:
		c, err := client.New(ccfg)
		if err != nil {
			return nil, "", fmt.Errorf("service: thumbnailer client: %w", err)
		}
		return c, g.ThumbnailerURL, nil
	}
	policy, err := balancer.PolicyByName(g.Policy)
	if err != nil {
		return nil, "", fmt.Errorf("service: BALANCE_POLICY: %w", err)
	}
	b, err := balancer.New(balancer.Config{
		Resolver: resolver, Policy: policy, Transport: client.NewTransport(ccfg),
		SlowStart: 10 * time.Second, Registerer: reg, Logger: svc.Logger,
	})
	if err != nil {
		return nil, "", fmt.Errorf("service: thumbnailer balancer: %w", err)
	}
	svc.Lifecycle.OnClose("thumbnailer balancer", func(context.Context) error { return b.Close() })
	ccfg.Transport = b
	c, err := client.New(ccfg)
	if err != nil {
		return nil, "", fmt.Errorf("service: thumbnailer client: %w", err)
	}
	// The balancer replaces the host; the name stays in the Host header.
	return c, "http://thumbnailer", nil
}
