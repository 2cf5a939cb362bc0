package autoscale

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/keda"
)

// TestTuneRule checks the frontier and the recommendation rule on the
// sawtooth 2, 6, 2, 6, searching only the scale-down window: with none the
// spec drops to 2 in each trough (960 pod-seconds, 60s short), with 300s
// it keeps 6 (1200 pod-seconds, 30s short: the first rise only). The
// spec as given, without a behavior, lies between (1170, 45s short).
func TestTuneRule(t *testing.T) {
	space := TuneSpace{ScaleDownWindows: []time.Duration{0, 5 * time.Minute}}
	r := Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 6, 2, 6), InitialReplicas: 2}
	tests := []struct {
		name       string
		budget     time.Duration
		wantIndex  int
		wantWithin bool
	}{
		{"no budget: none meets it, the fewest short seconds", 0, 1, false},
		{"30s: only the 300s window", 30 * time.Second, 1, true},
		{"45s: keep the spec as given", 45 * time.Second, -1, true},
		{"60s: the cheaper no window", time.Minute, 0, true},
		{"an hour: the cheapest", time.Hour, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Tune(t.Context(), r, space, tc.budget, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Tried != 2 || len(got.Frontier) != 3 {
				t.Fatalf("tried %d, frontier %d; want 2 and 3", got.Tried, len(got.Frontier))
			}
			f := got.Frontier
			if f[0].Report.PodSeconds != 960 || f[0].Report.UnderSeconds != 60 || f[1].Index != -1 || f[1].Report.UnderSeconds != 45 ||
				f[2].Report.PodSeconds != 1200 || f[2].Report.UnderSeconds != 30 {
				t.Errorf("frontier %+v / %+v / %+v; want (960, 60s), the spec as given (1170, 45s), then (1200, 30s)", f[0].Report, f[1].Report, f[2].Report)
			}
			if got.Recommended.Index != tc.wantIndex || got.WithinBudget != tc.wantWithin {
				t.Errorf("recommended %d (within %v), want %d (within %v)", got.Recommended.Index, got.WithinBudget, tc.wantIndex, tc.wantWithin)
			}
			b := got.Recommended.HPA.Spec.Behavior
			switch {
			case tc.wantIndex < 0 && b != nil:
				t.Errorf("keeping the spec recommends a behavior %+v", b)
			case tc.wantIndex >= 0 && (b == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds != int32(300*tc.wantIndex)):
				t.Errorf("recommended spec's behavior %+v, want a scale-down window of %ds", b, 300*tc.wantIndex)
			}
			if got.Baseline.Index != -1 || got.Baseline.Report.PodSeconds != 1170 {
				t.Errorf("baseline %+v, want the spec as given (1170 pod-seconds)", got.Baseline)
			}
		})
	}
}

// TestTuneDefaultSpace runs the default grid over a sawtooth and checks
// what holds for any curve: a Pareto frontier, a recommendation within
// budget that nothing cheaper beats, and the same answer twice.
func TestTuneDefaultSpace(t *testing.T) {
	r := Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 8, 8, 2, 2, 2, 8, 8, 2, 2, 2, 2), InitialReplicas: 2}
	budget := 90 * time.Second
	got, err := Tune(t.Context(), r, TuneSpace{}, budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tried != 240 {
		t.Errorf("tried %d, want the default grid's 240", got.Tried)
	}
	for i := 1; i < len(got.Frontier); i++ {
		a, b := got.Frontier[i-1].Report, got.Frontier[i].Report
		if !(a.PodSeconds <= b.PodSeconds && a.UnderSeconds > b.UnderSeconds) {
			t.Errorf("frontier[%d..%d] not cheaper-first with strictly fewer short seconds: %+v, %+v", i-1, i, a, b)
		}
	}
	if !got.WithinBudget || got.Recommended.Report.UnderSeconds > budget.Seconds() {
		t.Fatalf("recommended %+v, want one within %s", got.Recommended.Report, budget)
	}
	// Nothing within budget is cheaper: re-run the rule by brute force
	// over the frontier, which holds the cheapest for each short level.
	for _, c := range got.Frontier {
		if c.Report.UnderSeconds <= budget.Seconds() && c.Report.PodSeconds < got.Recommended.Report.PodSeconds {
			t.Errorf("candidate %d (%+v) is within budget and cheaper than the recommendation", c.Index, c.Report)
		}
	}
	again, err := Tune(t.Context(), r, TuneSpace{}, budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Frontier, got.Frontier) || again.Recommended.Index != got.Recommended.Index {
		t.Error("two searches over the same curve differ")
	}
}

