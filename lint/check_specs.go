package lint

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/keda"
)

// checkSpecs reports the values of workloads and Services that the API
// server refuses, or that leave the controller unable to create pods. It
// checks only what strict decoding lets through and the other rules rely
// on, not the whole of the API's validation.
func checkSpecs(s *set) []Finding {
	var fs []Finding
	for _, w := range s.workloads {
		bad := func(field, format string, args ...any) {
			fs = append(fs, emit(w.doc, ruleInvalidSpec, field, format, args...)...)
		}
		cs := w.template.Spec.Containers
		if len(cs) == 0 {
			bad(w.tplPath+".spec.containers", "%s.spec.containers is empty", w.tplPath)
		}
		for i, c := range cs {
			if c.Image == "" {
				bad(fmt.Sprintf("%s.spec.containers[%d]", w.tplPath, i), "container %q has no image", c.Name)
			}
		}
		switch sel, err := metav1.LabelSelectorAsSelector(w.selector); {
		case w.selector == nil:
			bad("spec.selector", "spec.selector is missing")
		case err != nil:
			bad("spec.selector", "spec.selector: %v", err)
		case !sel.Matches(labels.Set(w.template.Labels)):
			bad("spec.selector", "spec.selector does not match %s.metadata.labels", w.tplPath)
		}
		if w.replicas != nil && *w.replicas < 0 {
			bad("spec.replicas", "spec.replicas %d is negative", *w.replicas)
		}
		if w.deploy != nil {
			fs = append(fs, checkStrategy(w.doc, w.deploy.Spec.Strategy)...)
		}
	}
	for _, d := range s.docs {
		if so, ok := d.Object.(*keda.ScaledObject); ok {
			fs = append(fs, checkPrometheusThresholds(d, so)...)
		}
		if hpa, ok := d.Object.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			var fe *autoscale.FieldError
			if err := autoscale.ValidateMetrics(&hpa.Spec); errors.As(err, &fe) {
				field := strings.TrimPrefix(fe.Field, "hpa.")
				fs = append(fs, emit(d, ruleInvalidSpec, field, "%s: %s", field, fe.Problem)...)
			}
		}
		svc, ok := d.Object.(*corev1.Service)
		if !ok {
			continue
		}
		for i, p := range svc.Spec.Ports {
			if p.Port < 1 || p.Port > 65535 {
				fs = append(fs, emit(d, ruleInvalidSpec, fmt.Sprintf("spec.ports[%d].port", i),
					"spec.ports[%d].port %d is out of range 1-65535", i, p.Port)...)
			}
			// 0 is the default: the port itself.
			if t := p.TargetPort; t.Type == intstr.Int && (t.IntVal < 0 || t.IntVal > 65535) {
				fs = append(fs, emit(d, ruleInvalidSpec, fmt.Sprintf("spec.ports[%d].targetPort", i),
					"spec.ports[%d].targetPort %d is out of range 1-65535", i, t.IntVal)...)
			}
		}
	}
	return fs
}

func checkStrategy(d *Document, st appsv1.DeploymentStrategy) []Finding {
	switch st.Type {
	case "", appsv1.RollingUpdateDeploymentStrategyType:
		if st.RollingUpdate == nil {
			return nil
		}
		var fs []Finding
		for _, f := range []struct {
			name string
			v    *intstr.IntOrString
		}{{"maxSurge", st.RollingUpdate.MaxSurge}, {"maxUnavailable", st.RollingUpdate.MaxUnavailable}} {
			if f.v == nil {
				continue
			}
			// Scaled against 100 replicas, a percentage is its own number.
			if n, err := intstr.GetScaledValueFromIntOrPercent(f.v, 100, true); err != nil || n < 0 {
				fs = append(fs, emit(d, ruleInvalidSpec, "spec.strategy.rollingUpdate."+f.name,
					"spec.strategy.rollingUpdate.%s %q is neither a non-negative number nor a percentage", f.name, f.v.String())...)
			}
		}
		return fs
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			return emit(d, ruleInvalidSpec, "spec.strategy.rollingUpdate",
				"spec.strategy.rollingUpdate may not be set when spec.strategy.type is Recreate")
		}
		return nil
	}
	return emit(d, ruleInvalidSpec, "spec.strategy.type",
		"spec.strategy.type %q is neither RollingUpdate nor Recreate", st.Type)
}

// checkDuplicates reports every object after the first of its API group,
// kind, namespace and name.
func checkDuplicates(s *set) []Finding {
	var fs []Finding
	seen := map[string]bool{}
	for _, d := range s.docs {
		if d.Name == "" {
			continue
		}
		group, _, _ := strings.Cut(d.APIVersion, "/")
		if !strings.Contains(d.APIVersion, "/") {
			group = "" // the core group: "v1"
		}
		key := group + "/" + d.Kind + "/" + d.Namespace + "/" + d.Name
		if seen[key] {
			fs = append(fs, emit(d, ruleDuplicate, "metadata.name",
				"declared more than once in this input; apply keeps only the last")...)
		}
		seen[key] = true
	}
	return fs
}

// checkIngressBackends reports Ingress backends that name a Service the
// set does not declare in the Ingress's namespace. Resource backends are
// left alone: they name objects of other kinds.
func checkIngressBackends(s *set) []Finding {
	var fs []Finding
	for _, d := range s.docs {
		ing, ok := d.Object.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		missing := func(b *networkingv1.IngressBackend) bool {
			return b != nil && b.Service != nil && !s.hasService(d.Namespace, b.Service.Name)
		}
		if b := ing.Spec.DefaultBackend; missing(b) {
			fs = append(fs, emit(d, ruleIngressBackend, "spec.defaultBackend.service.name",
				"spec.defaultBackend sends to Service %q, which this input does not declare in the Ingress's namespace", b.Service.Name)...)
		}
		for i, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for j, p := range r.HTTP.Paths {
				if missing(&p.Backend) {
					fs = append(fs, emit(d, ruleIngressBackend, fmt.Sprintf("spec.rules[%d].http.paths[%d].backend.service.name", i, j),
						"path %q sends to Service %q, which this input does not declare in the Ingress's namespace", p.Path, p.Backend.Service.Name)...)
				}
			}
		}
	}
	return fs
}

// hasService reports whether the set declares the Service ns/name.
func (s *set) hasService(ns, name string) bool {
	for _, d := range s.docs {
		if _, ok := d.Object.(*corev1.Service); ok && d.Namespace == ns && d.Name == name {
			return true
		}
	}
	return false
}

// checkPrometheusThresholds reports a prometheus trigger whose threshold
// is not a number greater than 0, or whose activationThreshold is not a
// number. KEDA reads them with strconv.ParseFloat, which takes "NaN" and
// "Inf": the HPA it makes then scales on a meaningless target.
func checkPrometheusThresholds(d *Document, so *keda.ScaledObject) []Finding {
	var fs []Finding
	for i, t := range so.Spec.Triggers {
		if t.Type != "prometheus" {
			continue
		}
		for _, key := range []string{"threshold", "activationThreshold"} {
			raw, ok := t.Metadata[key]
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
			bad := err != nil || math.IsNaN(v) || math.IsInf(v, 0)
			if key == "threshold" {
				bad = bad || v <= 0
			}
			if bad {
				field := fmt.Sprintf("spec.triggers[%d].metadata.%s", i, key)
				want := "a finite number"
				if key == "threshold" {
					want = "a number greater than 0"
				}
				fs = append(fs, emit(d, ruleInvalidSpec, field, "%s: %q is not %s", field, raw, want)...)
			}
		}
	}
	return fs
}
