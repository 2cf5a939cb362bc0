package ingress

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Backend is a Service port an Ingress sends requests to.
type Backend struct {
	Namespace, Service string
	Port               networkingv1.ServiceBackendPort
}

// String reads "namespace/service:port".
func (b Backend) String() string {
	port := b.Port.Name
	if port == "" {
		port = strconv.Itoa(int(b.Port.Number))
	}
	return b.Namespace + "/" + b.Service + ":" + port
}

// Route is one entry of the routing table: an Ingress rule's path, or an
// Ingress's defaultBackend (empty Path and PathType).
type Route struct {
	// Namespace and Ingress name the Ingress that declared the route.
	Namespace, Ingress string
	// Host is the rule's host, "" for every host.
	Host     string
	Path     string
	PathType networkingv1.PathType
	Backend  Backend
}

// FieldError is a problem with one field of one Ingress, Gateway or
// HTTPRoute.
type FieldError struct {
	// Kind is the object's kind; "" means Ingress.
	Kind            string
	Namespace, Name string
	// Field is the path of the field, as "spec.rules[0].http.paths[1].pathType".
	Field  string
	Detail string
}

func (e *FieldError) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "Ingress"
	}
	return fmt.Sprintf("ingress: %s %s/%s: %s: %s", kind, e.Namespace, e.Name, e.Field, e.Detail)
}

// route is a Route with what serving it needs.
type route struct {
	Route
	settings
	// rr is the round-robin position of the backend, shared by every
	// route to it and kept across table rebuilds.
	rr *atomic.Uint64
}

// paths holds the routes of one host.
type paths struct {
	exact map[string]*route
	// prefix is keyed by the path without its trailing slash ("/" stays).
	prefix map[string]*route
	// fallback serves requests no path matches; nil means 404.
	fallback *route
}

// table is an immutable routing table.
type table struct {
	hosts     map[string]*paths
	wildcards map[string]*paths // keyed by the suffix after "*."
	any       *paths            // rules without a host
	routes    []Route
}

func newPaths() *paths {
	return &paths{exact: map[string]*route{}, prefix: map[string]*route{}}
}

// match finds the route for a request's Host header and URL path; nil
// means 404.
func (t *table) match(host, urlPath string) *route {
	ps := t.hostPaths(normalizeHost(host))
	p, ok := cleanPath(urlPath)
	if !ok {
		return ps.fallback
	}
	if r, ok := ps.exact[p]; ok {
		return r
	}
	if len(ps.prefix) == 0 {
		return ps.fallback
	}
	// Walk up the path one element at a time, so the first prefix found
	// is the longest.
	p = strings.TrimRight(p, "/")
	for {
		if p == "" {
			p = "/"
		}
		if r, ok := ps.prefix[p]; ok {
			return r
		}
		if p == "/" {
			return ps.fallback
		}
		p = p[:strings.LastIndexByte(p, '/')]
	}
}

func (t *table) hostPaths(host string) *paths {
	if ps, ok := t.hosts[host]; ok {
		return ps
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		if ps, ok := t.wildcards[host[i+1:]]; ok {
			return ps
		}
	}
	return t.any
}

// normalizeHost drops the port and a trailing dot and lower-cases host.
func normalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// cleanPath merges repeated slashes and resolves "." and ".." elements, as
// nginx does before matching locations, keeping a trailing slash. It
// reports false for a path that is not absolute.
func cleanPath(p string) (string, bool) {
	if p == "" {
		return "/", true
	}
	if p[0] != '/' {
		return "", false
	}
	if !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p, true
	}
	trailing := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	var out []string
	for _, e := range strings.Split(p, "/") {
		switch e {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, e)
		}
	}
	s := "/" + strings.Join(out, "/")
	if trailing && s != "/" {
		s += "/"
	}
	return s, true
}

// strictPath is what ingress-nginx accepts in Exact and Prefix paths.
var strictPath = regexp.MustCompile(`^/[A-Za-z0-9\-._~/]*$`)

