package lint

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// maxConnAgeEnv is the service kit's variable (service.Options.MaxConnAge)
// for the age at which a server asks its clients to reconnect: a duration,
// 0 for the kit's default (1m), negative for never.
const maxConnAgeEnv = "MAX_CONN_AGE"

// grpcAppProtocols are the Service port appProtocol values that say the
// port speaks gRPC or another HTTP/2 protocol over long-lived connections.
var grpcAppProtocols = map[string]bool{"grpc": true, "h2c": true, "kubernetes.io/h2c": true}

// isGRPCPortName reports whether a port's name marks it as gRPC, as Istio
// and most charts name them: "grpc", "grpc-web", "grpc-api".
func isGRPCPortName(name string) bool { return strings.HasPrefix(strings.ToLower(name), "grpc") }

// isGRPCServicePort reports whether a Service port declares gRPC itself,
// by its appProtocol or its name.
func isGRPCServicePort(p corev1.ServicePort) bool {
	if p.AppProtocol != nil && grpcAppProtocols[strings.ToLower(*p.AppProtocol)] {
		return true
	}
	return isGRPCPortName(p.Name)
}

// grpcPorts indexes, per workload, the container port numbers that serve
// gRPC as far as the set tells: a port named grpc*, a port a grpc probe
// checks, or a port a Service port with a gRPC appProtocol or name reaches.
type grpcPorts map[*workload]map[int32]bool

func (s *set) grpcPorts() grpcPorts {
	if s.grpc == nil {
		s.grpc = s.findGRPCPorts()
	}
	return s.grpc
}

func (s *set) findGRPCPorts() grpcPorts {
	g := grpcPorts{}
	mark := func(w *workload, n int32) {
		if g[w] == nil {
			g[w] = map[int32]bool{}
		}
		g[w][n] = true
	}
	for _, w := range s.workloads {
		for _, c := range w.template.Spec.Containers {
			for _, p := range c.Ports {
				if isGRPCPortName(p.Name) {
					mark(w, p.ContainerPort)
				}
			}
			for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				if p != nil && p.GRPC != nil {
					mark(w, p.GRPC.Port)
				}
			}
		}
	}
	for _, sv := range services(s) {
		for _, w := range s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector)) {
			for _, p := range sv.svc.Spec.Ports {
				if _, n, ok := reach(w, p); ok && isGRPCServicePort(p) {
					mark(w, n)
				}
			}
		}
	}
	return g
}

// reach resolves a Service port to the container of w that declares the
// port it reaches and that port's number. A numeric targetPort no
// container declares still reaches its number, with no container.
func reach(w *workload, p corev1.ServicePort) (*corev1.Container, int32, bool) {
	if p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "" {
		for i := range w.template.Spec.Containers {
			c := &w.template.Spec.Containers[i]
			for _, cp := range c.Ports {
				if cp.Name == p.TargetPort.StrVal {
					return c, cp.ContainerPort, true
				}
			}
		}
		return nil, 0, false // SH011's finding
	}
	n := p.TargetPort.IntVal
	if n == 0 {
		n = p.Port
	}
	for i := range w.template.Spec.Containers {
		c := &w.template.Spec.Containers[i]
		for _, cp := range c.Ports {
			if cp.ContainerPort == n {
				return c, n, true
			}
		}
	}
	return nil, n, true
}

// maxConnAge tells whether container c of w declares that its server
// closes connections at some age, so that clients behind a per-connection
// balancer re-resolve and spread onto new pods. It returns why not
// otherwise. See docs/lint.md (SH022) for the signals and their order.
func maxConnAge(w *workload, c *corev1.Container) (bool, string) {
	for _, e := range c.Env {
		if e.Name != maxConnAgeEnv {
			continue
		}
		if e.ValueFrom != nil {
			return true, "" // from a ConfigMap or Secret: not read here
		}
		d, err := time.ParseDuration(e.Value)
		switch {
		case err != nil:
			return false, fmt.Sprintf("%s %q is not a duration", maxConnAgeEnv, e.Value)
		case d < 0:
			return false, fmt.Sprintf("%s=%s turns the server's max connection age off", maxConnAgeEnv, e.Value)
		}
		return true, "" // 0 is the kit's default, 1m
	}
	ann, ok := w.template.Annotations[AnnotationMaxConnAge]
	if !ok {
		ann, ok = w.doc.annotations[AnnotationMaxConnAge]
	}
	if ok {
		if d, err := time.ParseDuration(strings.TrimSpace(ann)); err == nil && d > 0 {
			return true, ""
		}
		return false, fmt.Sprintf("annotation %s %q is not a positive duration", AnnotationMaxConnAge, ann)
	}
	if len(c.EnvFrom) > 0 {
		return true, "" // MAX_CONN_AGE may come from envFrom, not read here
	}
	return false, fmt.Sprintf("it sets no %s and the pods have no %s annotation", maxConnAgeEnv, AnnotationMaxConnAge)
}

