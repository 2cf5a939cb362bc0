package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"
)

// DNSConfig configures a [DNSResolver].
type DNSConfig struct {
	// Host is the name whose A and AAAA records are the endpoints, e.g.
	// the headless Service "thumbnailer-headless.default.svc.cluster.local".
	// Required.
	Host string
	// Port is the port every endpoint listens on. Required.
	Port int
	// Nameserver is the "host:port" of the DNS server to ask. Empty means
	// the system's resolver configuration.
	Nameserver string
	// Interval between resolutions. Zero means 5s; Kubernetes DNS
	// answers for headless Services carry a 5s TTL by default.
	Interval time.Duration
	// MinInterval is the shortest time between two resolutions, which
	// bounds the refreshes that connection errors trigger. Zero means 1s.
	MinInterval time.Duration
	// Timeout of one lookup. Zero means 2s.
	Timeout time.Duration
	// Logger receives lookup errors. Nil means slog.Default().
	Logger *slog.Logger
}

// DNSResolver is a [Resolver] that re-resolves a name's A and AAAA
// records on an interval and after connection errors. Lookup errors keep
// the last known set; an answer that the name has no addresses empties it.
type DNSResolver struct {
	cfg      DNSConfig
	port     string
	resolver *net.Resolver
	now      chan struct{}
}

var (
	_ Resolver     = (*DNSResolver)(nil)
	_ ResolveNower = (*DNSResolver)(nil)
)

// NewDNS returns a DNS resolver, or an error naming the bad field.
func NewDNS(cfg DNSConfig) (*DNSResolver, error) {
	if cfg.Host == "" {
		return nil, errors.New("balancer: dns: Host is empty")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("balancer: dns: Port %d out of range 1-65535", cfg.Port)
	}
	r := &DNSResolver{cfg: cfg, port: strconv.Itoa(cfg.Port), resolver: net.DefaultResolver, now: make(chan struct{}, 1)}
	if cfg.Nameserver != "" {
		if _, _, err := net.SplitHostPort(cfg.Nameserver); err != nil {
			return nil, fmt.Errorf("balancer: dns: Nameserver %q: want host:port: %w", cfg.Nameserver, err)
		}
		ns := cfg.Nameserver
		r.resolver = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, ns)
			},
		}
	}
	if r.cfg.Interval <= 0 {
		r.cfg.Interval = 5 * time.Second
	}
	if r.cfg.MinInterval <= 0 {
		r.cfg.MinInterval = time.Second
	}
	r.cfg.MinInterval = min(r.cfg.MinInterval, r.cfg.Interval)
	if r.cfg.Timeout <= 0 {
		r.cfg.Timeout = 2 * time.Second
	}
	if r.cfg.Logger == nil {
		r.cfg.Logger = slog.Default()
	}
	return r, nil
}

// ResolveNow asks for a resolution as soon as MinInterval allows.
func (r *DNSResolver) ResolveNow() {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Resolve looks the name up on the interval and reports each new set.
func (r *DNSResolver) Resolve(ctx context.Context, update func([]string)) error {
	var last []string
	reported := false
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		addrs, err := r.lookup(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.Logger.Warn("balancer: dns lookup failed; keeping the last endpoints",
				"host", r.cfg.Host, "err", err)
		case err == nil && (!reported || !slices.Equal(addrs, last)):
			update(addrs)
			last, reported = addrs, true
		}
		// Refreshes on demand never come faster than MinInterval.
		wait := time.NewTimer(r.cfg.MinInterval)
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.now:
		}
	}
}

func (r *DNSResolver) lookup(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	ips, err := r.resolver.LookupNetIP(ctx, "ip", r.cfg.Host)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("balancer: dns: look up %s: %w", r.cfg.Host, err)
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.Unmap().String(), r.port))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