// buildTable validates ings, which must be in precedence order, and builds
// their table. counters carries round-robin positions over from the
// previous table and receives the ones of this table.
func buildTable(ings []*networkingv1.Ingress, counters map[Backend]*atomic.Uint64) (*table, map[Backend]*atomic.Uint64, []string, error) {
	t := &table{hosts: map[string]*paths{}, wildcards: map[string]*paths{}, any: newPaths()}
	next := map[Backend]*atomic.Uint64{}
	var errs []error
	var warnings []string
	var globalDefault *route

	for _, ing := range ings {
		bad := func(field, format string, args ...any) {
			errs = append(errs, &FieldError{Namespace: ing.Namespace, Name: ing.Name, Field: field, Detail: fmt.Sprintf(format, args...)})
		}
		if ing.Name == "" {
			bad("metadata.name", "required")
		}
		set := parseSettings(ing.Annotations, bad)
		newRoute := func(host, path string, pt networkingv1.PathType, b *networkingv1.IngressBackend, field string) *route {
			be, ok := validateBackend(ing.Namespace, b, field, bad)
			if !ok {
				return nil
			}
			c := next[be]
			if c == nil {
				c = counters[be]
				if c == nil {
					c = new(atomic.Uint64)
				}
				next[be] = c
			}
			return &route{Route: Route{Namespace: ing.Namespace, Ingress: ing.Name, Host: host, Path: path, PathType: pt, Backend: be}, settings: set, rr: c}
		}

		var def *route
		if ing.Spec.DefaultBackend != nil {
			def = newRoute("", "", "", ing.Spec.DefaultBackend, "spec.defaultBackend")
			if def != nil {
				if globalDefault == nil {
					globalDefault = def
					t.routes = append(t.routes, def.Route)
				} else {
					warnings = append(warnings, fmt.Sprintf("Ingress %s/%s: spec.defaultBackend ignored for hosts without a rule: Ingress %s/%s declared one first", ing.Namespace, ing.Name, globalDefault.Namespace, globalDefault.Ingress))
				}
			}
		} else if len(ing.Spec.Rules) == 0 {
			bad("spec", "either spec.defaultBackend or spec.rules is required")
		}

		for i, rule := range ing.Spec.Rules {
			rf := fmt.Sprintf("spec.rules[%d]", i)
			host := rule.Host
			var ps *paths
			switch {
			case host == "":
				ps = t.any
			case strings.HasPrefix(host, "*."):
				if msgs := validation.IsWildcardDNS1123Subdomain(host); len(msgs) > 0 {
					bad(rf+".host", "%q: %s", host, strings.Join(msgs, "; "))
					continue
				}
				suffix := host[2:]
				if ps = t.wildcards[suffix]; ps == nil {
					ps = newPaths()
					t.wildcards[suffix] = ps
				}
			default:
				if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
					bad(rf+".host", "%q: %s", host, strings.Join(msgs, "; "))
					continue
				}
				if ps = t.hosts[host]; ps == nil {
					ps = newPaths()
					t.hosts[host] = ps
				}
			}
			if host != "" && ps.fallback == nil && def != nil {
				ps.fallback = def
			}
			if rule.HTTP == nil {
				continue
			}
			for j, p := range rule.HTTP.Paths {
				pf := fmt.Sprintf("%s.http.paths[%d]", rf, j)
				key, prefix, ok := validatePath(p, pf, bad)
				r := newRoute(host, p.Path, ptrOr(p.PathType), &p.Backend, pf+".backend")
				if !ok || r == nil {
					continue
				}
				m := ps.exact
				if prefix {
					m = ps.prefix
				}
				if prev, dup := m[key]; dup {
					warnings = append(warnings, fmt.Sprintf("Ingress %s/%s: %s: host %q path %q already routed by Ingress %s/%s; ignored", ing.Namespace, ing.Name, pf, host, p.Path, prev.Namespace, prev.Ingress))
					continue
				}
				m[key] = r
				t.routes = append(t.routes, r.Route)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, nil, err
	}
	// Hosts whose Ingresses have no defaultBackend fall back to the
	// first one any Ingress declared, as do hosts without rules.
	for _, ps := range t.hosts {
		if ps.fallback == nil {
			ps.fallback = globalDefault
		}
	}
	for _, ps := range t.wildcards {
		if ps.fallback == nil {
			ps.fallback = globalDefault
		}
	}
	t.any.fallback = globalDefault
	slices.SortStableFunc(t.routes, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Path, b.Path), cmp.Compare(a.PathType, b.PathType))
	})
	return t, next, warnings, nil
}

