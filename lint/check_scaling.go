package lint

import (
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func itoa(i int) string { return strconv.Itoa(i) }

func emit(d *Document, r Rule, field, format string, args ...any) []Finding {
	if d.ignores(r.ID) {
		return nil
	}
	return []Finding{d.finding(r, field, format, args...)}
}

func checkUtilizationRequests(s *set) []Finding {
	var fs []Finding
	for _, a := range s.autoscalers {
		w := s.target(a)
		if w == nil {
			continue
		}
		for _, m := range a.utilization {
			for _, c := range w.template.Spec.Containers {
				if m.container != "" && c.Name != m.container {
					continue
				}
				if _, ok := c.Resources.Requests[m.resource]; !ok {
					fs = append(fs, emit(a.doc, ruleHPANoRequest, m.field,
						"scales %s on %s utilization but container %q has no %s request",
						w.doc.ID(), m.resource, c.Name, m.resource)...)
				}
			}
		}
	}
	return fs
}

func checkAutoscalerTargets(s *set) []Finding {
	var fs []Finding
	for _, a := range s.autoscalers {
		switch {
		case a.targetName == "":
			fs = append(fs, emit(a.doc, ruleTargetMissing, "spec.scaleTargetRef",
				"spec.scaleTargetRef names no workload")...)
		case s.target(a) == nil:
			fs = append(fs, emit(a.doc, ruleTargetMissing, "spec.scaleTargetRef",
				"scaleTargetRef %s/%s matches no Deployment, StatefulSet or ReplicaSet in this input", a.targetKind, a.targetName)...)
		}
	}
	return fs
}

func checkAutoscalerCount(s *set) []Finding {
	var fs []Finding
	for _, w := range s.workloads {
		as := s.owners(w)
		if len(as) < 2 {
			continue
		}
		names := make([]string, len(as))
		for i, a := range as {
			names[i] = a.doc.ID()
		}
		fs = append(fs, emit(w.doc, ruleTwoAutoscalers, "", "scaled by %d autoscalers: %s", len(as), strings.Join(names, ", "))...)
	}
	return fs
}

func checkOwnedReplicas(s *set) []Finding {
	var fs []Finding
	for _, w := range s.workloads {
		if w.replicas == nil {
			continue
		}
		if as := s.owners(w); len(as) > 0 {
			fs = append(fs, emit(w.doc, ruleReplicasOwned, "spec.replicas",
				"spec.replicas is %d but %s owns the replica count", *w.replicas, as[0].doc.ID())...)
		}
	}
	return fs
}

func services(s *set) []struct {
	d   *Document
	svc *corev1.Service
} {
	var out []struct {
		d   *Document
		svc *corev1.Service
	}
	for _, d := range s.docs {
		if svc, ok := d.Object.(*corev1.Service); ok && len(svc.Spec.Selector) > 0 && svc.Spec.Type != corev1.ServiceTypeExternalName {
			out = append(out, struct {
				d   *Document
				svc *corev1.Service
			}{d, svc})
		}
	}
	return out
}

func checkServiceSelectors(s *set) []Finding {
	var fs []Finding
	for _, sv := range services(s) {
		if len(s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector))) == 0 {
			fs = append(fs, emit(sv.d, ruleSelectorEmpty, "spec.selector",
				"selector %s matches no pod template in this input", labels.SelectorFromSet(sv.svc.Spec.Selector))...)
		}
	}
	return fs
}

func checkServiceTargetPorts(s *set) []Finding {
	var fs []Finding
	for _, sv := range services(s) {
		ws := s.selecting(sv.d.Namespace, labels.SelectorFromSet(sv.svc.Spec.Selector))
		if len(ws) == 0 {
			continue // reported by SH010
		}
		for i, p := range sv.svc.Spec.Ports {
			name := p.TargetPort.StrVal
			if p.TargetPort.Type != intstr.String || name == "" {
				continue
			}
			field := "spec.ports[" + itoa(i) + "].targetPort"
			var lacking []*workload
			for _, w := range ws {
				if !declaresPort(w, name) {
					lacking = append(lacking, w)
				}
			}
			if len(lacking) == len(ws) {
				fs = append(fs, emit(sv.d, ruleTargetPort, field,
					"targetPort %q is not the name of a port of any selected container", name)...)
				continue
			}
			// Some selected pods serve the port: the others get no
			// traffic on it, which is a mistake just the same.
			for _, w := range lacking {
				fs = append(fs, emit(sv.d, ruleTargetPort, field,
					"targetPort %q is not the name of a port of %s, whose pods the Service selects", name, w.doc.ID())...)
			}
		}
	}
	return fs
}

