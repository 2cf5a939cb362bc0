package service

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
)

// upstream is the gallery's way to the thumbnailer: the client to call it
// with and the base URL to call. It owns the balancer behind the client,
// if any; Close stops it.
type upstream struct {
	Client  *http.Client
	BaseURL string

	balancer *balancer.Balancer // nil when calls go to one URL
}

// newUpstream builds the thumbnailer upstream from g. With an address list
// or a DNS name, requests are balanced per request by the balancer and
// carry g.ThumbnailerHost as their host; otherwise they go to
// g.ThumbnailerURL, typically a ClusterIP Service that kube-proxy balances
// per connection. Its metrics go to reg.
func newUpstream(g GalleryOptions, reg prometheus.Registerer, log *slog.Logger) (*upstream, error) {
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
			return nil, fmt.Errorf("service: THUMBNAILER_ADDRS: %w", err)
		}
		resolver = r
	case g.ThumbnailerDNS != "":
		host, portStr, err := net.SplitHostPort(g.ThumbnailerDNS)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			return nil, fmt.Errorf("service: THUMBNAILER_DNS %q is not name:port", g.ThumbnailerDNS)
		}
		r, err := balancer.NewDNS(balancer.DNSConfig{Host: host, Port: port, Nameserver: g.DNSServer, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("service: THUMBNAILER_DNS: %w", err)
		}
		resolver = r
	default:
		c, err := client.New(ccfg)
		if err != nil {
			return nil, fmt.Errorf("service: thumbnailer client: %w", err)
		}
		return &upstream{Client: c, BaseURL: g.ThumbnailerURL}, nil
	}
	policy, err := balancer.PolicyByName(g.Policy)
	if err != nil {
		return nil, fmt.Errorf("service: BALANCE_POLICY: %w", err)
	}
	b, err := balancer.New(balancer.Config{
		Resolver: resolver, Policy: policy, Transport: client.NewTransport(ccfg),
		SlowStart: 10 * time.Second, Registerer: reg, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("service: thumbnailer balancer: %w", err)
	}
	ccfg.Transport = b
	c, err := client.New(ccfg)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("service: thumbnailer client: %w", err)
	}
	// The balancer replaces the URL's host with an endpoint's address; the
	// name stays in the Host header.
	return &upstream{Client: c, BaseURL: "http://" + g.ThumbnailerHost, balancer: b}, nil
}

// Close stops the balancer, if any. It is safe to call more than once.
func (u *upstream) Close() error {
	if u.balancer == nil {
		return nil
	}
	return u.balancer.Close()
}
