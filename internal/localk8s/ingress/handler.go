package ingress

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Defaults of ingress-nginx's ConfigMap that Config can override.
const (
	// DefaultConnectTimeout is proxy-connect-timeout.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultResponseHeaderTimeout stands for proxy-read-timeout, applied
	// to the wait for the response header.
	DefaultResponseHeaderTimeout = 60 * time.Second
)

// Tuning of the connection pool to endpoints, after ingress-nginx's
// upstream-keepalive-* defaults.
const (
	maxIdleConnsPerEndpoint = 64
	idleConnTimeout         = 60 * time.Second
	// maxReplayBody bounds the request body kept in memory so that an
	// idempotent request can be retried on another endpoint; requests with
	// larger bodies are tried once.
	maxReplayBody = 1 << 20
)

// Config configures a [Handler]. The zero value is valid but routes
// every request to a backend without endpoints. Every field documents its
// default; a negative timeout is invalid.
type Config struct {
	// Logger receives routing-table warnings and proxy errors. If nil,
	// records are discarded.
	Logger *slog.Logger
	// Endpoints returns the backend's ready endpoints now; it is called
	// once per request and must be safe for concurrent use. If nil, no
	// backend has endpoints.
	Endpoints func(Backend) []netip.AddrPort
	// ConnectTimeout bounds a connection to an endpoint. Zero means
	// DefaultConnectTimeout (5s).
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an endpoint's response
	// header once the request is sent; when it expires the attempt fails
	// with a timeout. Zero means DefaultResponseHeaderTimeout (60s).
	ResponseHeaderTimeout time.Duration
}