// TestTuneApply checks that a setting lands in the spec: a Utilization
// target as a percentage, an AverageValue target as a fraction of the pod
// capacity, the windows, policies and per-direction tolerances.
func TestTuneApply(t *testing.T) {
	target, up, down := 0.6, int32(30), int32(120)
	tol := [2]float64{0.05, 0.2}
	policies := []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60}}
	st := Setting{Target: &target, ScaleUpWindowSeconds: &up, ScaleDownWindowSeconds: &down, ScaleDownPolicies: policies, Tolerance: &tol}
	h := st.apply(queueHPA(nil), 50, resource.MustParse("1"))
	if v := h.Spec.Metrics[0].External.Target.AverageValue.String(); v != "30" {
		t.Errorf("averageValue %s, want 30 (0.6 of 50)", v)
	}
	b := h.Spec.Behavior
	if *b.ScaleUp.StabilizationWindowSeconds != 30 || *b.ScaleDown.StabilizationWindowSeconds != 120 || b.ScaleUp.Policies != nil ||
		!reflect.DeepEqual(b.ScaleDown.Policies, policies) || b.ScaleUp.Tolerance.String() != "50m" || b.ScaleDown.Tolerance.String() != "200m" {
		t.Errorf("behavior %+v", b)
	}
	cpu := queueHPA(nil)
	cpu.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType}}}}
	if got := *st.apply(cpu, 1, resource.MustParse("1")).Spec.Metrics[0].Resource.Target.AverageUtilization; got != 60 {
		t.Errorf("averageUtilization %d, want 60", got)
	}
	// A cpu AverageValue target is CPU per pod: a fraction of the
	// request, whatever the pod capacity in demand.
	cpu.Spec.Metrics[0].Resource.Target = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType}
	if got := st.apply(cpu, 50, resource.MustParse("500m")).Spec.Metrics[0].Resource.Target.AverageValue.String(); got != "300m" {
		t.Errorf("cpu averageValue %s, want 300m (0.6 of the 500m request)", got)
	}
	if queueHPA(nil).Spec.Behavior != nil {
		t.Error("apply changed the spec it was given")
	}
}

func TestTuneErrors(t *testing.T) {
	r := Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 1, 2)}
	many := make([]float64, 23)
	for i := range many {
		many[i] = float64(i+1) / 23
	}
	tests := []struct {
		name   string
		r      Replay
		space  TuneSpace
		budget time.Duration
		want   string
	}{
		{"no spec", Replay{Curve: r.Curve}, TuneSpace{}, 0, "exactly one of an hpa and a scaledObject"},
		{"cooldown for an hpa", r, TuneSpace{CooldownPeriods: []time.Duration{time.Minute}}, 0, "an hpa has none"},
		{"cooldown not whole seconds", r, TuneSpace{CooldownPeriods: []time.Duration{time.Millisecond}}, 0, "cooldown period 0 (1ms)"},
		{"negative budget", r, TuneSpace{}, -time.Second, "budget"},
		{"grid too big", r, TuneSpace{Targets: many, ScaleDownWindows: make([]time.Duration, 23)}, 0, "more than 512 candidates"},
		{"target above 1", r, TuneSpace{Targets: []float64{1.5}}, 0, "targets[0] = 1.5"},
		{"window not whole seconds", r, TuneSpace{ScaleUpWindows: []time.Duration{1500 * time.Millisecond}}, 0, "whole seconds"},
		{"empty policy set", r, TuneSpace{ScaleUpPolicies: [][]autoscalingv2.HPAScalingPolicy{{}}}, 0, "policy set 0 is empty"},
		{"bad policy", r, TuneSpace{ScaleDownPolicies: [][]autoscalingv2.HPAScalingPolicy{{{Type: "Pods", Value: 0, PeriodSeconds: 15}}}}, 0, "policy set 0, policy 0"},
		{"tolerance", r, TuneSpace{Tolerances: [][2]float64{{0.1, 1}}}, 0, "tolerances[0]"},
		{"bad curve", Replay{HPA: queueHPA(nil)}, TuneSpace{}, 0, "no points"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Tune(t.Context(), tc.r, tc.space, tc.budget, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error = %v, want ErrInvalidInput naming %q", err, tc.want)
			}
		})
	}
}

