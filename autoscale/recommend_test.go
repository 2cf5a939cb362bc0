package autoscale

import (
	"fmt"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func cpuHPA(minR *int32, maxR int32, target int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MinReplicas: minR, MaxReplicas: maxR,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
	}}
}

func cpuPods(request string, usages ...int64) []Pod {
	start := testNow.Add(-time.Hour)
	var pods []Pod
	for i, u := range usages {
		pods = append(pods, Pod{Name: fmt.Sprintf("p%d", i), Ready: true, StartTime: &start,
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(request)},
			Usage:    corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(u, resource.DecimalSI)}})
	}
	return pods
}

func mixedPods(requests []string, usages ...int64) []Pod {
	pods := cpuPods("1", usages...)
	for i := range pods {
		pods[i].Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(requests[i])}
	}
	return pods
}

func i32(v int32) *int32 { return &v }

func condition(d Decision, t autoscalingv2.HorizontalPodAutoscalerConditionType) string {
	for _, c := range d.Conditions {
		if c.Type == t {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}

// TestRecommendController ports controller-level cases of upstream's
// horizontal_test.go (named per row) through the whole Recommend path.
func TestRecommendController(t *testing.T) {
	invalid := autoscalingv2.MetricSpec{Type: "CheddarCheese"}
	tolerance := func(up, down string) *autoscalingv2.HorizontalPodAutoscalerBehavior {
		b := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{}, ScaleDown: &autoscalingv2.HPAScalingRules{}}
		if up != "" {
			q := resource.MustParse(up)
			b.ScaleUp.Tolerance = &q
		}
		if down != "" {
			q := resource.MustParse(down)
			b.ScaleDown.Tolerance = &q
		}
		return b
	}
	tests := []struct {
		name, upstream string
		hpa            *autoscalingv2.HorizontalPodAutoscaler
		current        int32
		pods           []Pod
		history        []Recommendation
		want           int32
		conds          map[autoscalingv2.HorizontalPodAutoscalerConditionType]string
	}{
		{name: "scale up", upstream: "TestScaleUp", hpa: cpuHPA(i32(2), 6, 30), current: 3, pods: cpuPods("1", 300, 500, 700), history: []Recommendation{}, want: 5,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/SucceededRescale", autoscalingv2.ScalingActive: "True/ValidMetricFound", autoscalingv2.ScalingLimited: "False/DesiredWithinRange"}},
		{name: "scale down", upstream: "TestScaleDown", hpa: cpuHPA(i32(2), 6, 50), current: 5, pods: cpuPods("1", 100, 300, 500, 250, 250), history: []Recommendation{}, want: 3},
		{name: "stabilize initial size", upstream: "TestScaleDownStabilizeInitialSize", hpa: cpuHPA(i32(2), 6, 50), current: 5, pods: cpuPods("1", 100, 300, 500, 250, 250), want: 5,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/ScaleDownStabilized"}},
		{name: "stabilize downscale", upstream: "TestStabilizeDownscale", hpa: cpuHPA(i32(1), 5, 100), current: 4, pods: cpuPods("100m", 50, 50, 50),
			history: []Recommendation{{Time: testNow.Add(-10 * time.Minute), Replicas: 10}, {Time: testNow.Add(-time.Minute), Replicas: 4}}, want: 4,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/ScaleDownStabilized"}},
		{name: "min replicas", upstream: "TestMinReplicas", hpa: cpuHPA(i32(2), 5, 90), current: 3, pods: mixedPods([]string{"900m", "1", "1100m"}, 10, 95, 10), history: []Recommendation{}, want: 2,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingLimited: "True/TooFewReplicas"}},
		{name: "too few replicas", upstream: "TestTooFewReplicas", hpa: cpuHPA(i32(3), 5, 90), current: 2, want: 3,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/SucceededRescale"}},
		{name: "too many replicas", upstream: "TestTooManyReplicas", hpa: cpuHPA(i32(3), 5, 90), current: 10, want: 5,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/SucceededRescale"}},
		{name: "zero replicas", upstream: "TestZeroReplicas", hpa: cpuHPA(i32(3), 5, 90), current: 0, want: 0,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/SucceededGetScale", autoscalingv2.ScalingActive: "False/ScalingDisabled"}},
		{name: "zero min desired zero", upstream: "TestZeroMinReplicasDesiredZero", hpa: cpuHPA(i32(0), 5, 90), current: 3, pods: cpuPods("1", 0, 0, 0), history: []Recommendation{}, want: 0,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingLimited: "False/DesiredWithinRange"}},
		{name: "scale up limit without behavior", upstream: "TestConvertDesiredReplicasWithRules", hpa: cpuHPA(i32(1), 100, 10), current: 3, pods: cpuPods("100m", 100, 200, 300), history: []Recommendation{}, want: 6,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingLimited: "True/ScaleUpLimit"}},
		{name: "one metric invalid scales up", upstream: "TestScaleUpOneMetricInvalid", hpa: func() *autoscalingv2.HorizontalPodAutoscaler {
			h := cpuHPA(i32(2), 6, 30)
			h.Spec.Metrics = append(h.Spec.Metrics, invalid)
			return h
		}(), current: 3, pods: cpuPods("1", 300, 400, 500), history: []Recommendation{}, want: 4},
		{name: "one metric invalid blocks scale down", upstream: "TestNoScaleDownOneMetricInvalid", hpa: func() *autoscalingv2.HorizontalPodAutoscaler {
			h := cpuHPA(i32(2), 6, 50)
			h.Spec.Metrics = append(h.Spec.Metrics, invalid)
			return h
		}(), current: 5, pods: cpuPods("1", 100, 300, 500, 250, 250), history: []Recommendation{}, want: 5,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/SucceededGetScale", autoscalingv2.ScalingActive: "False/InvalidMetricSourceType"}},
		{name: "failed resource metric", upstream: "TestConditionFailedGetMetrics", hpa: cpuHPA(i32(1), 6, 50), current: 3, pods: func() []Pod {
			p := cpuPods("1", 1, 1, 1)
			for i := range p {
				p[i].Usage = nil
			}
			return p
		}(), want: 3, conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingActive: "False/FailedGetResourceMetric"}},
		{name: "upscale cap with percent policy", upstream: "TestUpscaleCap", hpa: func() *autoscalingv2.HorizontalPodAutoscaler {
			h := cpuHPA(i32(1), 100, 10)
			w := int32(0)
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &w,
				Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 700, PeriodSeconds: 60}}}}
			return h
		}(), current: 3, pods: cpuPods("100m", 100, 200, 300), history: []Recommendation{}, want: 24,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.ScalingLimited: "True/ScaleUpLimit"}},
		{name: "configurable tolerance scales up", upstream: "TestConfigurableTolerance", hpa: func() *autoscalingv2.HorizontalPodAutoscaler {
			h := cpuHPA(i32(1), 5, 100)
			h.Spec.Behavior = tolerance("0.01", "")
			return h
		}(), current: 3, pods: mixedPods([]string{"900m", "1", "1100m"}, 1010, 1030, 1020), history: []Recommendation{}, want: 4},
		{name: "configurable tolerance holds scale down", upstream: "TestConfigurableTolerance", hpa: func() *autoscalingv2.HorizontalPodAutoscaler {
			h := cpuHPA(i32(1), 5, 100)
			h.Spec.Behavior = tolerance("", "0.9")
			return h
		}(), current: 3, pods: cpuPods("1", 300, 300, 300), history: []Recommendation{}, want: 3},
		{name: "more replicas than spec", upstream: "TestMoreReplicasThanSpecNoScale", hpa: cpuHPA(i32(1), 8, 50), current: 4, pods: cpuPods("1", 500, 500, 500, 500, 500), want: 4,
			conds: map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{autoscalingv2.AbleToScale: "True/ReadyForNewScale"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Recommend(Config{}, Input{HPA: tc.hpa, Now: testNow, CurrentReplicas: tc.current, Pods: tc.pods, Recommendations: tc.history})
			if err != nil {
				t.Fatal(err)
			}
			if d.DesiredReplicas != tc.want {
				t.Errorf("%s: desired = %d, want %d (reason %q, conditions %v)", tc.upstream, d.DesiredReplicas, tc.want, d.Reason, d.Conditions)
			}
			for typ, want := range tc.conds {
				if got := condition(d, typ); got != want {
					t.Errorf("%s: condition %s = %s, want %s", tc.upstream, typ, got, want)
				}
			}
		})
	}
}

