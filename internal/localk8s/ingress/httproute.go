package ingress

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// gatewayGroup is the API group of Gateway API kinds.
const gatewayGroup = "gateway.networking.k8s.io"

// HTTPRouteEntry is one match of one rule of an HTTPRoute, as served: the
// hostname it answers after intersecting the route's hostnames with the
// listeners it attached to.
type HTTPRouteEntry struct {
	// Namespace and Name name the HTTPRoute; Rule and Match index its
	// spec.rules and the rule's matches.
	Namespace, Name string
	Rule, Match     int
	// Hostname is the effective hostname, "" for every host.
	Hostname string
	// Match describes the match, as "PathPrefix /v1 GET headers=1 query=0".
	MatchText string
	// Backends are the rule's backendRefs with their weights.
	Backends []WeightedBackend
}

// WeightedBackend is a backendRef and its weight.
type WeightedBackend struct {
	Backend
	Weight int32
}

// String reads "namespace/service:port weight=N".
func (b WeightedBackend) String() string {
	return fmt.Sprintf("%s weight=%d", b.Backend, b.Weight)
}

// pathKind orders path matches: an Exact path beats a regular expression,
// which beats a PathPrefix (the precedence of regular expressions is left
// to implementations; this is Envoy Gateway's).
type pathKind int

const (
	pathExact pathKind = iota
	pathRegex
	pathPrefix
)

// httpMatch is one compiled HTTPRouteMatch with the rule it leads to.
type httpMatch struct {
	entry HTTPRouteEntry

	kind   pathKind
	path   string         // exact path, or prefix without a trailing slash ("/" stays)
	re     *regexp.Regexp // pathRegex
	method string
	// headers and query hold the first entry per name, as the spec asks.
	headers []valueMatch
	query   []valueMatch

	created time.Time
	rule    *httpRule
}

type valueMatch struct {
	name  string // canonical header name, or the query parameter
	value string
	re    *regexp.Regexp // nil for Exact
}

func (v valueMatch) matches(got string, ok bool) bool {
	if !ok {
		return false
	}
	if v.re != nil {
		return v.re.MatchString(got)
	}
	return got == v.value
}

// httpRule is what serving a rule needs, shared by its matches.
type httpRule struct {
	backends []routeBackend
	total    uint64 // sum of weights
	next     *atomic.Uint64

	reqHeaders, respHeaders *headerFilter
	redirect                *gatewayv1.HTTPRequestRedirectFilter
	rewrite                 *gatewayv1.HTTPURLRewriteFilter

	requestTimeout, backendTimeout time.Duration
}

type routeBackend struct {
	weight      uint64
	route       *route // the transport's view: backend, settings, round-robin position
	reqHeaders  *headerFilter
	respHeaders *headerFilter
}

// headerFilter is a RequestHeaderModifier or ResponseHeaderModifier.
type headerFilter struct {
	set, add []gatewayv1.HTTPHeader
	remove   []string
}

func (f *headerFilter) apply(h http.Header) {
	if f == nil {
		return
	}
	for _, kv := range f.set {
		h.Set(string(kv.Name), kv.Value)
	}
	for _, kv := range f.add {
		h.Add(string(kv.Name), kv.Value)
	}
	for _, k := range f.remove {
		h.Del(k)
	}
}

// routeTable is an immutable table of HTTPRoute matches, grouped by
// effective hostname and each group in precedence order.
type routeTable struct {
	byHost  map[string][]*httpMatch // exact hostnames and "*.suffix" wildcards
	any     []*httpMatch            // routes for every host
	entries []HTTPRouteEntry
}

func (t *routeTable) empty() bool { return t == nil || (len(t.byHost) == 0 && len(t.any) == 0) }

// routeSettings are the proxy settings of HTTPRoute backends: no body
// limit (Gateway API has no field for one) and nginx's own
// proxy_next_upstream default, "error timeout", which NGINX Gateway Fabric
// keeps: an idempotent request moves on to the next endpoint when one
// cannot be reached or times out.
var routeSettings = settings{next: defaultNextUpstream}

