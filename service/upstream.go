package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/deadline"
	"github.com/shoal-dev/shoal/requestlog"
)

// DefaultUpstreamSlowStart is the window over which an upstream replica
// that appears after the first resolution ramps up to its full share.
const DefaultUpstreamSlowStart = 10 * time.Second

// UpstreamConfig names a service this one calls and how. Name and Target
// are required; every other zero value means the default beside it.
type UpstreamConfig struct {
	// Name labels the upstream's metrics (upstream="...") and logs.
	Name string
	// Target is where the upstream is:
	//
	//	http://thumbnailer:8080       one address: a ClusterIP Service, which
	//	https://thumbnailer:8443      kube-proxy balances per connection
	//	10.0.0.5:8080,10.0.0.6:8080   a fixed host:port list, balanced here per request
	//	dns:///thumbs-headless:8080   the A/AAAA records of a name (a headless
	//	dns://10.96.0.10:53/name:8080   Service), re-resolved, balanced here;
	//	                              the authority is the DNS server to ask
	//	k8s:///thumbnailer.media:http the EndpointSlices of Service thumbnailer in
	//	                              namespace media, port by name or number,
	//	                              balanced here (needs EndpointSlices)
	Target string
	// Host is the Host header of balanced calls. "" means the name in
	// Target (the DNS name or the Service), else Name.
	Host string
	// Policy is the balancing policy, by balancer.PolicyByName. ""
	// means balancer.NamePeakEWMA, which steers away from slow replicas.
	Policy string
	// H2C speaks unencrypted HTTP/2 to plain-HTTP upstreams.
	H2C bool
	// TLS makes balanced calls HTTPS with this configuration (for
	// https:// URLs it replaces Go's defaults). Nil means the service's
	// upstream TLS (Options.UpstreamCAFile and friends), if any.
	TLS *tls.Config
	// MaxAttempts, PerTryTimeout and Budget are the retry settings of
	// package client. Zero means client's defaults (3 attempts, no
	// per-try bound beyond the request's deadline).
	MaxAttempts   int
	PerTryTimeout time.Duration
	Budget        client.BudgetConfig
	// SlowStart is the ramp of a new replica. Zero means
	// DefaultUpstreamSlowStart (10s); negative means none.
	SlowStart time.Duration
	// EndpointSlices makes the resolver of a k8s:/// target, given the
	// Service's name, namespace ("" when the target names none) and port.
	// Package balancer/k8sresolver has one; leaving it nil keeps client-go
	// out of programs that do not use it.
	EndpointSlices func(service, namespace, port string) (balancer.Resolver, error)
}

// Upstream is a service this one calls: a client that balances, retries
// under a budget, carries the request's deadline, ID and trace, and is
// measured per endpoint. The Service closes it after its servers stop.
type Upstream struct {
	// BaseURL is what request paths are appended to: the URL of Target,
	// or scheme://Host for balanced calls.
	BaseURL string
	client  *http.Client
	close   func() error
}

// Client is the upstream's client, for code that takes an *http.Client.
func (u *Upstream) Client() *http.Client { return u.client }

// NewRequest returns a request for path (such as "/v1/items?id=7") on
// the upstream, bound to ctx: pass the incoming request's context so the
// call ends when the caller gives up.
func (u *Upstream) NewRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return http.NewRequestWithContext(ctx, method, u.BaseURL+path, body)
}

// Do sends req; see [net/http.Client.Do].
func (u *Upstream) Do(req *http.Request) (*http.Response, error) { return u.client.Do(req) }

// Get fetches path on the upstream with ctx.
func (u *Upstream) Get(ctx context.Context, path string) (*http.Response, error) {
	req, err := u.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return u.client.Do(req)
}

// Check returns a health check function (health.Check.Func) that asks the
// upstream for path and fails unless it answers 2xx.
func (u *Upstream) Check(path string) func(context.Context) error {
	return func(ctx context.Context) error {
		resp, err := u.Get(ctx, path)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("service: %s%s answered %d", u.BaseURL, path, resp.StatusCode)
		}
		return nil
	}
}

// Close stops the upstream's resolver and closes its idle connections. It
// is safe to call more than once; the Service calls it after the servers
// stop.
func (u *Upstream) Close() error { return u.close() }

