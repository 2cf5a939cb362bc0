package autoscale

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
)

// queueHPA scales on an External metric with an AverageValue target of
// one unit per pod: it asks for exactly ceil(demand) pods.
func queueHPA(behavior *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscaler {
	one := resource.MustParse("1")
	minR := int32(1)
	return &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MinReplicas: &minR, MaxReplicas: 10, Behavior: behavior,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &one}}}},
	}}
}

func curve(step time.Duration, values ...float64) []LoadPoint {
	out := make([]LoadPoint, len(values))
	for i, v := range values {
		out[i] = LoadPoint{At: time.Duration(i) * step, Value: v}
	}
	return out
}

// fastDown scales down at once: no stabilization, all pods per 15s.
func fastDown() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	zero := int32(0)
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero,
		Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}}}
}

// TestReplayFigures checks the figures on curves small enough to work out
// by hand: syncs every 15s, pods ready 30s after creation, one unit of
// demand per pod.
func TestReplayFigures(t *testing.T) {
	tests := []struct {
		name string
		r    Replay
		want Report // Series not compared
	}{{
		// 2 → 6 at 1m. 1:00 asks 6, the no-behavior limit gives 4 (ready
		// 1:30); 1:15 gives 6 (ready 1:45). Short 4 for 30s, 2 for 15s.
		// Pods: 2×60 + 4×15 + 6×105 = 810.
		name: "step",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 6), Duration: 3 * time.Minute, InitialReplicas: 2},
		want: Report{PodSeconds: 810, UnderSeconds: 45, Shortfall: 150, PeakOverload: 3, ScaleEvents: 2, PeakReplicas: 6},
	}, {
		// Pods ready 20s after creation, between syncs: 1:20 and 1:35.
		name: "step, start-up off the sync grid",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 6), Duration: 3 * time.Minute, InitialReplicas: 2, PodStartup: 20 * time.Second},
		want: Report{PodSeconds: 810, UnderSeconds: 35, Shortfall: 110, PeakOverload: 3, ScaleEvents: 2, PeakReplicas: 6},
	}, {
		// The same step seen 30s late: every decision moves 30s later.
		name: "step with metric delay",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 6), Duration: 3 * time.Minute, InitialReplicas: 2, MetricDelay: 30 * time.Second},
		want: Report{PodSeconds: 690, UnderSeconds: 75, Shortfall: 270, PeakOverload: 3, ScaleEvents: 2, PeakReplicas: 6},
	}, {
		// A 15s spike of 10 at 1m: 1:00 → 4; 1:15 keeps the spike's 10 in
		// the downscale window, limited to 2×4 = 8; 1:30 → 10. Short only
		// during the spike: 8 for 15s. Pods: 2×60 + 4×15 + 8×15 + 10×90.
		name: "spike",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(15*time.Second, 2, 2, 2, 2, 10, 2, 2, 2), Duration: 3 * time.Minute, InitialReplicas: 2},
		want: Report{PodSeconds: 1200, UnderSeconds: 15, Shortfall: 120, PeakOverload: 5, ScaleEvents: 3, PeakReplicas: 10},
	}, {
		// One more unit every 30s: each new pod is ready just as the next
		// unit arrives, so every 30s from 0:30 is one unit short.
		name: "ramp",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(30*time.Second, 1, 2, 3, 4, 5), InitialReplicas: 1},
		want: Report{PodSeconds: 450, UnderSeconds: 120, Shortfall: 120, PeakOverload: 2, ScaleEvents: 4, PeakReplicas: 5},
	}, {
		// 2, 6, 2, 6 a minute each: the 300s downscale window keeps 6
		// through the trough, so only the first rise is short.
		name: "sawtooth, default window",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 2, 6, 2, 6), InitialReplicas: 2},
		want: Report{PodSeconds: 1170, UnderSeconds: 45, Shortfall: 150, PeakOverload: 3, ScaleEvents: 2, PeakReplicas: 6},
	}, {
		// With a behavior the scale-up policies allow +4 at once (6 at
		// 1:00 and 3:00), and no window drops to 2 at 2:00: cheaper, but
		// short 4 for 30s on each rise.
		name: "sawtooth, no window",
		r:    Replay{HPA: queueHPA(fastDown()), Curve: curve(time.Minute, 2, 6, 2, 6), InitialReplicas: 2},
		want: Report{PodSeconds: 960, UnderSeconds: 60, Shortfall: 240, PeakOverload: 3, ScaleEvents: 3, PeakReplicas: 6},
	}, {
		// Capacity 10 per pod and demand in hundreds: the same step in
		// other units, shortfall in demand-seconds.
		name: "step in requests per second",
		r:    Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 0.2, 0.6), Duration: 3 * time.Minute, InitialReplicas: 2, PodCapacity: 0.1},
		want: Report{PodSeconds: 2 * 180, UnderSeconds: 120, Shortfall: 0.4 * 120, PeakOverload: 3, ScaleEvents: 0, PeakReplicas: 2},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Series) != len(tc.r.Curve) {
				t.Errorf("series has %d points, want one per curve point (%d)", len(got.Series), len(tc.r.Curve))
			}
			got.Series = nil
			if !near(got.PodSeconds, tc.want.PodSeconds) || !near(got.UnderSeconds, tc.want.UnderSeconds) || !near(got.Shortfall, tc.want.Shortfall) ||
				!near(got.PeakOverload, tc.want.PeakOverload) || got.ScaleEvents != tc.want.ScaleEvents || got.PeakReplicas != tc.want.PeakReplicas {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestReplaySeries checks the chart's series: the replica count after the
// sync at each curve point, and the pods ready then.
func TestReplaySeries(t *testing.T) {
	rep, err := Replay{HPA: queueHPA(nil), Curve: curve(15*time.Second, 2, 2, 2, 2, 10, 2, 2, 2), Duration: 3 * time.Minute, InitialReplicas: 2}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []ReplayPoint{{0, 2, 2, 2}, {15 * time.Second, 2, 2, 2}, {30 * time.Second, 2, 2, 2}, {45 * time.Second, 2, 2, 2},
		{60 * time.Second, 10, 4, 2}, {75 * time.Second, 2, 8, 2}, {90 * time.Second, 2, 10, 4}, {105 * time.Second, 2, 10, 8}}
	for i, p := range want {
		if rep.Series[i] != p {
			t.Errorf("series[%d] = %+v, want %+v", i, rep.Series[i], p)
		}
	}
}

// TestReplayNoReadyPods: demand with no pod ready is an infinite
// overload, encoded as null.
func TestReplayNoReadyPods(t *testing.T) {
	// minReplicas 0 and an External metric: the HPA scales to zero while
	// the queue is empty, and demand at 1m finds no pod ready.
	h := queueHPA(fastDown())
	zero := int32(0)
	h.Spec.MinReplicas = &zero
	rep, err := Replay{HPA: h, Curve: curve(time.Minute, 0, 3), InitialReplicas: 1}.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(rep.PeakOverload, 1) || rep.Series[0].Replicas != 0 {
		t.Fatalf("peak overload %g, series %+v; want +Inf from zero replicas", rep.PeakOverload, rep.Series)
	}
	// 3 pods from 1:00, ready at 1:30: 3 units short for 30s.
	if rep.UnderSeconds != 30 || rep.Shortfall != 90 {
		t.Errorf("under %gs, shortfall %g; want 30s, 90", rep.UnderSeconds, rep.Shortfall)
	}
	inf := Report{PeakOverload: math.Inf(1)}
	b, err := json.Marshal(inf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"peakOverload":null`) {
		t.Errorf("infinite overload encodes as %s", b)
	}
	b, _ = json.Marshal(Report{PeakOverload: 2.5})
	if !strings.Contains(string(b), `"peakOverload":2.5`) {
		t.Errorf("overload 2.5 encodes as %s", b)
	}
}

func TestReplayValidate(t *testing.T) {
	base := func() Replay {
		return Replay{HPA: queueHPA(nil), Curve: curve(time.Minute, 1, 2)}
	}
	big := make([]LoadPoint, MaxCurvePoints+1)
	for i := range big {
		big[i].At = time.Duration(i) * time.Second
	}
	tests := []struct {
		name   string
		modify func(*Replay)
		want   string
	}{
		{"no points", func(r *Replay) { r.Curve = nil }, "no points"},
		{"too many points", func(r *Replay) { r.Curve = big }, "coarser step"},
		{"late start", func(r *Replay) { r.Curve[0].At = time.Second }, "curve[0].at"},
		{"ramp", func(r *Replay) { r.Curve[1].Ramp = true }, "curve[1] is a ramp"},
		{"negative", func(r *Replay) { r.Curve[1].Value = -1 }, "curve[1].value"},
		{"NaN", func(r *Replay) { r.Curve[1].Value = math.NaN() }, "curve[1].value"},
		{"unordered", func(r *Replay) { r.Curve[1].At = 0 }, "curve[1].at is not after"},
		{"one point", func(r *Replay) { r.Curve = r.Curve[:1] }, "needs a duration"},
		{"short duration", func(r *Replay) { r.Duration = 30 * time.Second }, "ends before"},
		{"fine resolution", func(r *Replay) { r.Duration = 168 * time.Hour; r.MetricResolution = time.Second }, "metricResolution"},
		{"long delay", func(r *Replay) { r.MetricDelay = time.Hour }, "metricDelay"},
		{"no spec", func(r *Replay) { r.HPA = nil }, "exactly one of hpa and scaledObject"},
		{"long replay", func(r *Replay) { r.Duration = 200 * time.Hour }, "duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.modify(&r)
			_, err := r.Run(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error = %v, want ErrInvalidInput naming %q", err, tc.want)
			}
		})
	}
}

// BenchmarkReplayHour replays an hour at 15s points (a ramp, a spike, a
// sawtooth) through a CPU HPA of up to 20 pods: 240 syncs. Compare with
// BenchmarkRecommend: a replay costs about one decision per sync.
func BenchmarkReplayHour(b *testing.B) {
	util := int32(70)
	minR := int32(2)
	h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &minR, MaxReplicas: 20,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &util}}}}}}
	values := make([]float64, 240)
	for i := range values {
		m := float64(i) / 4
		values[i] = 3 + 3*math.Min(m, 20)/20
		if m >= 25 && m < 27 {
			values[i] = 12
		}
		if m >= 35 {
			values[i] = 6 + 2*float64(1-2*(int(m-35)/5%2))
		}
	}
	r := Replay{HPA: h, Curve: curve(15*time.Second, values...), MetricDelay: 30 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Run(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
