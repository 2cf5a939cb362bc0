package lint

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// httpRoute is an HTTPRoute of either served version with its document.
type httpRoute struct {
	doc   *Document
	route *gatewayv1.HTTPRoute
}

// gateway is a Gateway of either served version with its document.
type gateway struct {
	doc *Document
	gw  *gatewayv1.Gateway
}

// HTTPRoutes returns the set's HTTPRoutes; v1beta1 ones are the v1 type
// under another name.
func (s *set) httpRoutes() []httpRoute {
	var rs []httpRoute
	for _, d := range s.docs {
		switch o := d.Object.(type) {
		case *gatewayv1.HTTPRoute:
			rs = append(rs, httpRoute{d, o})
		case *gatewayv1beta1.HTTPRoute:
			rs = append(rs, httpRoute{d, (*gatewayv1.HTTPRoute)(o)})
		}
	}
	return rs
}

func (s *set) gateways() []gateway {
	var gs []gateway
	for _, d := range s.docs {
		switch o := d.Object.(type) {
		case *gatewayv1.Gateway:
			gs = append(gs, gateway{d, o})
		case *gatewayv1beta1.Gateway:
			gs = append(gs, gateway{d, (*gatewayv1.Gateway)(o)})
		}
	}
	return gs
}

// service returns the Service ns/name of the set, or nil.
func (s *set) service(ns, name string) *corev1.Service {
	for _, d := range s.docs {
		if svc, ok := d.Object.(*corev1.Service); ok && nsOrDefault(d.Namespace) == nsOrDefault(ns) && d.Name == name {
			return svc
		}
	}
	return nil
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// isServiceRef reports whether a backendRef's group and kind name a core
// Service, the default.
func isServiceRef(ref gatewayv1.BackendObjectReference) bool {
	return (ref.Group == nil || *ref.Group == "") && (ref.Kind == nil || *ref.Kind == "Service")
}

// checkRouteBackends reports backendRefs to a Service the set does not
// declare, or to a port the Service does not have.
func checkRouteBackends(s *set) []Finding {
	var fs []Finding
	for _, r := range s.httpRoutes() {
		for i, rule := range r.route.Spec.Rules {
			for j, b := range rule.BackendRefs {
				ref := b.BackendObjectReference
				if !isServiceRef(ref) {
					continue
				}
				field := fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j)
				ns := r.doc.Namespace
				if ref.Namespace != nil {
					ns = string(*ref.Namespace)
				}
				svc := s.service(ns, string(ref.Name))
				switch {
				case svc == nil:
					fs = append(fs, emit(r.doc, ruleRouteBackend, field+".name",
						"backendRef sends to Service %q, which this input does not declare in namespace %q", ref.Name, nsOrDefault(ns))...)
				case ref.Port == nil:
					fs = append(fs, emit(r.doc, ruleRouteBackend, field,
						"backendRef to Service %q has no port; a Service backend needs one", ref.Name)...)
				case !servicePort(svc, int32(*ref.Port)):
					fs = append(fs, emit(r.doc, ruleRouteBackend, field+".port",
						"backendRef sends to port %d of Service %q, which has no such port", *ref.Port, ref.Name)...)
				case nsOrDefault(ns) != nsOrDefault(r.doc.Namespace) && !s.referenceGranted(r.doc.Namespace, ns, string(ref.Name)):
					fs = append(fs, emit(r.doc, ruleRouteBackend, field+".namespace",
						"backendRef sends to Service %q in namespace %q, where no ReferenceGrant lets HTTPRoutes of namespace %q refer to it", ref.Name, nsOrDefault(ns), nsOrDefault(r.doc.Namespace))...)
				}
			}
		}
	}
	return fs
}