// queueScaledObject is queueHPA as KEDA would build it: a prometheus
// trigger with threshold 1, replicas 1..10, polled every 15s.
func queueScaledObject(min int32, behavior *autoscalingv2.HorizontalPodAutoscalerBehavior) *ScaledObject {
	maxR, poll := int32(10), int32(15)
	so := &ScaledObject{ObjectMeta: metav1.ObjectMeta{Name: "queue", Labels: map[string]string{"app": "queue"}},
		Spec: ScaledObjectSpec{
			ScaleTargetRef:  &keda.ScaleTarget{Name: "queue"},
			PollingInterval: &poll, MinReplicaCount: &min, MaxReplicaCount: &maxR,
			Triggers: []ScaleTrigger{{Type: "prometheus", Metadata: map[string]string{
				"serverAddress": "http://prometheus:9090", "query": "sum(queue_depth)", "threshold": "1"}}},
		}}
	if behavior != nil {
		so.Spec.Advanced = &keda.AdvancedConfig{HorizontalPodAutoscalerConfig: &keda.HPAConfig{Behavior: behavior}}
	}
	return so
}

// TestTuneScaledObjectAsHPA checks that tuning a ScaledObject finds what
// tuning the HPA KEDA makes of it finds: the same figures for every
// candidate of the frontier and the same recommendation, on curves that
// stay above zero (where KEDA leaves scaling to its HPA).
func TestTuneScaledObjectAsHPA(t *testing.T) {
	space := TuneSpace{Targets: []float64{0.5, 1}, ScaleDownWindows: []time.Duration{0, 5 * time.Minute}, Tolerances: [][2]float64{{0.1, 0.1}}}
	tests := []struct {
		name   string
		curve  []LoadPoint
		budget time.Duration
	}{
		{"sawtooth", curve(time.Minute, 2, 6, 2, 6), 30 * time.Second},
		{"step up and down", curve(time.Minute, 1, 1, 8, 8, 8, 1, 1, 1), 0},
		{"slow rise", curve(30*time.Second, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8), time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			so := queueScaledObject(1, nil)
			hpa, err := so.HPA()
			if err != nil {
				t.Fatal(err)
			}
			want, err := Tune(t.Context(), Replay{HPA: hpa, Curve: tc.curve, InitialReplicas: 2, PodCapacity: 2}, space, tc.budget, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Tune(t.Context(), Replay{ScaledObject: so, Curve: tc.curve, InitialReplicas: 2, PodCapacity: 2}, space, tc.budget, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Tried != 4 || len(got.Frontier) != len(want.Frontier) {
				t.Fatalf("tried %d, frontier %d; want 4 and the hpa's %d", got.Tried, len(got.Frontier), len(want.Frontier))
			}
			for i := range got.Frontier {
				g, w := got.Frontier[i], want.Frontier[i]
				if g.Index != w.Index || !reflect.DeepEqual(g.Report, w.Report) {
					t.Errorf("frontier[%d] = #%d %+v, the hpa's #%d %+v", i, g.Index, g.Report, w.Index, w.Report)
				}
			}
			if got.Recommended.Index != want.Recommended.Index || got.WithinBudget != want.WithinBudget {
				t.Errorf("recommended #%d (within %v), the hpa's #%d (within %v)", got.Recommended.Index, got.WithinBudget, want.Recommended.Index, want.WithinBudget)
			}
			if got.Recommended.HPA != nil || got.Recommended.ScaledObject == nil {
				t.Fatal("the recommendation is not a ScaledObject")
			}
			// KEDA's HPA of the recommended object is the hpa tuning's.
			h, err := got.Recommended.ScaledObject.HPA()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.Spec, want.Recommended.HPA.Spec) {
				t.Errorf("KEDA's hpa of the recommended object:\n%+v\nthe hpa tuning's:\n%+v", h.Spec, want.Recommended.HPA.Spec)
			}
		})
	}
}