// target is a parsed UpstreamConfig.Target.
type target struct {
	url        *url.URL // one address
	addrs      []string // a fixed list
	dnsHost    string   // dns:///name:port
	dnsPort    int
	nameserver string
	k8sService string // k8s:///service.namespace:port
	k8sNS      string
	k8sPort    string
}

func parseTarget(s string) (target, error) {
	var t target
	if s == "" {
		return t, errors.New("empty target")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		for a := range strings.SplitSeq(s, ",") {
			a = strings.TrimSpace(a)
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				return t, fmt.Errorf("%q is not host:port (want a URL, a host:port list, dns:///name:port or k8s:///service.namespace:port)", a)
			}
			t.addrs = append(t.addrs, a)
		}
		return t, nil
	}
	switch scheme {
	case "http", "https":
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return t, fmt.Errorf("%q is not a URL with a host", s)
		}
		t.url = u
	case "dns":
		authority, name, ok := strings.Cut(rest, "/")
		host, portStr, err := net.SplitHostPort(name)
		port, perr := strconv.Atoi(portStr)
		if !ok || err != nil || perr != nil || host == "" || port <= 0 || port > 65535 {
			return t, fmt.Errorf("%q is not dns://[server]/name:port", s)
		}
		t.dnsHost, t.dnsPort, t.nameserver = host, port, authority
	case "k8s":
		authority, name, ok := strings.Cut(rest, "/")
		svcNS, port, err := net.SplitHostPort(name)
		if !ok || authority != "" || err != nil || svcNS == "" || port == "" {
			return t, fmt.Errorf("%q is not k8s:///service.namespace:port", s)
		}
		t.k8sService, t.k8sNS, _ = strings.Cut(svcNS, ".")
		t.k8sPort = port
	default:
		return t, fmt.Errorf("scheme %q is not http, https, dns or k8s", scheme)
	}
	return t, nil
}

// Upstream builds the client for cfg and hands it to the Lifecycle, which
// closes it after the servers stop. Its metrics carry
// upstream=cfg.Name: package client's per call and per attempt, package
// balancer's per endpoint.
func (s *Service) Upstream(cfg UpstreamConfig) (*Upstream, error) {
	u, err := s.newUpstream(cfg)
	if err != nil {
		return nil, fmt.Errorf("service: upstream %q: %w", cfg.Name, err)
	}
	closeFn := func(context.Context) error { return u.Close() }
	s.Lifecycle.OnClose("upstream "+cfg.Name, closeFn)
	s.owned = append(s.owned, closeFn)
	return u, nil
}

