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

// Defaults applied by [NewDNS] to zero fields of [DNSConfig].
const (
	DefaultDNSInterval    = 5 * time.Second
	DefaultDNSMinInterval = time.Second
	DefaultDNSTimeout     = 2 * time.Second
)

// DNSConfig configures a [DNSResolver]. Host and Port are required; every
// other zero value means the documented default, and a negative duration
// is invalid.
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
	// Interval between resolutions. Zero means DefaultDNSInterval (5s);
	// Kubernetes DNS answers for headless Services carry a 5s TTL by
	// default.
	Interval time.Duration
	// MinInterval is the shortest time between two resolutions, which
	// bounds the refreshes that connection errors trigger; above Interval
	// it means Interval. Zero means DefaultDNSMinInterval (1s).
	MinInterval time.Duration
	// Timeout of one lookup. Zero means DefaultDNSTimeout (2s).
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

// Validate reports the first invalid field of c.
func (c DNSConfig) Validate() error {
	switch {
	case c.Host == "":
		return errors.New("balancer: dns: Host is empty")
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("balancer: dns: Port %d out of range 1-65535", c.Port)
	case c.Interval < 0:
		return fmt.Errorf("balancer: dns: Interval %v is negative", c.Interval)
	case c.MinInterval < 0:
		return fmt.Errorf("balancer: dns: MinInterval %v is negative", c.MinInterval)
	case c.Timeout < 0:
		return fmt.Errorf("balancer: dns: Timeout %v is negative", c.Timeout)
	}
	if c.Nameserver != "" {
		if _, _, err := net.SplitHostPort(c.Nameserver); err != nil {
			return fmt.Errorf("balancer: dns: Nameserver %q: want host:port: %w", c.Nameserver, err)
		}
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c DNSConfig) withDefaults() DNSConfig {
	if c.Interval == 0 {
		c.Interval = DefaultDNSInterval
	}
	if c.MinInterval == 0 {
		c.MinInterval = DefaultDNSMinInterval
	}
	c.MinInterval = min(c.MinInterval, c.Interval)
	if c.Timeout == 0 {
		c.Timeout = DefaultDNSTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewDNS returns a DNS resolver, or an error naming the bad field.
func NewDNS(cfg DNSConfig) (*DNSResolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &DNSResolver{cfg: cfg, port: strconv.Itoa(cfg.Port), resolver: net.DefaultResolver, now: make(chan struct{}, 1)}
	if ns := cfg.Nameserver; ns != "" {
		r.resolver = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, ns)
				if err != nil {
					return nil, err
				}
				// net's resolver waits for an answer until the lookup's
				// deadline even once its context is cancelled; closing the
				// connection when the context ends stops that wait, so a
				// stopped resolver leaves no lookup behind. The resolver
				// closes the connection itself too; the second Close is a
				// no-op.
				context.AfterFunc(ctx, func() { _ = c.Close() })
				return c, nil
			},
		}
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

// Resolve looks the name up on the interval and reports every answer.
func (r *DNSResolver) Resolve(ctx context.Context, update func([]string)) error {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		addrs, err := r.lookup(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.Logger.Warn("balancer: dns lookup failed; keeping the last endpoints",
				"host", r.cfg.Host, "err", err)
		case err == nil:
			// An unchanged answer is reported too: it tells the balancer
			// the addresses are still listed, which ends ejections for
			// refused connections (a restarted pod keeps its address).
			update(addrs)
		}
		// Refreshes on demand never come faster than MinInterval.
		wait := time.NewTimer(r.cfg.MinInterval)
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
		if err != nil || len(addrs) == 0 {
			// No endpoints (a client started before its service's pods
			// were ready) or no answer: ask again after MinInterval, not
			// a whole Interval.
			continue
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