// Validate reports a field of c out of range.
func (c Config) Validate() error {
	switch {
	case c.ConnectTimeout < 0:
		return fmt.Errorf("ingress: ConnectTimeout %v is negative", c.ConnectTimeout)
	case c.ResponseHeaderTimeout < 0:
		return fmt.Errorf("ingress: ResponseHeaderTimeout %v is negative", c.ResponseHeaderTimeout)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ResponseHeaderTimeout == 0 {
		c.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	return c
}

// Handler routes requests by the Ingresses of the last successful
// [Handler.Update] and proxies them to the backends' endpoints. Create it
// with [New].
type Handler struct {
	log       *slog.Logger
	endpoints func(Backend) []netip.AddrPort
	transport *http.Transport
	proxy     *httputil.ReverseProxy

	table  atomic.Pointer[table]
	routes atomic.Pointer[routeTable]

	mu            sync.Mutex // serializes Update and UpdateRoutes
	counters      map[Backend]*atomic.Uint64
	routeCounters map[Backend]*atomic.Uint64
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler with an empty routing table, which answers 404.
// It has no error to return, so it panics if cfg is invalid (see
// [Config.Validate]).
func New(cfg Config) *Handler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	h := &Handler{log: cfg.Logger, endpoints: cfg.Endpoints}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	h.transport = &http.Transport{
		// Proxy stays nil: endpoints are reached directly, whatever the
		// environment says.
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   maxIdleConnsPerEndpoint,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// The client's Accept-Encoding goes upstream untouched.
		DisableCompression: true,
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		ModifyResponse: modifyResponse,
		Transport:      (*upstreamTransport)(h),
		BufferPool:     newBufferPool(),
		ErrorHandler:   h.proxyError,
		ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
	}
	h.table.Store(&table{hosts: map[string]*paths{}, wildcards: map[string]*paths{}, any: newPaths()})
	return h
}

// Update validates ings and, if they are all valid, makes them the
// routing table in one step; requests in flight finish on the table they
// started with. Invalid input leaves the table as it was and returns every
// problem found, each a [*FieldError] naming the Ingress and the field.
func (h *Handler) Update(ings []*networkingv1.Ingress) error {
	sorted := make([]*networkingv1.Ingress, 0, len(ings))
	for i, ing := range ings {
		if ing == nil {
			return fmt.Errorf("ingress: Update: ingress %d is nil", i)
		}
		sorted = append(sorted, ing)
	}
	// Oldest first, as ingress-nginx resolves conflicting declarations.
	slices.SortStableFunc(sorted, func(a, b *networkingv1.Ingress) int {
		return cmp.Or(
			a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name))
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	t, counters, warnings, err := buildTable(sorted, h.counters)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		h.log.Warn("ingress: conflicting declaration", "detail", w)
	}
	h.counters = counters
	h.table.Store(t)
	return nil
}

// UpdateRoutes validates Gateways and HTTPRoutes and, if they are all
// valid, makes the routes that attach to the Gateways' HTTP and HTTPS
// listeners the HTTPRoute table in one step. Requests are matched against
// HTTPRoutes first and against the Ingresses when no route matches.
// Invalid input leaves the table as it was and returns every problem found,
// each a [*FieldError] naming the object and the field.
func (h *Handler) UpdateRoutes(gws []*gatewayv1.Gateway, routes []*gatewayv1.HTTPRoute) error {
	for i, g := range gws {
		if g == nil {
			return fmt.Errorf("ingress: UpdateRoutes: gateway %d is nil", i)
		}
	}
	for i, r := range routes {
		if r == nil {
			return fmt.Errorf("ingress: UpdateRoutes: route %d is nil", i)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	next := map[Backend]*atomic.Uint64{}
	t, warnings, err := buildRoutes(gws, routes, h.routeCounters, next)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		h.log.Warn("ingress: route not attached", "detail", w)
	}
	h.routeCounters = next
	h.routes.Store(t)
	return nil
}

// HTTPRoutes lists the current HTTPRoute table: one entry per match and
// effective hostname, sorted by hostname, route, rule and match.
func (h *Handler) HTTPRoutes() []HTTPRouteEntry {
	t := h.routes.Load()
	if t == nil {
		return nil
	}
	return slices.Clone(t.entries)
}

// Routes lists the current routing table, sorted by host, path and path
// type.
func (h *Handler) Routes() []Route {
	return slices.Clone(h.table.Load().routes)
}

// CloseIdleConnections closes the kept-alive connections to endpoints
// that carry no request now.
func (h *Handler) CloseIdleConnections() { h.transport.CloseIdleConnections() }

// requestState travels with a request from ServeHTTP to the transport.
type requestState struct {
	route *route
	eps   []netip.AddrPort
	body  *limitedBody // nil when the body is not limited
	// match and backend are set for a request an HTTPRoute routes.
	match   *httpMatch
	backend *routeBackend
}

type stateKey struct{}

// ServeHTTP routes r and proxies it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m := h.routes.Load().match(r); m != nil {
		h.serveRoute(w, r, m)
		return
	}
	rt := h.table.Load().match(r.Host, r.URL.Path)
	if rt == nil {
		http.Error(w, "default backend - 404", http.StatusNotFound)
		return
	}
	st := &requestState{route: rt}
	if rt.bodyLimit > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > rt.bodyLimit {
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		st.body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, rt.bodyLimit)}
	}
	if h.endpoints != nil {
		st.eps = h.endpoints(rt.Backend)
	}
	if len(st.eps) == 0 {
		h.log.Debug("ingress: backend has no ready endpoints", "backend", rt.Backend.String(), "host", r.Host, "path", r.URL.Path)
		http.Error(w, "503 Service Temporarily Unavailable", http.StatusServiceUnavailable)
		return
	}
	r2 := r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	if st.body != nil {
		r2.Body = st.body
	}
	h.proxy.ServeHTTP(w, r2)
}

// rewrite sets the headers ingress-nginx sets by default. Like it, it
// does not trust forwarding headers from the client.
func rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	// The transport puts the chosen endpoint here; pr.Out.Host keeps the
	// client's Host header.
	pr.Out.URL.Host = "endpoint.invalid"
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		pr.Out.Header.Set("X-Forwarded-For", ip)
		pr.Out.Header.Set("X-Real-IP", ip)
	}
	pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	pr.Out.Header.Set("X-Forwarded-Proto", proto)
	if st, ok := pr.In.Context().Value(stateKey{}).(*requestState); ok && st.match != nil {
		rewriteRoute(&outRequest{header: pr.Out.Header, host: &pr.Out.Host, url: pr.Out.URL}, st)
	}
}

