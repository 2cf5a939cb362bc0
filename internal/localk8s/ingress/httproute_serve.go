package ingress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// errRequestTimeout and errBackendTimeout are the causes of a context
// ended by an HTTPRoute rule's timeouts; either answers 504.
var (
	errRequestTimeout = errors.New("ingress: HTTPRoute timeouts.request reached")
	errBackendTimeout = errors.New("ingress: HTTPRoute timeouts.backendRequest reached")
)

// match finds the HTTPRoute match for r: the most specific hostname
// first (exact, then wildcards from the longest suffix, then routes for
// every host), and within a hostname the first match in precedence order.
func (t *routeTable) match(r *http.Request) *httpMatch {
	if t.empty() {
		return nil
	}
	host := normalizeHost(r.Host)
	p, ok := cleanPath(r.URL.Path)
	if !ok {
		return nil
	}
	if m := firstMatch(t.byHost[host], r, p); m != nil {
		return m
	}
	for i := 0; i < len(host); i++ {
		if host[i] != '.' {
			continue
		}
		if m := firstMatch(t.byHost["*"+host[i:]], r, p); m != nil {
			return m
		}
	}
	return firstMatch(t.any, r, p)
}

func firstMatch(ms []*httpMatch, r *http.Request, p string) *httpMatch {
	var query url.Values
	for _, m := range ms {
		if !m.matchesPath(p) || (m.method != "" && m.method != r.Method) {
			continue
		}
		okh := true
		for _, h := range m.headers {
			v, present := r.Header[h.name]
			if !h.matches(first(v), present) {
				okh = false
				break
			}
		}
		if !okh {
			continue
		}
		if len(m.query) > 0 && query == nil {
			query = r.URL.Query()
		}
		okq := true
		for _, q := range m.query {
			v, present := query[q.name]
			if !q.matches(first(v), present) {
				okq = false
				break
			}
		}
		if okq {
			return m
		}
	}
	return nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (m *httpMatch) matchesPath(p string) bool {
	switch m.kind {
	case pathExact:
		return p == m.path
	case pathRegex:
		return m.re.MatchString(p)
	}
	if m.path == "/" {
		return true
	}
	return strings.HasPrefix(p, m.path) && (len(p) == len(m.path) || p[len(m.path)] == '/')
}

// pick chooses a backend of the rule by weight: deterministic, in
// proportion to the weights over every run of total requests. It returns
// nil when every weight is zero.
func (r *httpRule) pick() *routeBackend {
	if r.total == 0 {
		return nil
	}
	n := (r.next.Add(1) - 1) % r.total
	for i := range r.backends {
		if n < r.backends[i].weight {
			return &r.backends[i]
		}
		n -= r.backends[i].weight
	}
	return nil
}

// serveRoute answers r by an HTTPRoute match: a redirect, a 500 for a rule
// with nowhere to send it, or the proxy to the backend the weights pick.
func (h *Handler) serveRoute(w http.ResponseWriter, r *http.Request, m *httpMatch) {
	rule := m.rule
	if rule.redirect != nil {
		redirect(w, r, m)
		return
	}
	b := rule.pick()
	if b == nil {
		// No backendRefs, or all of weight 0: the spec's 500.
		h.log.Debug("ingress: HTTPRoute rule has no backend to send to", "route", m.entry.Namespace+"/"+m.entry.Name, "rule", m.entry.Rule)
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	st := &requestState{route: b.route, match: m, backend: b}
	if h.endpoints != nil {
		st.eps = h.endpoints(b.route.Backend)
	}
	if len(st.eps) == 0 {
		h.log.Debug("ingress: backend has no ready endpoints", "backend", b.route.Backend.String(), "host", r.Host, "path", r.URL.Path)
		http.Error(w, "503 Service Temporarily Unavailable", http.StatusServiceUnavailable)
		return
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if rule.requestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, rule.requestTimeout, errRequestTimeout)
		defer cancel()
	}
	h.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// rewriteRoute applies the rule's request filters to the outgoing request.
func rewriteRoute(pr *outRequest, st *requestState) {
	m := st.match
	m.rule.reqHeaders.apply(pr.header)
	st.backend.reqHeaders.apply(pr.header)
	rw := m.rule.rewrite
	if rw == nil {
		return
	}
	if rw.Hostname != nil {
		*pr.host = string(*rw.Hostname)
	}
	if rw.Path != nil {
		pr.url.Path = modifyPath(pr.url.Path, m, rw.Path.Type == "ReplacePrefixMatch", deref(rw.Path.ReplaceFullPath, ""), deref(rw.Path.ReplacePrefixMatch, ""))
		pr.url.RawPath = ""
	}
}

// outRequest is the part of the proxy's outgoing request the filters set.
type outRequest struct {
	header http.Header
	host   *string
	url    *url.URL
}

// modifyPath replaces the whole path, or the prefix the match matched.
func modifyPath(p string, m *httpMatch, prefix bool, full, replacement string) string {
	if !prefix {
		return full
	}
	rest := ""
	if m.path != "/" {
		rest = strings.TrimPrefix(p, m.path)
	} else {
		rest = p
	}
	if rest == "" {
		if replacement == "" {
			return "/"
		}
		return replacement
	}
	// rest starts with "/": avoid "//" and a missing slash alike.
	return strings.TrimRight(replacement, "/") + rest
}

// redirect answers with the rule's RequestRedirect.
func redirect(w http.ResponseWriter, r *http.Request, m *httpMatch) {
	f := m.rule.redirect
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	if f.Scheme != nil {
		scheme = *f.Scheme
		port = "" // the scheme's well-known port
	}
	if f.Hostname != nil {
		host = string(*f.Hostname)
	}
	if f.Port != nil {
		port = strconv.Itoa(int(*f.Port))
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	u := url.URL{Scheme: scheme, Host: host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	if f.Path != nil {
		u.Path = modifyPath(r.URL.Path, m, f.Path.Type == "ReplacePrefixMatch", deref(f.Path.ReplaceFullPath, ""), deref(f.Path.ReplacePrefixMatch, ""))
	}
	code := deref(f.StatusCode, http.StatusFound)
	m.rule.respHeaders.apply(w.Header())
	w.Header().Set("Location", u.String())
	w.WriteHeader(code)
}

// modifyResponse applies the rule's and the backend's response header
// filters.
func modifyResponse(resp *http.Response) error {
	st, ok := resp.Request.Context().Value(stateKey{}).(*requestState)
	if !ok || st.match == nil {
		return nil
	}
	st.match.rule.respHeaders.apply(resp.Header)
	st.backend.respHeaders.apply(resp.Header)
	return nil
}

// cancelBody ends a backendRequest timeout's context when the response
// body is closed: the timeout covers the whole response.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// attemptContext bounds one attempt by the rule's backendRequest timeout,
// when it has one. The caller cancels the context once the attempt's
// response is read or abandoned.
func (st *requestState) attemptContext(out *http.Request) (*http.Request, context.CancelFunc) {
	if st.match == nil || st.match.rule.backendTimeout <= 0 {
		return out, func() {}
	}
	ctx, cancel := context.WithTimeoutCause(out.Context(), st.match.rule.backendTimeout, errBackendTimeout)
	return out.WithContext(ctx), cancel
}
