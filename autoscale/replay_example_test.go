package autoscale_test

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-dev/shoal/autoscale"
)

// ExampleReplay replays a step from 2 to 6 pods' worth of demand through
// an HPA that asks for one pod per unit of a queue metric: the no-behavior
// limit (max(2×current, 4)) and 30s pod start-up leave it short for 45s.
func ExampleReplay() {
	one := resource.MustParse("1")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MaxReplicas: 10,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &one}}}},
	}}
	rep, err := autoscale.Replay{
		HPA:             hpa,
		Curve:           []autoscale.LoadPoint{{At: 0, Value: 2}, {At: time.Minute, Value: 6}},
		Duration:        3 * time.Minute,
		InitialReplicas: 2,
		PodStartup:      30 * time.Second,
	}.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.0f pod-seconds, %.0fs short (shortfall %.0f), peak overload %.1f, %d scale events\n",
		rep.PodSeconds, rep.UnderSeconds, rep.Shortfall, rep.PeakOverload, rep.ScaleEvents)

	// Searching the target: any behavior brings the scale-up policies (4
	// pods or 100% per 15s), so at target 1 the step is met in one sync;
	// target 0.5 keeps twice the pods and is just as short at the step.
	tuning, err := autoscale.Tune(context.Background(), autoscale.Replay{HPA: hpa, Curve: []autoscale.LoadPoint{{At: 0, Value: 2}, {At: time.Minute, Value: 6}},
		Duration: 3 * time.Minute, InitialReplicas: 2}, autoscale.TuneSpace{Targets: []float64{0.5, 1}}, 30*time.Second, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range tuning.Frontier {
		label := "as given"
		if c.Index >= 0 {
			label = fmt.Sprintf("target %.1f", *c.Setting.Target)
		}
		fmt.Printf("%s: %.0f pod-seconds, %.0fs short\n", label, c.Report.PodSeconds, c.Report.UnderSeconds)
	}
	fmt.Printf("recommended: target %.1f\n", *tuning.Recommended.Setting.Target)
	// Output:
	// 810 pod-seconds, 45s short (shortfall 150), peak overload 3.0, 2 scale events
	// as given: 810 pod-seconds, 45s short
	// target 1.0: 840 pod-seconds, 30s short
	// recommended: target 1.0
}
