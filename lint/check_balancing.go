package lint

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The balancing fields of a Service as Kubernetes v1.37 has them:
// sessionAffinity ClientIP with sessionAffinityConfig.clientIP.timeoutSeconds
// (default 10800), and trafficDistribution PreferSameZone, PreferSameNode
// (both GA since v1.35, gate PreferSameTrafficDistribution locked on) and
// PreferClose, the deprecated name of PreferSameZone.

// Well-known node labels a pod template pins itself with.
const (
	labelZone     = "topology.kubernetes.io/zone"
	labelHostname = "kubernetes.io/hostname"
)

// zonesInARegion is how many zones a cloud region usually offers, and so
// the fewest pods that can put one in each zone.
const zonesInARegion = 3

// serviceDoc is one Service of the set, with or without a selector.
type serviceDoc struct {
	d   *Document
	svc *corev1.Service
}

func allServices(s *set) []serviceDoc {
	var out []serviceDoc
	for _, d := range s.docs {
		if svc, ok := d.Object.(*corev1.Service); ok && svc.Spec.Type != corev1.ServiceTypeExternalName {
			out = append(out, serviceDoc{d, svc})
		}
	}
	return out
}

// selected returns the workloads the Service's selector matches.
func (s *set) selected(sv serviceDoc) []*workload {
	if len(sv.svc.Spec.Selector) == 0 {
		return nil
	}
	return s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector))
}

func clientIPAffinity(svc *corev1.Service) bool {
	return svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP
}

// affinityTimeout is the ClientIP affinity's timeout in seconds.
func affinityTimeout(svc *corev1.Service) int32 {
	if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		return *c.ClientIP.TimeoutSeconds
	}
	return corev1.DefaultClientIPServiceAffinitySeconds
}

// proxyClients names, per Service ("namespace/name"), the Ingresses and
// HTTPRoutes of the set that send requests to it.
func (s *set) proxyClients() map[string][]string {
	out := map[string][]string{}
	add := func(ns, svc, who string) {
		key := nsOrDefault(ns) + "/" + svc
		for _, w := range out[key] {
			if w == who {
				return
			}
		}
		out[key] = append(out[key], who)
	}
	for _, d := range s.docs {
		ing, ok := d.Object.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		if b := ing.Spec.DefaultBackend; b != nil && b.Service != nil {
			add(d.Namespace, b.Service.Name, d.ID())
		}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service != nil {
					add(d.Namespace, p.Backend.Service.Name, d.ID())
				}
			}
		}
	}
	for _, r := range s.httpRoutes() {
		for _, rule := range r.route.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if !isServiceRef(b.BackendObjectReference) {
					continue
				}
				ns := r.doc.Namespace
				if b.Namespace != nil {
					ns = string(*b.Namespace)
				}
				add(ns, string(b.Name), r.doc.ID())
			}
		}
	}
	return out
}

func checkAffinityBehindProxy(s *set) []Finding {
	var fs []Finding
	proxies := s.proxyClients()
	for _, sv := range allServices(s) {
		if !clientIPAffinity(sv.svc) || isHeadless(sv.svc) {
			continue
		}
		who := proxies[nsOrDefault(sv.d.Namespace)+"/"+sv.d.Name]
		if len(who) == 0 {
			continue
		}
		verb := "sends"
		if len(who) > 1 {
			verb = "send"
		}
		fs = append(fs, emit(sv.d, ruleAffinityBehindProxy, "spec.sessionAffinity",
			"ClientIP affinity on a Service that %s %s to: its clients are the proxy's few pods, so each proxy pod's whole share of the traffic sticks to one backend pod for %ds (or the proxy picks endpoints itself and the affinity does nothing)",
			strings.Join(who, " and "), verb, affinityTimeout(sv.svc))...)
	}
	return fs
}

func checkAffinityLongLived(s *set) []Finding {
	var fs []Finding
	g := s.grpcPorts()
	for _, sv := range allServices(s) {
		if !clientIPAffinity(sv.svc) || isHeadless(sv.svc) {
			continue
		}
	ports:
		for i, p := range sv.svc.Spec.Ports {
			for _, w := range s.selected(sv) {
				_, n, ok := reach(w, p)
				if !ok || !g[w][n] {
					continue
				}
				fs = append(fs, emit(sv.d, ruleAffinityLongLived, "spec.ports["+itoa(i)+"]",
					"port %d reaches gRPC port %d of %s, whose clients hold long-lived connections: ClientIP affinity adds nothing while a connection lasts and sends every reconnect (after a max connection age, a scale-up or a rollout) back to the same pod for %ds, so connections never spread to new pods",
					p.Port, n, w.doc.ID(), affinityTimeout(sv.svc))...)
				break ports
			}
		}
	}
	return fs
}

func checkAffinityHeadless(s *set) []Finding {
	var fs []Finding
	for _, sv := range allServices(s) {
		if !clientIPAffinity(sv.svc) || !isHeadless(sv.svc) {
			continue
		}
		fs = append(fs, emit(sv.d, ruleAffinityHeadless, "spec.sessionAffinity",
			"ClientIP affinity on a headless Service does nothing: kube-proxy programs no rules for it, and clients connect to whichever pod address DNS gives them")...)
	}
	return fs
}