func isHeadless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

func checkGRPCThroughClusterIP(s *set) []Finding {
	var fs []Finding
	g := s.grpcPorts()
	for _, sv := range services(s) {
		if isHeadless(sv.svc) {
			continue
		}
		for _, w := range s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector)) {
			if w.doc.ignores(ruleGRPCClusterIP.ID) {
				continue
			}
			for i, p := range sv.svc.Spec.Ports {
				c, n, ok := reach(w, p)
				if !ok || c == nil || !g[w][n] {
					continue
				}
				if declared, why := maxConnAge(w, c); !declared {
					fs = append(fs, emit(sv.d, ruleGRPCClusterIP, "spec.ports["+itoa(i)+"]",
						"port %d reaches gRPC port %d of %s through a per-connection balancer, and container %q declares no max connection age: %s",
						p.Port, n, w.doc.ID(), c.Name, why)...)
				}
			}
		}
	}
	return fs
}

func checkGRPCHeadlessNotReady(s *set) []Finding {
	var fs []Finding
	g := s.grpcPorts()
	for _, sv := range services(s) {
		if !isHeadless(sv.svc) || !sv.svc.Spec.PublishNotReadyAddresses {
			continue
		}
		for _, w := range s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector)) {
			port, found := int32(0), false
			for _, p := range sv.svc.Spec.Ports {
				if _, n, ok := reach(w, p); ok && g[w][n] {
					port, found = n, true
					break
				}
			}
			if len(sv.svc.Spec.Ports) == 0 {
				// DNS hands out the pods' addresses whatever the ports;
				// clients dial whichever port they know.
				for n := range g[w] {
					if !found || n < port {
						port, found = n, true
					}
				}
			}
			if found {
				fs = append(fs, emit(sv.d, ruleGRPCNotReady, "spec.publishNotReadyAddresses",
					"publishes the addresses of %s's pods before they are ready and while they drain, and gRPC clients resolving it dial port %d on them",
					w.doc.ID(), port)...)
			}
		}
	}
	return fs
}

func checkHTTPProbeOnGRPC(s *set) []Finding {
	var fs []Finding
	g := s.grpcPorts()
	for _, c := range s.containers(false) {
		declared := map[int32]bool{}
		grpcOnly := len(c.c.Ports) > 0
		for _, cp := range c.c.Ports {
			declared[cp.ContainerPort] = true
			grpcOnly = grpcOnly && g[c.w][cp.ContainerPort]
		}
		for _, p := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"startupProbe", c.c.StartupProbe}, {"readinessProbe", c.c.ReadinessProbe}, {"livenessProbe", c.c.LivenessProbe}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				continue
			}
			n, ok := probePort(c.c, p.probe.HTTPGet.Port)
			switch {
			case ok && g[c.w][n]:
				fs = append(fs, c.finding(ruleHTTPProbeOnGRPC, p.kind+".httpGet.port",
					"%s sends HTTP/1.1 GET %s to port %d, which serves gRPC", p.kind, p.probe.HTTPGet.Path, n)...)
			case grpcOnly && (!ok || !declared[n]):
				fs = append(fs, c.finding(ruleHTTPProbeOnGRPC, p.kind+".httpGet.port",
					"%s sends HTTP/1.1 GET %s to port %s, but every port the container declares serves gRPC", p.kind, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String())...)
			}
		}
	}
	return fs
}

// probePort resolves a probe's port, by number or by the name of one of
// c's ports.
func probePort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, p.IntVal > 0
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}