func TestRecommendObjectAndExternal(t *testing.T) {
	v := func(s string) *resource.Quantity { q := resource.MustParse(s); return &q }
	object := autoscalingv2.MetricSpec{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
		DescribedObject: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "d"},
		Metric:          autoscalingv2.MetricIdentifier{Name: "qps"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: v("15")}}}
	external := autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "queue"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: v("14400m")}}}
	tests := []struct {
		name, upstream string
		metric         autoscalingv2.MetricSpec
		minR           int32
		current        int32
		objects, exts  map[string]resource.Quantity
		scaledToZero   bool // the HPA carries ScaledToZero=True
		want           int32
	}{
		{"object scale up", "TestScaleUpCMObject", object, 2, 3, map[string]resource.Quantity{"qps": resource.MustParse("20")}, nil, false, 4},
		{"object from zero", "TestScaleUpCMObject: scale up from zero with HPAScaleToZero enabled", object, 0, 0, map[string]resource.Quantity{"qps": resource.MustParse("20")}, nil, true, 2},
		{"object at zero without the condition", "TestScaleToZeroBehavior: from zero without condition", object, 0, 0, map[string]resource.Quantity{"qps": resource.MustParse("20")}, nil, false, 0},
		{"external down to zero", "TestScaleDownCMExternal: scale down to zero external metric", external, 0, 5, nil, map[string]resource.Quantity{"queue": resource.MustParse("0")}, false, 0},
		{"missing external keeps size", "TestConditionFailedGetMetrics", external, 1, 3, nil, nil, false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &tc.minR, MaxReplicas: 6, Metrics: []autoscalingv2.MetricSpec{tc.metric}}}
			if tc.scaledToZero {
				h.Status.Conditions = []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.ScaledToZero, Status: corev1.ConditionTrue, Reason: "ScaledToZero"}}
			}
			d, err := Recommend(Config{}, Input{HPA: h, Now: testNow, CurrentReplicas: tc.current, Pods: cpuPods("1", 1, 1, 1, 1, 1)[:tc.current], Recommendations: []Recommendation{}, ObjectMetrics: tc.objects, ExternalMetrics: tc.exts})
			if err != nil {
				t.Fatal(err)
			}
			if d.DesiredReplicas != tc.want {
				t.Errorf("%s: desired = %d, want %d (%v)", tc.upstream, d.DesiredReplicas, tc.want, d.Conditions)
			}
		})
	}
}