// trafficDistribution returns the Service's preference and whether it
// prefers the same zone (PreferSameZone or PreferClose) or node.
func trafficDistribution(svc *corev1.Service) (value string, zone, node bool) {
	if svc.Spec.TrafficDistribution == nil {
		return "", false, false
	}
	v := *svc.Spec.TrafficDistribution
	switch v {
	case corev1.ServiceTrafficDistributionPreferSameZone, corev1.ServiceTrafficDistributionPreferClose:
		return v, true, false
	case corev1.ServiceTrafficDistributionPreferSameNode:
		return v, false, true
	}
	return v, false, false // SH016 reports a value the API refuses
}

// pinnedTo returns the single value of a node label that every pod of the
// template must run on (nodeSelector, or required node affinity whose
// every term asks for one value), or "".
func pinnedTo(spec *corev1.PodSpec, key string) string {
	if key == labelHostname && spec.NodeName != "" {
		return spec.NodeName
	}
	if v := spec.NodeSelector[key]; v != "" {
		return v
	}
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	value := ""
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		found := ""
		for _, e := range term.MatchExpressions {
			if e.Key == key && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				found = e.Values[0]
			}
		}
		if found == "" || (value != "" && found != value) {
			return "" // a term that allows another place
		}
		value = found
	}
	return value
}

func checkTrafficDistributionNoEffect(s *set) []Finding {
	var fs []Finding
	for _, sv := range allServices(s) {
		value, zone, node := trafficDistribution(sv.svc)
		if !zone && !node {
			continue
		}
		field := "spec.trafficDistribution"
		itp := sv.svc.Spec.InternalTrafficPolicy
		switch {
		case isHeadless(sv.svc):
			fs = append(fs, emit(sv.d, ruleTrafficNoEffect, field,
				"trafficDistribution %s on a headless Service does nothing: no proxy balances it, clients connect to whichever pod address DNS gives them", value)...)
			continue
		case clusterIPOnly(sv.svc) && itp != nil && *itp == corev1.ServiceInternalTrafficPolicyLocal:
			fs = append(fs, emit(sv.d, ruleTrafficNoEffect, field,
				"trafficDistribution %s does nothing under internalTrafficPolicy Local: traffic from inside the cluster already stays on the client's node", value)...)
			continue
		}
		key, what := labelZone, "zone"
		if node {
			key, what = labelHostname, "node"
		}
		places := map[string]bool{}
		ws := s.selected(sv)
		for _, w := range ws {
			places[pinnedTo(&w.template.Spec, key)] = true
		}
		if len(ws) > 0 && len(places) == 1 && !places[""] {
			var place string
			for p := range places {
				place = p
			}
			fs = append(fs, emit(sv.d, ruleTrafficNoEffect, field,
				"trafficDistribution %s does nothing: every pod it selects runs in %s %q, so clients elsewhere reach them across %ss anyway and clients there had them close already", value, what, place, what)...)
		}
	}
	return fs
}

func checkTrafficDistributionHotSpots(s *set) []Finding {
	var fs []Finding
	for _, sv := range allServices(s) {
		value, zone, node := trafficDistribution(sv.svc)
		if (!zone && !node) || isHeadless(sv.svc) {
			continue
		}
		if itp := sv.svc.Spec.InternalTrafficPolicy; clusterIPOnly(sv.svc) && itp != nil && *itp == corev1.ServiceInternalTrafficPolicyLocal {
			continue // SH033
		}
		var few []string
		for _, w := range s.selected(sv) {
			switch {
			case node && w.doc.Kind != "DaemonSet":
				few = append(few, fmt.Sprintf("%s (not one pod per node)", w.doc.ID()))
			case zone && w.doc.Kind != "DaemonSet" && s.minReplicas(w) < zonesInARegion && pinnedTo(&w.template.Spec, labelZone) == "":
				n := s.minReplicas(w)
				few = append(few, fmt.Sprintf("%s (%d %s)", w.doc.ID(), n, plural(n, "replica", "replicas")))
			}
		}
		if len(few) == 0 {
			continue
		}
		sort.Strings(few)
		where, share := "zone", fmt.Sprintf("with fewer than %d pods some zone holds one pod, which takes all of its zone's clients", zonesInARegion)
		if node {
			where, share = "node", "a pod takes all the calls of the clients on its node, and pods on busy nodes overload while the rest idle"
		}
		fs = append(fs, emit(sv.d, ruleTrafficHotSpots, "spec.trafficDistribution",
			"trafficDistribution %s keeps traffic in the client's %s, but %s: %s; an autoscaler sees only the average and does not relieve it",
			value, where, share, strings.Join(few, ", "))...)
	}
	return fs
}

// clusterIPOnly reports whether only in-cluster clients reach the
// Service, to which internalTrafficPolicy applies.
func clusterIPOnly(svc *corev1.Service) bool {
	return svc.Spec.Type == "" || svc.Spec.Type == corev1.ServiceTypeClusterIP
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