// declaresPort reports whether w's pods serve a port of that name, as the
// endpoints controller finds it: on an app container or a sidecar (an init
// container that keeps running).
func declaresPort(w *workload, name string) bool {
	spec := &w.template.Spec
	cs := slices.Clone(spec.Containers)
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// scaled resolves an int-or-percent against total the way the controllers
// do; a value that does not parse counts as absent.
func scaled(v *intstr.IntOrString, total int, roundUp bool) (int, bool) {
	if v == nil {
		return 0, false
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, total, roundUp)
	if err != nil {
		return 0, false
	}
	return n, true
}

func checkPDBBlocks(s *set) []Finding {
	var fs []Finding
	for _, d := range s.docs {
		pdb, ok := d.Object.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		for _, w := range pdbTargets(s, d, pdb) {
			r := s.minReplicas(w)
			if n, ok := scaled(pdb.Spec.MaxUnavailable, r, true); ok && n == 0 {
				fs = append(fs, emit(d, rulePDBBlocks, "spec.maxUnavailable",
					"maxUnavailable %s allows no eviction of %s's pods", pdb.Spec.MaxUnavailable, w.doc.ID())...)
			}
			if n, ok := scaled(pdb.Spec.MinAvailable, r, true); ok && n >= r {
				fs = append(fs, emit(d, rulePDBBlocks, "spec.minAvailable",
					"minAvailable %s leaves none of %s's %d replica(s) evictable", pdb.Spec.MinAvailable, w.doc.ID(), r)...)
			}
		}
	}
	return fs
}

func pdbTargets(s *set, d *Document, pdb *policyv1.PodDisruptionBudget) []*workload {
	if pdb.Spec.Selector == nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil
	}
	var ws []*workload
	for _, w := range s.selecting(d.Namespace, sel) {
		if w.scalable {
			ws = append(ws, w)
		}
	}
	return ws
}

func checkMaxUnavailable(s *set) []Finding {
	var fs []Finding
	for _, d := range s.docs {
		pdb, ok := d.Object.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		for _, w := range pdbTargets(s, d, pdb) {
			r := s.minReplicas(w)
			if n, ok := scaled(pdb.Spec.MaxUnavailable, r, true); ok && n >= r {
				fs = append(fs, emit(d, ruleAllUnavailable, "spec.maxUnavailable",
					"maxUnavailable %s lets a drain evict all %d replica(s) of %s", pdb.Spec.MaxUnavailable, r, w.doc.ID())...)
			}
			if n, ok := scaled(pdb.Spec.MinAvailable, r, true); ok && n == 0 {
				fs = append(fs, emit(d, ruleAllUnavailable, "spec.minAvailable",
					"minAvailable %s lets a drain evict every pod of %s", pdb.Spec.MinAvailable, w.doc.ID())...)
			}
		}
	}
	for _, w := range s.workloads {
		if w.deploy == nil {
			continue
		}
		r := s.minReplicas(w)
		st := w.deploy.Spec.Strategy
		switch {
		case st.Type == appsv1.RecreateDeploymentStrategyType && r >= 2:
			fs = append(fs, emit(w.doc, ruleAllUnavailable, "spec.strategy.type",
				"strategy Recreate stops all %d replicas before starting new ones", r)...)
		case st.RollingUpdate != nil:
			if n, ok := scaled(st.RollingUpdate.MaxUnavailable, r, false); ok && n >= r {
				fs = append(fs, emit(w.doc, ruleAllUnavailable, "spec.strategy.rollingUpdate.maxUnavailable",
					"rollingUpdate.maxUnavailable %s can stop all %d replica(s) at once", st.RollingUpdate.MaxUnavailable, r)...)
			}
		}
	}
	return fs
}