func ptrOr(pt *networkingv1.PathType) networkingv1.PathType {
	if pt == nil {
		return ""
	}
	return *pt
}

// validatePath checks one rule path and returns its table key and whether
// it goes in the prefix map.
func validatePath(p networkingv1.HTTPIngressPath, field string, bad func(field, format string, args ...any)) (key string, prefix, ok bool) {
	if p.PathType == nil {
		bad(field+".pathType", "required (Exact, Prefix or ImplementationSpecific)")
		return "", false, false
	}
	pt := *p.PathType
	switch pt {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(p.Path, "/") {
			bad(field+".path", "%q: must be an absolute path", p.Path)
			return "", false, false
		}
		if !strictPath.MatchString(p.Path) {
			bad(field+".path", "%q: a %s path may hold only letters, digits and - . _ ~ / (regular expressions are not supported)", p.Path, pt)
			return "", false, false
		}
		for _, bad2 := range []string{"//", "/./", "/../"} {
			if strings.Contains(p.Path, bad2) {
				bad(field+".path", "%q: must not contain %q", p.Path, bad2)
				return "", false, false
			}
		}
		if strings.HasSuffix(p.Path, "/..") || strings.HasSuffix(p.Path, "/.") {
			bad(field+".path", "%q: must not end in a dot element", p.Path)
			return "", false, false
		}
	case networkingv1.PathTypeImplementationSpecific:
		if p.Path == "" {
			return "/", true, true
		}
		if !strings.HasPrefix(p.Path, "/") {
			bad(field+".path", "%q: must be an absolute path", p.Path)
			return "", false, false
		}
		if i := strings.IndexAny(p.Path, `^$*+?()[]{}|\`); i >= 0 {
			bad(field+".path", "%q: %q looks like a regular expression, which is not supported", p.Path, p.Path[i])
			return "", false, false
		}
		if c, _ := cleanPath(p.Path); c != p.Path {
			bad(field+".path", "%q: not a clean path (repeated slashes or dot elements)", p.Path)
			return "", false, false
		}
	default:
		bad(field+".pathType", "unsupported value %q (want Exact, Prefix or ImplementationSpecific)", pt)
		return "", false, false
	}
	if pt == networkingv1.PathTypeExact {
		return p.Path, false, true
	}
	key = strings.TrimRight(p.Path, "/")
	if key == "" {
		key = "/"
	}
	return key, true, true
}

// validateBackend checks an IngressBackend; only Service backends are
// supported.
func validateBackend(ns string, b *networkingv1.IngressBackend, field string, bad func(field, format string, args ...any)) (Backend, bool) {
	if b.Resource != nil {
		bad(field+".resource", "resource backends are not supported; use service")
		return Backend{}, false
	}
	s := b.Service
	if s == nil {
		bad(field+".service", "required")
		return Backend{}, false
	}
	ok := true
	if msgs := validation.IsDNS1035Label(s.Name); len(msgs) > 0 {
		bad(field+".service.name", "%q: %s", s.Name, strings.Join(msgs, "; "))
		ok = false
	}
	switch p := s.Port; {
	case p.Name != "" && p.Number != 0:
		bad(field+".service.port", "name %q and number %d are both set; set one", p.Name, p.Number)
		ok = false
	case p.Name != "":
		if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
			bad(field+".service.port.name", "%q: %s", p.Name, strings.Join(msgs, "; "))
			ok = false
		}
	case p.Number != 0:
		if msgs := validation.IsValidPortNum(int(p.Number)); len(msgs) > 0 {
			bad(field+".service.port.number", "%d: %s", p.Number, strings.Join(msgs, "; "))
			ok = false
		}
	default:
		bad(field+".service.port", "required: name or number")
		ok = false
	}
	return Backend{Namespace: ns, Service: s.Name, Port: s.Port}, ok
}