func servicePort(svc *corev1.Service, port int32) bool {
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// checkRouteWeights reports rules whose backendRefs all weigh zero: the
// spec says such a rule answers every request with 500.
func checkRouteWeights(s *set) []Finding {
	var fs []Finding
	for _, r := range s.httpRoutes() {
		for i, rule := range r.route.Spec.Rules {
			if len(rule.BackendRefs) == 0 {
				continue
			}
			total := int64(0)
			for _, b := range rule.BackendRefs {
				total += int64(deref(b.Weight, 1))
			}
			if total == 0 {
				fs = append(fs, emit(r.doc, ruleRouteWeightsZero, fmt.Sprintf("spec.rules[%d].backendRefs", i),
					"every backendRef of rule %d has weight 0, so the rule answers every request with 500", i)...)
			}
		}
	}
	return fs
}

// parentGateway returns the Gateway a parentRef names, or nil; ok is false
// when the parentRef names a kind other than Gateway, which is left alone.
func (s *set) parentGateway(routeNS string, p gatewayv1.ParentReference) (g *gateway, ok bool) {
	if (p.Group != nil && *p.Group != gatewayGroup) || (p.Kind != nil && *p.Kind != "Gateway") {
		return nil, false
	}
	ns := routeNS
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	for _, gw := range s.gateways() {
		if nsOrDefault(gw.doc.Namespace) == nsOrDefault(ns) && gw.doc.Name == string(p.Name) {
			return &gw, true
		}
	}
	return nil, true
}

// listeners returns the listeners of g a parentRef selects by its
// sectionName and port, and among them those that admit a route from
// routeNS.
func selectedListeners(g *gateway, p gatewayv1.ParentReference, routeNS string) (selected, admitting []gatewayv1.Listener) {
	for _, l := range g.gw.Spec.Listeners {
		if p.SectionName != nil && *p.SectionName != l.Name {
			continue
		}
		if p.Port != nil && *p.Port != l.Port {
			continue
		}
		selected = append(selected, l)
		if admits(g, l, routeNS) {
			admitting = append(admitting, l)
		}
	}
	return selected, admitting
}

// admits reports whether listener l admits HTTPRoutes from routeNS. A
// Selector is taken to admit: the namespaces' labels are not in the set.
func admits(g *gateway, l gatewayv1.Listener, routeNS string) bool {
	if l.Protocol != gatewayv1.HTTPProtocolType && l.Protocol != gatewayv1.HTTPSProtocolType {
		return false
	}
	if ar := l.AllowedRoutes; ar != nil {
		if len(ar.Kinds) > 0 {
			ok := false
			for _, k := range ar.Kinds {
				if k.Kind == "HTTPRoute" && (k.Group == nil || *k.Group == gatewayGroup) {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		if ar.Namespaces != nil && ar.Namespaces.From != nil {
			switch *ar.Namespaces.From {
			case gatewayv1.NamespacesFromAll, gatewayv1.NamespacesFromSelector:
				return true
			}
		}
	}
	return nsOrDefault(routeNS) == nsOrDefault(g.doc.Namespace)
}

// checkRouteParents reports parentRefs that name no Gateway of the set, or
// no listener of it that takes the route.
func checkRouteParents(s *set) []Finding {
	var fs []Finding
	for _, r := range s.httpRoutes() {
		if len(r.route.Spec.ParentRefs) == 0 {
			fs = append(fs, emit(r.doc, ruleRouteParentMissing, "spec",
				"the route has no parentRefs, so no Gateway serves it")...)
		}
		for i, p := range r.route.Spec.ParentRefs {
			field := fmt.Sprintf("spec.parentRefs[%d]", i)
			g, ok := s.parentGateway(r.doc.Namespace, p)
			if !ok {
				continue
			}
			if g == nil {
				fs = append(fs, emit(r.doc, ruleRouteParentMissing, field+".name",
					"parentRef names Gateway %q, which this input does not declare in the route's namespace", p.Name)...)
				continue
			}
			selected, admitting := selectedListeners(g, p, r.doc.Namespace)
			switch {
			case len(selected) == 0:
				fs = append(fs, emit(r.doc, ruleRouteParentMissing, field,
					"parentRef selects no listener of Gateway %q (sectionName %s, port %s)", p.Name, strOr(p.SectionName), numOr(p.Port))...)
			case len(admitting) == 0:
				fs = append(fs, emit(r.doc, ruleRouteParentMissing, field,
					"no listener of Gateway %q it selects takes HTTPRoutes from namespace %q (protocol, allowedRoutes.kinds or allowedRoutes.namespaces)", p.Name, nsOrDefault(r.doc.Namespace))...)
			}
		}
	}
	return fs
}

func strOr(p *gatewayv1.SectionName) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprintf("%q", *p)
}

func numOr(p *gatewayv1.PortNumber) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// checkRouteHostnames reports routes whose hostnames match none of the
// listeners they attach to: the Gateway does not accept such a route.
func checkRouteHostnames(s *set) []Finding {
	var fs []Finding
	for _, r := range s.httpRoutes() {
		for i, p := range r.route.Spec.ParentRefs {
			g, _ := s.parentGateway(r.doc.Namespace, p)
			if g == nil {
				continue
			}
			_, admitting := selectedListeners(g, p, r.doc.Namespace)
			if len(admitting) == 0 {
				continue
			}
			matched := false
			for _, l := range admitting {
				if hostnamesIntersect(l.Hostname, r.route.Spec.Hostnames) {
					matched = true
				}
			}
			if !matched {
				var hs []string
				for _, l := range admitting {
					if l.Hostname != nil {
						hs = append(hs, string(*l.Hostname))
					}
				}
				fs = append(fs, emit(r.doc, ruleRouteHostnameMismatch, "spec.hostnames",
					"no hostname of the route matches the listeners of Gateway %q it attaches to through parentRefs[%d] (%s)", p.Name, i, strings.Join(hs, ", "))...)
			}
		}
	}
	return fs
}

// hostnamesIntersect reports whether a listener's hostname and a route's
// hostnames share a host, as Gateway API matches them: an empty side
// matches everything, and "*.example.com" matches any name below
// example.com.
func hostnamesIntersect(listener *gatewayv1.Hostname, route []gatewayv1.Hostname) bool {
	if listener == nil || *listener == "" || len(route) == 0 {
		return true
	}
	for _, h := range route {
		if hostnameMatches(string(*listener), string(h)) || hostnameMatches(string(h), string(*listener)) {
			return true
		}
	}
	return false
}

// hostnameMatches reports whether host matches pattern as Gateway API
// hostnames do: exactly, or, for a pattern "*.example.com", when host
// ends in ".example.com" with at least one label before it. A host that
// is itself a wildcard matches a pattern that covers it.
func hostnameMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
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

// checkUnusedListeners notes HTTP listeners no HTTPRoute of the set
// attaches to.
func checkUnusedListeners(s *set) []Finding {
	var fs []Finding
	routes := s.httpRoutes()
	for _, g := range s.gateways() {
		for i, l := range g.gw.Spec.Listeners {
			if l.Protocol != gatewayv1.HTTPProtocolType && l.Protocol != gatewayv1.HTTPSProtocolType {
				continue
			}
			used := false
			for _, r := range routes {
				for _, p := range r.route.Spec.ParentRefs {
					pg, _ := s.parentGateway(r.doc.Namespace, p)
					if pg == nil || pg.doc != g.doc {
						continue
					}
					_, admitting := selectedListeners(pg, p, r.doc.Namespace)
					for _, a := range admitting {
						if a.Name == l.Name && hostnamesIntersect(a.Hostname, r.route.Spec.Hostnames) {
							used = true
						}
					}
				}
			}
			if !used {
				fs = append(fs, emit(g.doc, ruleListenerUnused, fmt.Sprintf("spec.listeners[%d]", i),
					"no HTTPRoute in this input attaches to listener %q (port %d)", l.Name, l.Port)...)
			}
		}
	}
	return fs
}

// referenceGranted reports whether a ReferenceGrant in toNS lets
// HTTPRoutes of fromNS refer to the Service name.
func (s *set) referenceGranted(fromNS, toNS, name string) bool {
	for _, d := range s.docs {
		var spec *gatewayv1.ReferenceGrantSpec
		switch o := d.Object.(type) {
		case *gatewayv1.ReferenceGrant:
			spec = &o.Spec
		case *gatewayv1beta1.ReferenceGrant:
			spec = &o.Spec
		}
		if spec == nil || nsOrDefault(d.Namespace) != nsOrDefault(toNS) {
			continue
		}
		from, to := false, false
		for _, f := range spec.From {
			if f.Group == gatewayGroup && f.Kind == "HTTPRoute" && nsOrDefault(string(f.Namespace)) == nsOrDefault(fromNS) {
				from = true
			}
		}
		for _, t := range spec.To {
			if t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == name) {
				to = true
			}
		}
		if from && to {
			return true
		}
	}
	return false
}