// TestTuneScaledObjectApply checks where each setting lands in the object
// and that nothing else changes, the given object included.
func TestTuneScaledObjectApply(t *testing.T) {
	target, up, down, cool := 0.6, int32(30), int32(120), int32(600)
	tol := [2]float64{0.05, 0.2}
	policies := []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60}}
	st := Setting{Target: &target, ScaleUpWindowSeconds: &up, ScaleDownWindowSeconds: &down, ScaleDownPolicies: policies, Tolerance: &tol, CooldownSeconds: &cool}
	cpu := func(metricType, value string) *ScaledObject {
		so := queueScaledObject(1, nil)
		so.Spec.Triggers = []ScaleTrigger{{Type: "cpu", MetricType: metricType, Metadata: map[string]string{"value": value}}}
		return so
	}
	tests := []struct {
		name      string
		so        *ScaledObject
		key, want string
	}{
		{"prometheus threshold: 0.6 of the pod capacity", queueScaledObject(1, nil), "threshold", "30"},
		{"prometheus Value threshold is kept", func() *ScaledObject {
			so := queueScaledObject(1, nil)
			so.Spec.Triggers[0].MetricType = "Value"
			return so
		}(), "threshold", "1"},
		{"cpu Utilization: a percentage", cpu("Utilization", "80"), "value", "60"},
		{"cpu AverageValue: 0.6 of the request", cpu("AverageValue", "1"), "value", "300m"},
		{"cpu with the deprecated metadata.type", func() *ScaledObject {
			so := cpu("", "80")
			so.Spec.Triggers[0].Metadata["type"] = "Utilization"
			return so
		}(), "value", "60"},
		{"an existing behavior keeps what is not tuned", queueScaledObject(1, &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 9, PeriodSeconds: 30}}}}), "threshold", "30"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.so.deepCopy()
			got := st.applyScaledObject(tc.so, 50, resource.MustParse("500m"))
			if !reflect.DeepEqual(tc.so, before) {
				t.Fatal("applyScaledObject changed the object it was given")
			}
			if v := got.Spec.Triggers[0].Metadata[tc.key]; v != tc.want {
				t.Errorf("metadata.%s = %q, want %q", tc.key, v, tc.want)
			}
			if *got.Spec.CooldownPeriod != 600 {
				t.Errorf("cooldownPeriod %d, want 600", *got.Spec.CooldownPeriod)
			}
			b := got.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior
			if *b.ScaleUp.StabilizationWindowSeconds != 30 || *b.ScaleDown.StabilizationWindowSeconds != 120 ||
				!reflect.DeepEqual(b.ScaleDown.Policies, policies) || b.ScaleUp.Tolerance.String() != "50m" || b.ScaleDown.Tolerance.String() != "200m" {
				t.Errorf("behavior %+v", b)
			}
			if old := tc.so.Spec.Advanced; old != nil && !reflect.DeepEqual(b.ScaleUp.Policies, old.HorizontalPodAutoscalerConfig.Behavior.ScaleUp.Policies) {
				t.Errorf("scale-up policies %+v, want the object's own", b.ScaleUp.Policies)
			}
			// Everything else is the object's own.
			got.Spec.Triggers[0].Metadata[tc.key] = before.Spec.Triggers[0].Metadata[tc.key]
			got.Spec.CooldownPeriod, got.Spec.Advanced = before.Spec.CooldownPeriod, before.Spec.Advanced
			if !reflect.DeepEqual(got, before) {
				t.Errorf("fields beyond the tuned ones changed:\n%+v\nwant\n%+v", got, before)
			}
		})
	}
}