// proxyError answers a request whose every attempt failed: 413 when the
// body outgrew the limit, 504 after a timeout, else 502, as nginx does.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*requestState)
	code := http.StatusBadGateway
	var ne net.Error
	switch {
	case st != nil && st.body != nil && st.body.exceeded.Load():
		code = http.StatusRequestEntityTooLarge
	case errors.Is(context.Cause(r.Context()), errRequestTimeout), errors.Is(err, errBackendTimeout):
		code = http.StatusGatewayTimeout
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		h.log.Debug("ingress: client gone", "host", r.Host, "path", r.URL.Path, "err", err)
		w.WriteHeader(499)
		return
	case errors.As(err, &ne) && ne.Timeout():
		code = http.StatusGatewayTimeout
	}
	attrs := []any{"host", r.Host, "method", r.Method, "path", r.URL.Path, "status", code, "err", err}
	if st != nil {
		attrs = append(attrs, "backend", st.route.Backend.String())
	}
	h.log.Warn("ingress: upstream failed", attrs...)
	http.Error(w, fmt.Sprintf("%d %s", code, http.StatusText(code)), code)
}

// upstreamTransport sends a request to the route's endpoints in
// round-robin order, moving on to the next endpoint on the failures the
// route's proxy-next-upstream names.
type upstreamTransport Handler

var _ http.RoundTripper = (*upstreamTransport)(nil)

func (u *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, ok := req.Context().Value(stateKey{}).(*requestState)
	if !ok {
		return nil, errors.New("ingress: request without routing state")
	}
	rt, eps := st.route, st.eps
	n := len(eps)
	start := int((rt.rr.Add(1) - 1) % uint64(n))

	attempts := 1
	if !rt.next.off() && (idempotent(req.Method) || rt.next.nonIdempotent) {
		attempts = n
		if rt.tries > 0 {
			attempts = min(rt.tries, n)
		}
	}
	var replay []byte
	if attempts > 1 && req.Body != nil && req.Body != http.NoBody {
		// Keep the body to send it again; too big a body is tried once.
		b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
		if err != nil {
			return nil, fmt.Errorf("ingress: read request body: %w", err)
		}
		if len(b) > maxReplayBody {
			attempts = 1
			req.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(b), req.Body), req.Body}
		} else {
			replay = b
		}
	}

	var lastErr error
	for i := range attempts {
		ep := eps[(start+i)%n]
		out := new(http.Request)
		*out = *req
		u2 := *req.URL
		u2.Host = ep.String()
		out.URL = &u2
		if replay != nil {
			out.Body = io.NopCloser(bytes.NewReader(replay))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(replay)), nil }
		}
		out, cancel := st.attemptContext(out)
		resp, err := (*Handler)(u).transport.RoundTrip(out)
		last := i == attempts-1
		if err != nil {
			if errors.Is(context.Cause(out.Context()), errBackendTimeout) {
				err = fmt.Errorf("%w: %w", errBackendTimeout, err)
			}
			cancel()
			lastErr = err
			if last || req.Context().Err() != nil || (st.body != nil && st.body.exceeded.Load()) {
				break
			}
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			if (timeout && !rt.next.onTimeout) || (!timeout && !rt.next.onError) {
				break
			}
			u.log.Info("ingress: trying next endpoint", "backend", rt.Backend.String(), "endpoint", ep, "err", err)
			continue
		}
		if !last && rt.next.onStatus(resp.StatusCode) {
			u.log.Info("ingress: trying next endpoint", "backend", rt.Backend.String(), "endpoint", ep, "status", resp.StatusCode)
			// Drain a little so the connection can be reused.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
			cancel()
			continue
		}
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	return nil, lastErr
}

// idempotent reports whether nginx may pass a request with this method to
// the next upstream without non_idempotent.
func idempotent(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPatch, "LOCK":
		return false
	}
	return true
}

// limitedBody records whether the request body outgrew its limit, which
// the transport reports only as a generic write error.
type limitedBody struct {
	io.ReadCloser
	exceeded atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		b.exceeded.Store(true)
	}
	return n, err
}

// bufferPool recycles the proxy's copy buffers.
type bufferPool struct{ p sync.Pool }

var _ httputil.BufferPool = (*bufferPool)(nil)

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(s []byte) { b.p.Put(&s) }
