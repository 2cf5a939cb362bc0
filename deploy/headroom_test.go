package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	kedaapi "github.com/shoal-dev/shoal/keda"
)

// TestHeadroomOverlays checks that the headroom overlays scale the
// thumbnailer on shed_utilization_ratio alone, with the target the
// adapter rule's series can meet, and leave the gallery as it was.
func TestHeadroomOverlays(t *testing.T) {
	hpaNamed := func(objs []any, name string) *autoscalingv2.HorizontalPodAutoscaler {
		return find(objs, func(h *autoscalingv2.HorizontalPodAutoscaler) string { return h.Name }, name)
	}
	local, headroom := objects(t, "overlays/local"), objects(t, "overlays/headroom")
	h := hpaNamed(headroom, "thumbnailer")
	if h == nil || len(h.Spec.Metrics) != 1 {
		t.Fatalf("headroom: thumbnailer HPA %+v, want one metric", h)
	}
	m := h.Spec.Metrics[0]
	if m.Type != autoscalingv2.PodsMetricSourceType || m.Pods.Metric.Name != "shed_utilization_ratio" ||
		m.Pods.Target.Type != autoscalingv2.AverageValueMetricType || m.Pods.Target.AverageValue.Cmp(resource.MustParse("0.4")) != 0 {
		t.Errorf("headroom: thumbnailer metric %+v, want Pods shed_utilization_ratio at AverageValue 0.4", m)
	}
	// Everything else (replicas, behaviour, the gallery) is local's.
	lh := hpaNamed(local, "thumbnailer")
	h.Spec.Metrics, lh.Spec.Metrics = nil, nil
	if !equalJSON(t, h.Spec, lh.Spec) || !equalJSON(t, hpaNamed(headroom, "gallery"), hpaNamed(local, "gallery")) {
		t.Error("headroom: differs from local beyond the thumbnailer HPA's metrics")
	}

	keda := objects(t, "overlays/keda-headroom")
	so := find(keda, func(s *kedaapi.ScaledObject) string { return s.Name }, "thumbnailer")
	if so == nil || len(so.Spec.Triggers) != 1 {
		t.Fatalf("keda-headroom: thumbnailer ScaledObject %+v, want one trigger", so)
	}
	tr := so.Spec.Triggers[0]
	if tr.Type != "prometheus" || !strings.Contains(tr.Metadata["query"], "shed_utilization_seconds_total{") || tr.Metadata["threshold"] != "0.4" {
		t.Errorf("keda-headroom: trigger %+v", tr)
	}
	checkPromQL(t, []string{tr.Metadata["query"]})
	if g := find(keda, func(s *kedaapi.ScaledObject) string { return s.Name }, "gallery"); g == nil ||
		!slices.ContainsFunc(g.Spec.Triggers, func(tr kedaapi.ScaleTrigger) bool { return tr.Name == "rps" }) {
		t.Errorf("keda-headroom: the gallery's ScaledObject should be keda's: %+v", g)
	}

	// The adapter serves the metric the HPA names, and the lab's adapter
	// serves it too.
	for _, file := range []string{filepath.Join("monitoring", "prometheus-adapter.yaml"), filepath.Join("..", "lab", "config", "prometheus-adapter.yaml")} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var cfg adapterConfig
		if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !slices.ContainsFunc(cfg.Rules, func(r adapterRule) bool {
			return strings.HasPrefix(r.SeriesQuery, "shed_utilization_seconds_total{") && strings.Trim(r.Name.As, `"`) == "shed_utilization_ratio"
		}) {
			t.Errorf("%s: no rule for shed_utilization_ratio", file)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}