// TestTuneScaledObjectCooldown searches cooldownPeriod on an object that
// scales to zero: demand 4 for a minute, then none for ten. With no
// cooldown KEDA scales to zero at the first idle poll; with 300s it holds
// the pods five minutes more, so the short cooldown is cheaper and, the
// curve never coming back, no shorter of capacity.
func TestTuneScaledObjectCooldown(t *testing.T) {
	so := queueScaledObject(0, nil)
	r := Replay{ScaledObject: so, Curve: curve(time.Minute, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), InitialReplicas: 4}
	got, err := Tune(t.Context(), r, TuneSpace{CooldownPeriods: []time.Duration{5 * time.Minute, 0}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tried != 2 {
		t.Fatalf("tried %d, want 2", got.Tried)
	}
	if got.Recommended.Index != 1 || *got.Recommended.ScaledObject.Spec.CooldownPeriod != 0 {
		t.Errorf("recommended #%d, want #1 (cooldownPeriod 0)", got.Recommended.Index)
	}
	if long, short := got.Baseline.Report.PodSeconds, got.Recommended.Report.PodSeconds; !(short < long) {
		t.Errorf("pod-seconds with cooldown 0: %g, with the default 300s: %g; want fewer", short, long)
	}
}

// TestTuneScaledObjectRefusals checks that what tuning cannot model is
// refused, naming the field and why.
func TestTuneScaledObjectRefusals(t *testing.T) {
	c := curve(time.Minute, 1, 2)
	with := func(f func(*ScaledObject)) *ScaledObject {
		so := queueScaledObject(1, nil)
		f(so)
		return so
	}
	tests := []struct {
		name  string
		so    *ScaledObject
		space TuneSpace
		want  string
	}{
		{"two triggers", with(func(so *ScaledObject) {
			so.Spec.Triggers = append(so.Spec.Triggers, ScaleTrigger{Type: "cpu", MetricType: "Utilization", Metadata: map[string]string{"value": "70"}})
		}), TuneSpace{}, "spec.triggers has 2 triggers; tuning takes one"},
		{"memory", with(func(so *ScaledObject) {
			so.Spec.Triggers[0] = ScaleTrigger{Type: "memory", MetricType: "Utilization", Metadata: map[string]string{"value": "70"}}
		}), TuneSpace{}, "spec.triggers[0].type is memory"},
		{"scaling modifiers", with(func(so *ScaledObject) {
			so.Spec.Advanced = &keda.AdvancedConfig{ScalingModifiers: &keda.ScalingModifiers{Formula: "s0 * 2", Target: "2"}}
		}), TuneSpace{}, "spec.advanced.scalingModifiers is set"},
		{"a scaler the replay does not know", with(func(so *ScaledObject) {
			so.Spec.Triggers[0].Type = "kafka"
		}), TuneSpace{}, `trigger type "kafka" is not supported`},
		{"cooldown that never applies", queueScaledObject(1, nil), TuneSpace{CooldownPeriods: []time.Duration{0}}, "spec.minReplicaCount 0 (it is 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Tune(t.Context(), Replay{ScaledObject: tc.so, Curve: c}, tc.space, 0, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error = %v, want ErrInvalidInput naming %q", err, tc.want)
			}
		})
	}
}
