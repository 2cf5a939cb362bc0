package lint

import (
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// isolatesIngress reports whether np restricts the ingress of the pods it
// selects: policyTypes names Ingress, or is empty, which the API server
// defaults to Ingress.
func isolatesIngress(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return true
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

func checkNetworkPolicies(s *set) []Finding {
	var policies []*Document
	for _, d := range s.docs {
		if np, ok := d.Object.(*networkingv1.NetworkPolicy); ok && isolatesIngress(np) {
			policies = append(policies, d)
		}
	}
	var fs []Finding
	for _, w := range s.workloads {
		if w.template.Spec.HostNetwork {
			continue // NetworkPolicy does not apply to pods on the node's network
		}
		selected := false
		for _, d := range policies {
			np := d.Object.(*networkingv1.NetworkPolicy)
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err == nil && d.Namespace == w.doc.Namespace && sel.Matches(labels.Set(w.template.Labels)) {
				selected = true
				break
			}
		}
		if !selected {
			fs = append(fs, emit(w.doc, ruleNoNetworkPolicy, w.tplPath+".metadata.labels",
				"no NetworkPolicy with Ingress selects its pods, so any pod in the cluster can reach every port they serve")...)
		}
	}
	return fs
}

// isAdminPortName reports whether a container port's name marks it as a
// port for operators and their tools rather than for the application's
// clients: Shoal's "admin" (probes, /metrics, pprof) and the usual names
// of metrics and debug ports.
func isAdminPortName(name string) bool {
	switch name {
	case "admin", "metrics", "debug", "pprof":
		return true
	}
	return strings.HasSuffix(name, "-admin") || strings.HasSuffix(name, "-metrics")
}

// containerPortName returns the name of the container port a Service port
// reaches on w's pods: the targetPort's name, or the name of the port whose
// number it (or, without a targetPort, the Service port) is.
func containerPortName(w *workload, p corev1.ServicePort) string {
	if p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "" {
		return p.TargetPort.StrVal
	}
	num := p.TargetPort.IntVal
	if num == 0 {
		num = p.Port
	}
	for _, c := range w.template.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.ContainerPort == num {
				return cp.Name
			}
		}
	}
	return ""
}

func checkAdminPortsPublished(s *set) []Finding {
	var fs []Finding
	for _, sv := range services(s) {
		ws := s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector))
		if len(ws) == 0 {
			continue // reported by SH010
		}
		admin := make([]string, len(sv.svc.Spec.Ports)) // container port name of each admin port, "" for others
		adminCount := 0
		for i, p := range sv.svc.Spec.Ports {
			for _, w := range ws {
				if name := containerPortName(w, p); isAdminPortName(name) {
					admin[i] = name
					adminCount++
					break
				}
			}
		}
		if adminCount == 0 {
			continue
		}
		// A ClusterIP Service of admin ports only is a metrics Service, as
		// prometheus-operator's ServiceMonitor needs; who reaches it is the
		// NetworkPolicy's business. Beside application ports, or on a node
		// or load-balancer port, an admin port is published to clients.
		t := sv.svc.Spec.Type
		internal := t == "" || t == corev1.ServiceTypeClusterIP
		if internal && adminCount == len(sv.svc.Spec.Ports) {
			continue
		}
		for i, name := range admin {
			if name == "" {
				continue
			}
			where := "beside application ports"
			if !internal {
				where = "on a Service of type " + string(t)
			}
			fs = append(fs, emit(sv.d, ruleAdminPortPublished, "spec.ports["+itoa(i)+"]",
				"port %d reaches the pods' %q port %s", sv.svc.Spec.Ports[i].Port, name, where)...)
		}
	}
	return fs
}

// pprofEnv is the variable (see the reference services' Options.Pprof) that turns on the Shoal services' profiling
// endpoints (/debug/pprof/ on the admin port).
const pprofEnv = "PPROF"

// productionNames are the path elements and namespaces that mark a
// production deployment.
var productionNames = map[string]bool{"production": true, "prod": true, "prd": true}

// inProduction reports whether d is meant for production: its namespace,
// or an element of the path it was read or built from, is named
// production, prod or prd.
func inProduction(d *Document) bool {
	if productionNames[strings.ToLower(d.Namespace)] {
		return true
	}
	for _, el := range strings.Split(filepath.ToSlash(d.Path), "/") {
		if productionNames[strings.ToLower(el)] {
			return true
		}
	}
	return false
}

func checkPprofInProduction(s *set) []Finding {
	var fs []Finding
	for _, c := range s.containers(false) {
		if !inProduction(c.w.doc) {
			continue
		}
		for i, e := range c.c.Env {
			if e.Name != pprofEnv || e.ValueFrom != nil {
				continue
			}
			if on, err := strconv.ParseBool(e.Value); err == nil && on {
				fs = append(fs, c.finding(rulePprofInProduction, "env["+itoa(i)+"]",
					"%s=%s serves CPU, heap and goroutine profiles on the admin port", pprofEnv, e.Value)...)
			}
		}
	}
	return fs
}