// gatewayDuration is Gateway API's duration format (GEP-2257).
var gatewayDuration = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// listener is a Gateway listener routes can attach to.
type listener struct {
	gw       *gatewayv1.Gateway
	l        gatewayv1.Listener
	hostname string
}

// buildRoutes validates gateways and routes and builds their table.
// counters carries round-robin positions over, as in buildTable.
func buildRoutes(gws []*gatewayv1.Gateway, routes []*gatewayv1.HTTPRoute, counters map[Backend]*atomic.Uint64, next map[Backend]*atomic.Uint64) (*routeTable, []string, error) {
	var errs []error
	var warnings []string
	var ls []listener
	for _, gw := range gws {
		bad := func(field, format string, args ...any) {
			errs = append(errs, &FieldError{Kind: "Gateway", Namespace: gw.Namespace, Name: gw.Name, Field: field, Detail: fmt.Sprintf(format, args...)})
		}
		for i, l := range gw.Spec.Listeners {
			switch l.Protocol {
			case gatewayv1.HTTPProtocolType, gatewayv1.HTTPSProtocolType:
			default:
				// TCP, TLS and UDP listeners take other route kinds.
				continue
			}
			h := ""
			if l.Hostname != nil {
				h = strings.ToLower(string(*l.Hostname))
				if msgs := validation.IsWildcardDNS1123Subdomain(h); strings.HasPrefix(h, "*.") && len(msgs) > 0 {
					bad(fmt.Sprintf("spec.listeners[%d].hostname", i), "%q: %s", h, strings.Join(msgs, "; "))
					continue
				}
			}
			ls = append(ls, listener{gw: gw, l: l, hostname: h})
		}
	}
	t := &routeTable{byHost: map[string][]*httpMatch{}}
	for _, rt := range routes {
		ms, w, err := compileRoute(rt, ls, counters, next)
		warnings = append(warnings, w...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, m := range ms {
			if m.entry.Hostname == "" {
				t.any = append(t.any, m)
			} else {
				t.byHost[m.entry.Hostname] = append(t.byHost[m.entry.Hostname], m)
			}
			t.entries = append(t.entries, m.entry)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	for _, ms := range t.byHost {
		slices.SortStableFunc(ms, precedence)
	}
	slices.SortStableFunc(t.any, precedence)
	slices.SortStableFunc(t.entries, func(a, b HTTPRouteEntry) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Match, b.Match))
	})
	return t, warnings, nil
}

