package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/deploy"
)

// thumbnailerImage is the Deployment's image in the deploy kit.
const thumbnailerImage = "ko://github.com/shoal-dev/shoal/cmd/thumbnailer"

// variant is one autoscaler under test: the kit overlay its HPA comes from
// and, for the request-rate variant, the metric the bench sets itself.
type variant struct {
	Name string
	// Overlay is the deploy kit overlay whose thumbnailer objects run.
	Overlay string
	// RPS, when above zero, replaces the HPA's metrics with the Pods
	// metric http_requests_per_second at this AverageValue: the kit scales
	// only the gallery on the request rate, with a target for the gallery.
	RPS float64
}

// variants are the autoscalers compared, by name.
func variants(rpsTarget float64) map[string]variant {
	return map[string]variant{
		"cpu":      {Name: "cpu", Overlay: "overlays/local"},                 // the kit's: CPU at 70% of the request
		"rps":      {Name: "rps", Overlay: "overlays/local", RPS: rpsTarget}, // the kit's adapter rule, rate over 1m
		"headroom": {Name: "headroom", Overlay: "overlays/headroom"},         // shed_utilization_ratio at 0.4
	}
}

// manifests builds v's overlay of the embedded deploy kit with kustomize
// and keeps the thumbnailer's objects, changed only where a run needs it:
// the HPA's replica bounds (minReplicas, maxReplicas), quieter logs, and
// the result cache off (every request carries the same image; a cached
// answer would cost no CPU).
func manifests(v variant, minRep, maxRep int32) ([]byte, *autoscalingv2.HorizontalPodAutoscaler, error) {
	mem := filesys.MakeFsInMemory()
	err := fs.WalkDir(deploy.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := deploy.FS.ReadFile(p)
		if err != nil {
			return err
		}
		if err := mem.MkdirAll(path.Dir(p)); err != nil {
			return err
		}
		return mem.WriteFile(p, data)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("manifests: deploy kit: %w", err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, v.Overlay)
	if err != nil {
		return nil, nil, fmt.Errorf("manifests: kustomize %s: %w", v.Overlay, err)
	}
	var out bytes.Buffer
	var hpa *autoscalingv2.HorizontalPodAutoscaler
	for _, r := range rm.Resources() {
		if !strings.HasPrefix(r.GetName(), "thumbnailer") || r.GetKind() == "PodDisruptionBudget" {
			// The gallery, Redis, the Gateway; and the budget, which
			// shoal up ignores and lint calls a blocker at one replica.
			continue
		}
		data, err := r.AsYAML()
		if err != nil {
			return nil, nil, fmt.Errorf("manifests: %s/%s: %w", r.GetKind(), r.GetName(), err)
		}
		switch r.GetKind() {
		case "HorizontalPodAutoscaler":
			var h autoscalingv2.HorizontalPodAutoscaler
			if err := yaml.UnmarshalStrict(data, &h); err != nil {
				return nil, nil, fmt.Errorf("manifests: HPA: %w", err)
			}
			h.Spec.MinReplicas, h.Spec.MaxReplicas = &minRep, maxRep
			if v.RPS > 0 {
				q := resource.MustParse(fmt.Sprintf("%g", v.RPS))
				h.Spec.Metrics = []autoscalingv2.MetricSpec{{
					Type: autoscalingv2.PodsMetricSourceType,
					Pods: &autoscalingv2.PodsMetricSource{
						Metric: autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"},
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &q},
					},
				}}
			}
			hpa = &h
			if data, err = yaml.Marshal(&h); err != nil {
				return nil, nil, err
			}
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict(data, &d); err != nil {
				return nil, nil, fmt.Errorf("manifests: Deployment: %w", err)
			}
			c := &d.Spec.Template.Spec.Containers[0]
			setEnv(c, "LOG_LEVEL", "warn")
			setEnv(c, "CACHE_BYTES", "-1")
			if data, err = yaml.Marshal(&d); err != nil {
				return nil, nil, err
			}
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	if hpa == nil {
		return nil, nil, fmt.Errorf("manifests: %s has no thumbnailer HPA", v.Overlay)
	}
	return out.Bytes(), hpa, nil
}

func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

// metricOf describes the HPA's first metric as kubectl's TARGETS would.
func metricOf(h *autoscalingv2.HorizontalPodAutoscaler) string {
	if len(h.Spec.Metrics) == 0 {
		return "-"
	}
	m := h.Spec.Metrics[0]
	switch {
	case m.Resource != nil && m.Resource.Target.AverageUtilization != nil:
		return fmt.Sprintf("%s %d%%", m.Resource.Name, *m.Resource.Target.AverageUtilization)
	case m.Pods != nil && m.Pods.Target.AverageValue != nil:
		return fmt.Sprintf("%s %s", m.Pods.Metric.Name, m.Pods.Target.AverageValue)
	}
	return string(m.Type)
}
