package autoscale

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
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
			got, err := Tune(r, space, tc.budget)
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
	got, err := Tune(r, TuneSpace{}, budget)
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
	again, err := Tune(r, TuneSpace{}, budget)
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
	h := st.apply(queueHPA(nil), 50)
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
	if got := *st.apply(cpu, 1).Spec.Metrics[0].Resource.Target.AverageUtilization; got != 60 {
		t.Errorf("averageUtilization %d, want 60", got)
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
		{"scaled object", Replay{ScaledObject: &ScaledObject{}, Curve: r.Curve}, TuneSpace{}, 0, "a ScaledObject is replayed, not tuned"},
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
			_, err := Tune(tc.r, tc.space, tc.budget)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error = %v, want ErrInvalidInput naming %q", err, tc.want)
			}
		})
	}
}
