package autoscale_test

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-dev/shoal/autoscale"
)

func ExampleRecommend() {
	target := int32(50)
	minReplicas := int32(1)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MinReplicas: &minReplicas,
		MaxReplicas: 10,
		Metrics: []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target},
			},
		}},
	}}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	started := now.Add(-time.Hour)
	var pods []autoscale.Pod
	for i, usage := range []string{"900m", "800m"} {
		pods = append(pods, autoscale.Pod{
			Name: fmt.Sprintf("web-%d", i), Ready: true, StartTime: &started,
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			Usage:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(usage)},
		})
	}
	d, err := autoscale.Recommend(autoscale.Config{}, autoscale.Input{HPA: hpa, Now: now, CurrentReplicas: 2, Pods: pods})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.DesiredReplicas, d.Reason)
	// Output: 4 cpu resource utilization (percentage of request) above target
}

func ExampleSimulate() {
	target := int32(70)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MaxReplicas: 10,
		Metrics: []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target},
			},
		}},
	}}
	samples, err := autoscale.Simulate(context.Background(), autoscale.Scenario{
		HPA: hpa, InitialReplicas: 2, Duration: time.Minute,
		Load: []autoscale.LoadPoint{{At: 0, Value: 1.4}, {At: 30 * time.Second, Value: 4}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range samples {
		fmt.Println(s.Time, s.Metric, s.Desired, s.Ready)
	}
	// Output:
	// 0s 70% 2 2
	// 15s 70% 2 2
	// 30s 200% 4 2
	// 45s 200% 6 2
	// 1m0s 100% 6 4
}

// An HPA with minReplicas 0 and an External metric scales its target to
// zero when the queue empties, and the ScaledToZero condition it records,
// passed back in the HPA's status, lets it scale up from zero when work
// arrives (HPAScaleToZero, on by default in Kubernetes v1.37).
func ExampleRecommend_scaleToZero() {
	zero := int32(0)
	perPod := resource.MustParse("10")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MinReplicas: &zero,
		MaxReplicas: 10,
		Metrics: []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ExternalMetricSourceType,
			External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "queue_depth"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &perPod},
			},
		}},
	}}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	queue := func(n string) map[string]resource.Quantity {
		return map[string]resource.Quantity{"queue_depth": resource.MustParse(n)}
	}
	down, _ := autoscale.Recommend(autoscale.Config{}, autoscale.Input{HPA: hpa, Now: now, CurrentReplicas: 2,
		ExternalMetrics: queue("0"), Recommendations: []autoscale.Recommendation{}})
	fmt.Println("empty queue:", down.DesiredReplicas)

	hpa.Status.Conditions = down.Conditions
	up, _ := autoscale.Recommend(autoscale.Config{}, autoscale.Input{HPA: hpa, Now: now.Add(time.Minute), CurrentReplicas: 0,
		ExternalMetrics: queue("35"), Recommendations: down.Recommendations})
	fmt.Println("35 queued:", up.DesiredReplicas)

	off := autoscale.Config{FeatureGates: map[string]bool{autoscale.GateScaleToZero: false}}
	stay, _ := autoscale.Recommend(off, autoscale.Input{HPA: hpa, Now: now.Add(time.Minute), CurrentReplicas: 0,
		ExternalMetrics: queue("35"), Recommendations: down.Recommendations})
	fmt.Println("gate off:", stay.DesiredReplicas, stay.Reason)
	// Output:
	// empty queue: 0
	// 35 queued: 4
	// gate off: 0 ScalingDisabled
}