func TestKEDAActivation(t *testing.T) {
	so := &ScaledObject{Spec: ScaledObjectSpec{CooldownPeriod: i32(60), MaxReplicaCount: i32(8), Triggers: []ScaleTrigger{{Type: "prometheus",
		Metadata: map[string]string{"threshold": "20", "activationThreshold": "5"}}}}}
	long := testNow.Add(-2 * time.Minute)
	recent := testNow.Add(-30 * time.Second)
	tests := []struct {
		name       string
		current    int32
		value      float64
		lastActive *time.Time
		want       int32
		reason     string
	}{
		{"at the activation threshold stays at zero", 0, 5, nil, -1, "Inactive"},
		{"above it scales from zero to one", 0, 5.5, nil, 1, "ScaledFromZero"},
		{"active above zero leaves it to the HPA", 3, 50, nil, -1, "Active"},
		{"inactive within cooldown keeps pods", 3, 0, &recent, -1, "CoolingDown"},
		{"inactive after cooldown scales to zero", 3, 0, &long, 0, "ScaledToZero"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := so.Activate(testNow, tc.current, []float64{tc.value}, tc.lastActive)
			if err != nil {
				t.Fatal(err)
			}
			if a.Replicas != tc.want || a.Reason != tc.reason {
				t.Errorf("got %d %s, want %d %s", a.Replicas, a.Reason, tc.want, tc.reason)
			}
		})
	}
	hpa, err := so.HPA()
	if err != nil {
		t.Fatal(err)
	}
	if *hpa.Spec.MinReplicas != 1 || hpa.Spec.MaxReplicas != 8 || hpa.Spec.Metrics[0].External.Target.AverageValue.String() != "20" {
		t.Errorf("generated HPA = %+v", hpa.Spec)
	}
}

func TestRecommendRejectsBadInput(t *testing.T) {
	good := cpuHPA(nil, 3, 50)
	tests := []struct {
		name string
		in   Input
	}{
		{"no hpa", Input{Now: testNow}},
		{"no now", Input{HPA: good}},
		{"negative replicas", Input{HPA: good, Now: testNow, CurrentReplicas: -1}},
		{"bad select policy", Input{HPA: func() *autoscalingv2.HorizontalPodAutoscaler {
			h := good.DeepCopy()
			p := autoscalingv2.ScalingPolicySelect("Sometimes")
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: &p}}
			return h
		}(), Now: testNow}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Recommend(Config{}, tc.in); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func BenchmarkRecommend(b *testing.B) {
	h := cpuHPA(i32(2), 50, 70)
	h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	usages := make([]int64, 20)
	for i := range usages {
		usages[i] = int64(600 + 10*i)
	}
	in := Input{HPA: h, Now: testNow, CurrentReplicas: 20, Pods: cpuPods("1", usages...), Recommendations: []Recommendation{}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Recommend(Config{}, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecommendPodMetricWindow counts a new pod's CPU sample only when its
// own window, not the configured one, starts after the pod turned ready.
func TestRecommendPodMetricWindow(t *testing.T) {
	start := testNow.Add(-time.Minute) // inside the CPU initialization period
	readyAt := testNow.Add(-40 * time.Second)
	sampled := testNow.Add(-20 * time.Second) // 20s after the pod turned ready
	for _, tt := range []struct {
		name   string
		window time.Duration
		want   int32
	}{
		// With the configured 30s window, the new pod's sample reaches back
		// before it was ready: unready, it counts at 0 on scale-up, which
		// brings the ratio below 1 and keeps the count.
		{name: "the configured window", window: 0, want: 2},
		// Its own 15s window lies after it turned ready: the sample counts.
		{name: "the sample's own window", window: 15 * time.Second, want: 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pods := cpuPods("1", 900, 900)
			pods[1].StartTime, pods[1].ReadyTransitionTime = &start, readyAt
			pods[1].MetricTime, pods[1].MetricWindow = &sampled, tt.window
			d, err := Recommend(Config{MetricWindow: 30 * time.Second}, Input{HPA: cpuHPA(i32(1), 10, 50), Now: testNow, CurrentReplicas: 2, Pods: pods,
				Recommendations: []Recommendation{}})
			if err != nil {
				t.Fatal(err)
			}
			if d.DesiredReplicas != tt.want {
				t.Errorf("desired %d, want %d (%s)", d.DesiredReplicas, tt.want, d.Reason)
			}
		})
	}
}