// precedence orders matches as the HTTPRoute spec does: Exact path, then
// the longest path, a method match, most header matches, most query
// matches; across routes the oldest, then by namespace/name; within a
// route the first rule and match.
func precedence(a, b *httpMatch) int {
	return cmp.Or(
		cmp.Compare(a.kind, b.kind),
		-cmp.Compare(len(a.path), len(b.path)),
		-cmp.Compare(boolInt(a.method != ""), boolInt(b.method != "")),
		-cmp.Compare(len(a.headers), len(b.headers)),
		-cmp.Compare(len(a.query), len(b.query)),
		a.created.Compare(b.created),
		cmp.Compare(a.entry.Namespace, b.entry.Namespace),
		cmp.Compare(a.entry.Name, b.entry.Name),
		cmp.Compare(a.entry.Rule, b.entry.Rule),
		cmp.Compare(a.entry.Match, b.entry.Match))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// attachedHostnames returns the effective hostnames of rt: for each
// listener it attaches to, the intersection of the listener's hostname
// with the route's. ok is false when rt attaches to no listener.
func attachedHostnames(rt *gatewayv1.HTTPRoute, ls []listener) (hosts []string, attached bool) {
	seen := map[string]bool{}
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	for _, p := range rt.Spec.ParentRefs {
		if (p.Group != nil && *p.Group != gatewayGroup) || (p.Kind != nil && *p.Kind != "Gateway") {
			continue
		}
		ns := rt.Namespace
		if p.Namespace != nil {
			ns = string(*p.Namespace)
		}
		for _, l := range ls {
			if l.gw.Name != string(p.Name) || nsOf(l.gw.Namespace) != nsOf(ns) {
				continue
			}
			if (p.SectionName != nil && *p.SectionName != l.l.Name) || (p.Port != nil && *p.Port != l.l.Port) || !admits(l, rt.Namespace) {
				continue
			}
			if len(rt.Spec.Hostnames) == 0 {
				attached = true
				add(l.hostname)
				continue
			}
			for _, h := range rt.Spec.Hostnames {
				rh := strings.ToLower(string(h))
				switch {
				case l.hostname == "" || hostnameMatches(l.hostname, rh):
					attached = true
					add(rh)
				case hostnameMatches(rh, l.hostname):
					attached = true
					add(l.hostname)
				}
			}
		}
	}
	return hosts, attached
}

func nsOf(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// admits reports whether l takes HTTPRoutes from namespace ns; a namespace
// Selector admits every namespace, since namespaces carry no labels here.
func admits(l listener, ns string) bool {
	if ar := l.l.AllowedRoutes; ar != nil {
		if len(ar.Kinds) > 0 && !slices.ContainsFunc(ar.Kinds, func(k gatewayv1.RouteGroupKind) bool {
			return k.Kind == "HTTPRoute" && (k.Group == nil || *k.Group == gatewayGroup)
		}) {
			return false
		}
		if ar.Namespaces != nil && ar.Namespaces.From != nil && *ar.Namespaces.From != gatewayv1.NamespacesFromSame {
			return true
		}
	}
	return nsOf(ns) == nsOf(l.gw.Namespace)
}

// hostnameMatches reports whether host matches pattern as Gateway API
// hostnames do: exactly, or for "*.example.com" any name ending in
// ".example.com" with at least one label before it. A wildcard host
// matches a pattern that covers it.
func hostnameMatches(pattern, host string) bool {
	if pattern == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok {
		return false
	}
	host = strings.TrimPrefix(host, "*")
	return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
}

// compileRoute validates one HTTPRoute and compiles its matches for each
// effective hostname.
func compileRoute(rt *gatewayv1.HTTPRoute, ls []listener, counters, next map[Backend]*atomic.Uint64) ([]*httpMatch, []string, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Kind: "HTTPRoute", Namespace: rt.Namespace, Name: rt.Name, Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	if rt.Name == "" {
		bad("metadata.name", "required")
	}
	hosts, attached := attachedHostnames(rt, ls)
	var warnings []string
	if !attached {
		warnings = append(warnings, fmt.Sprintf("HTTPRoute %s/%s attaches to no listener of a Gateway in the manifests (parentRefs, sectionName, port, allowedRoutes or hostnames); it serves nothing", rt.Namespace, rt.Name))
	}
	var out []*httpMatch
	for i, r := range rt.Spec.Rules {
		rf := fmt.Sprintf("spec.rules[%d]", i)
		rule := compileRule(rt.Namespace, r, rf, bad, counters, next)
		matches := r.Matches
		if len(matches) == 0 {
			matches = []gatewayv1.HTTPRouteMatch{{}}
		}
		for j, m := range matches {
			hm := compileMatch(m, fmt.Sprintf("%s.matches[%d]", rf, j), bad)
			if hm == nil || rule == nil {
				continue
			}
			if rule.rewrite != nil && rule.rewrite.Path != nil && rule.rewrite.Path.Type == gatewayv1.PrefixMatchHTTPPathModifier && hm.kind != pathPrefix ||
				rule.redirect != nil && rule.redirect.Path != nil && rule.redirect.Path.Type == gatewayv1.PrefixMatchHTTPPathModifier && hm.kind != pathPrefix {
				bad(rf+".filters", "ReplacePrefixMatch needs every match of the rule to be a PathPrefix path")
				continue
			}
			hm.rule = rule
			hm.created = rt.CreationTimestamp.Time
			var wbs []WeightedBackend
			for _, b := range rule.backends {
				wbs = append(wbs, WeightedBackend{Backend: b.route.Backend, Weight: int32(b.weight)})
			}
			for _, h := range hosts {
				c := *hm
				c.entry = HTTPRouteEntry{Namespace: rt.Namespace, Name: rt.Name, Rule: i, Match: j, Hostname: h,
					MatchText: hm.describe(), Backends: wbs}
				out = append(out, &c)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, warnings, err
	}
	return out, warnings, nil
}

func (m *httpMatch) describe() string {
	kind := [...]string{pathExact: "Exact", pathRegex: "RegularExpression", pathPrefix: "PathPrefix"}[m.kind]
	s := kind + " " + m.path
	if m.re != nil {
		s = kind + " " + m.re.String()
	}
	if m.method != "" {
		s += " " + m.method
	}
	if len(m.headers) > 0 {
		s += fmt.Sprintf(" headers=%d", len(m.headers))
	}
	if len(m.query) > 0 {
		s += fmt.Sprintf(" query=%d", len(m.query))
	}
	return s
}

func compileMatch(m gatewayv1.HTTPRouteMatch, field string, bad func(field, format string, args ...any)) *httpMatch {
	hm := &httpMatch{kind: pathPrefix, path: "/"}
	ok := true
	if p := m.Path; p != nil {
		typ := gatewayv1.PathMatchPathPrefix
		if p.Type != nil {
			typ = *p.Type
		}
		v := "/"
		if p.Value != nil {
			v = *p.Value
		}
		switch typ {
		case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix:
			if !strings.HasPrefix(v, "/") {
				bad(field+".path.value", "%q: must be an absolute path", v)
				ok = false
			} else if c, _ := cleanPath(v); c != v {
				bad(field+".path.value", "%q: must not contain repeated slashes or dot elements", v)
				ok = false
			}
			hm.path = v
			if typ == gatewayv1.PathMatchExact {
				hm.kind = pathExact
			} else if hm.path = strings.TrimRight(v, "/"); hm.path == "" {
				hm.path = "/"
			}
		case gatewayv1.PathMatchRegularExpression:
			re, err := regexp.Compile("^(?:" + v + ")$")
			if err != nil {
				bad(field+".path.value", "%q: %v", v, err)
				ok = false
			}
			hm.kind, hm.re, hm.path = pathRegex, re, v
		default:
			bad(field+".path.type", "unsupported value %q (want Exact, PathPrefix or RegularExpression)", typ)
			ok = false
		}
	}
	if m.Method != nil {
		hm.method = string(*m.Method)
	}
	seen := map[string]bool{}
	for i, h := range m.Headers {
		name := http.CanonicalHeaderKey(string(h.Name))
		if seen[name] {
			continue // only the first entry of a name counts
		}
		seen[name] = true
		vm, vok := valueMatcher(name, h.Value, (*string)(h.Type), fmt.Sprintf("%s.headers[%d]", field, i), bad)
		ok = ok && vok
		hm.headers = append(hm.headers, vm)
	}
	seen = map[string]bool{}
	for i, q := range m.QueryParams {
		name := string(q.Name)
		if seen[name] {
			continue
		}
		seen[name] = true
		vm, vok := valueMatcher(name, q.Value, (*string)(q.Type), fmt.Sprintf("%s.queryParams[%d]", field, i), bad)
		ok = ok && vok
		hm.query = append(hm.query, vm)
	}
	if !ok {
		return nil
	}
	return hm
}

func valueMatcher(name, value string, typ *string, field string, bad func(field, format string, args ...any)) (valueMatch, bool) {
	vm := valueMatch{name: name, value: value}
	if name == "" {
		bad(field+".name", "required")
		return vm, false
	}
	switch t := deref(typ, "Exact"); t {
	case "Exact":
	case "RegularExpression":
		re, err := regexp.Compile(value)
		if err != nil {
			bad(field+".value", "%q: %v", value, err)
			return vm, false
		}
		vm.re = re
	default:
		bad(field+".type", "unsupported value %q (want Exact or RegularExpression)", t)
		return vm, false
	}
	return vm, true
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// compileRule validates a rule's filters, backendRefs and timeouts.
func compileRule(ns string, r gatewayv1.HTTPRouteRule, field string, bad func(field, format string, args ...any), counters, next map[Backend]*atomic.Uint64) *httpRule {
	rule := &httpRule{next: new(atomic.Uint64)}
	ok := true
	for i, f := range r.Filters {
		ff := fmt.Sprintf("%s.filters[%d]", field, i)
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			rule.reqHeaders = headerModifier(f.RequestHeaderModifier)
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			rule.respHeaders = headerModifier(f.ResponseHeaderModifier)
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			if f.RequestRedirect == nil {
				bad(ff+".requestRedirect", "required for type RequestRedirect")
				ok = false
			}
			rule.redirect = f.RequestRedirect
		case gatewayv1.HTTPRouteFilterURLRewrite:
			if f.URLRewrite == nil {
				bad(ff+".urlRewrite", "required for type URLRewrite")
				ok = false
			}
			rule.rewrite = f.URLRewrite
		default:
			bad(ff+".type", "filter %q is not supported by shoal up (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect and URLRewrite are)", f.Type)
			ok = false
		}
	}
	for i, b := range r.BackendRefs {
		bf := fmt.Sprintf("%s.backendRefs[%d]", field, i)
		ref := b.BackendObjectReference
		if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Service") {
			bad(bf, "only Service backends are supported, not %s/%s", deref(ref.Group, ""), deref(ref.Kind, ""))
			ok = false
			continue
		}
		if ref.Port == nil {
			bad(bf+".port", "required for a Service backend")
			ok = false
			continue
		}
		bns := ns
		if ref.Namespace != nil {
			bns = string(*ref.Namespace)
		}
		w := deref(b.Weight, 1)
		if w < 0 {
			bad(bf+".weight", "%d is negative", w)
			ok = false
			continue
		}
		be := Backend{Namespace: nsOf(bns), Service: string(ref.Name), Port: networkingv1.ServiceBackendPort{Number: int32(*ref.Port)}}
		c := next[be]
		if c == nil {
			if c = counters[be]; c == nil {
				c = new(atomic.Uint64)
			}
			next[be] = c
		}
		rb := routeBackend{weight: uint64(w), route: &route{Route: Route{Namespace: ns, Ingress: "", Backend: be}, settings: routeSettings, rr: c}}
		for j, f := range b.Filters {
			switch f.Type {
			case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
				rb.reqHeaders = headerModifier(f.RequestHeaderModifier)
			case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
				rb.respHeaders = headerModifier(f.ResponseHeaderModifier)
			default:
				bad(fmt.Sprintf("%s.filters[%d].type", bf, j), "backendRef filter %q is not supported by shoal up (RequestHeaderModifier and ResponseHeaderModifier are)", f.Type)
				ok = false
			}
		}
		rule.backends = append(rule.backends, rb)
		rule.total += rb.weight
	}
	if t := r.Timeouts; t != nil {
		rule.requestTimeout = parseGatewayDuration(t.Request, field+".timeouts.request", bad, &ok)
		rule.backendTimeout = parseGatewayDuration(t.BackendRequest, field+".timeouts.backendRequest", bad, &ok)
		if rule.requestTimeout > 0 && rule.backendTimeout > rule.requestTimeout {
			bad(field+".timeouts.backendRequest", "%v is longer than timeouts.request %v", rule.backendTimeout, rule.requestTimeout)
			ok = false
		}
	}
	if r.Retry != nil {
		bad(field+".retry", "retries are in Gateway API's experimental channel, which shoal up does not serve")
		ok = false
	}
	if r.SessionPersistence != nil {
		bad(field+".sessionPersistence", "session persistence is in Gateway API's experimental channel, which shoal up does not serve")
		ok = false
	}
	if !ok {
		return nil
	}
	return rule
}

func headerModifier(f *gatewayv1.HTTPHeaderFilter) *headerFilter {
	if f == nil {
		return nil
	}
	return &headerFilter{set: f.Set, add: f.Add, remove: f.Remove}
}

func parseGatewayDuration(d *gatewayv1.Duration, field string, bad func(field, format string, args ...any), ok *bool) time.Duration {
	if d == nil {
		return 0
	}
	s := string(*d)
	if !gatewayDuration.MatchString(s) {
		bad(field, "%q is not a Gateway API duration (as 10s, 1m30s or 500ms)", s)
		*ok = false
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		bad(field, "%q: %v", s, err)
		*ok = false
	}
	return v
}