func (s *Service) newUpstream(cfg UpstreamConfig) (*Upstream, error) {
	if cfg.Name == "" {
		return nil, errors.New("no name")
	}
	t, err := parseTarget(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	tlsCfg := cfg.TLS
	if tlsCfg == nil {
		tlsCfg = s.upstreamTLS
	}
	if tlsCfg != nil {
		// net/http edits the configuration it is given: one per upstream.
		tlsCfg = tlsCfg.Clone()
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"upstream": cfg.Name}, s.Registry)
	ccfg := client.Config{
		H2C: cfg.H2C && tlsCfg == nil, TLSClientConfig: tlsCfg,
		MaxAttempts: cfg.MaxAttempts, PerTryTimeout: cfg.PerTryTimeout, Budget: cfg.Budget,
		Registerer: reg,
	}
	if err := ccfg.Validate(); err != nil {
		return nil, err
	}

	var resolver balancer.Resolver
	host := cfg.Host
	switch {
	case t.url != nil:
		// One address: kube-proxy (or whatever is behind it) balances.
		base := client.NewTransport(ccfg)
		ccfg.Transport = &outbound{s: s, next: deadline.Transport(base)}
		rt, err := client.NewRetryTransport(ccfg)
		if err != nil {
			return nil, err
		}
		return s.finishUpstream(strings.TrimSuffix(t.url.String(), "/"), rt, func() error {
			base.CloseIdleConnections()
			return nil
		}), nil
	case t.addrs != nil:
		r, err := balancer.NewStatic(t.addrs...)
		if err != nil {
			return nil, err
		}
		resolver = r
	case t.dnsHost != "":
		r, err := balancer.NewDNS(balancer.DNSConfig{Host: t.dnsHost, Port: t.dnsPort, Nameserver: t.nameserver, Logger: s.Logger})
		if err != nil {
			return nil, err
		}
		resolver = r
		if host == "" {
			host = t.dnsHost
		}
	default:
		if cfg.EndpointSlices == nil {
			return nil, fmt.Errorf("target %q needs UpstreamConfig.EndpointSlices (package balancer/k8sresolver)", cfg.Target)
		}
		r, err := cfg.EndpointSlices(t.k8sService, t.k8sNS, t.k8sPort)
		if err != nil {
			return nil, err
		}
		resolver = r
		if host == "" {
			host = t.k8sService
		}
	}
	if host == "" {
		host = cfg.Name
	}
	policyName := cfg.Policy
	if policyName == "" {
		policyName = balancer.NamePeakEWMA
	}
	policy, err := balancer.PolicyByName(policyName)
	if err != nil {
		return nil, err
	}
	slow := cfg.SlowStart
	switch {
	case slow == 0:
		slow = DefaultUpstreamSlowStart
	case slow < 0:
		slow = 0
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		if tlsCfg.ServerName == "" {
			// The balancer dials addresses; the certificate names the
			// Service.
			tlsCfg.ServerName = host
			ccfg.TLSClientConfig = tlsCfg
		}
	}
	// The balancer closes the idle connections of transports it made
	// itself only: this one is the upstream's to close, after it.
	tr := client.NewTransport(ccfg)
	b, err := balancer.New(balancer.Config{
		Resolver: resolver, Policy: policy, Transport: tr,
		SlowStart: slow, Registerer: reg, Logger: s.Logger.With("upstream", cfg.Name),
	})
	if err != nil {
		return nil, err
	}
	closeFn := func() error {
		err := b.Close()
		tr.CloseIdleConnections()
		return err
	}
	ccfg.Transport = &outbound{s: s, next: deadline.Transport(b)}
	rt, err := client.NewRetryTransport(ccfg)
	if err != nil {
		closeFn()
		return nil, err
	}
	// The balancer replaces the URL's host with an endpoint's address; the
	// name stays in the Host header.
	return s.finishUpstream(scheme+"://"+host, rt, closeFn), nil
}

// finishUpstream puts the request ID around rt, whose attempts carry the
// tracer's client spans (outbound, below the retries: a span per attempt).
func (s *Service) finishUpstream(base string, rt http.RoundTripper, closeFn func() error) *Upstream {
	return &Upstream{
		BaseURL: base,
		client: &http.Client{
			Transport: requestIDTransport{next: rt},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				// A service-to-service call follows no redirect: the
				// upstream's 3xx goes back to the caller as it is.
				return http.ErrUseLastResponse
			},
		},
		close: sync.OnceValue(closeFn),
	}
}

// outbound adds the service's tracer, if any, in front of next on the
// first attempt, so that an upstream made before [Service.Trace] is
// traced.
type outbound struct {
	s    *Service
	next http.RoundTripper
	once sync.Once
	rt   http.RoundTripper
}

func (o *outbound) RoundTrip(req *http.Request) (*http.Response, error) {
	o.once.Do(func() {
		o.rt = o.next
		if t := o.s.getTracer(); t != nil {
			o.rt = t.Transport(o.next)
		}
	})
	return o.rt.RoundTrip(req)
}

// requestIDTransport sends the ID of the request being served with each
// call made for it, so the logs of every service on the path share it.
type requestIDTransport struct{ next http.RoundTripper }

func (t requestIDTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	id := requestlog.IDFromContext(req.Context())
	if id == "" || req.Header.Get(requestlog.HeaderID) == id {
		return t.next.RoundTrip(req)
	}
	// A RoundTripper must not modify the caller's request.
	req = req.Clone(req.Context())
	req.Header.Set(requestlog.HeaderID, id)
	return t.next.RoundTrip(req)
}

// UpstreamFailed answers a request whose call to an upstream failed with
// err: 504 when the request's own deadline passed or its caller gave up
// (so a caller that sent X-Request-Timeout-Ms: 0 is told it timed out, not
// that the upstream is down), else 502. The text is fixed: a network
// error names addresses the caller has no business seeing.
func UpstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
		return
	}
	http.Error(w, "upstream unavailable", http.StatusBadGateway)
}
