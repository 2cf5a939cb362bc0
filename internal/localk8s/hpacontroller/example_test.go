package hpacontroller_test

import (
	"context"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
)

// oneDeployment is a Deployment of two busy pods, for the example.
type oneDeployment struct {
	replicas int32
	cpu      time.Duration
}

func (d *oneDeployment) Pods(ns, name string) (int32, []hpacontroller.PodView, error) {
	start := time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)
	var pods []hpacontroller.PodView
	for i := range d.replicas {
		pods = append(pods, hpacontroller.PodView{Name: fmt.Sprintf("web-%d", i), Ready: true,
			StartTime: start, ReadyTime: start, CPURequest: 0.5, CPUTime: d.cpu})
	}
	return d.replicas, pods, nil
}

func (d *oneDeployment) Scale(ns, name string, replicas int32, reason string) error {
	d.replicas = replicas
	return nil
}

func Example() {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	target := &oneDeployment{replicas: 2}
	c := hpacontroller.New(hpacontroller.Config{
		Target: target,
		Now:    func() time.Time { return now },
		OnEvent: func(e hpacontroller.Event) {
			fmt.Println(e.Reason, e.Object, e.Message)
		},
	})
	utilization := int32(50)
	err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &utilization}},
			}},
		},
	}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	_ = c.SyncOnce(ctx) // the first CPU sample
	// Each pod burns 0.4 cores, 80% of its 0.5 request, over 15s.
	now = now.Add(15 * time.Second)
	target.cpu += 6 * time.Second
	_ = c.SyncOnce(ctx)
	st := c.Status()[0]
	fmt.Println(st.Metrics, st.Current, "->", st.Desired)
	// Output:
	// SuccessfulRescale hpa/web New size: 4; reason: cpu resource utilization (percentage of request) above target
	// cpu: 80%/50% 2 -> 4
}
