//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestKEDAScaledObjectScalesOnPrometheus follows KEDA end to end: the
// operator turns a ScaledObject into an HPA, the HPA reads the external
// metric from KEDA's metrics API server, which asks the operator, which
// queries the lab's Prometheus. The query's constant 100 against a target
// of 10 per replica must take the Deployment to its maximum of 2.
func TestKEDAScaledObjectScalesOnPrometheus(t *testing.T) {
	l := newLab(t)
	ns, _ := deployEcho(t, l, 1, "")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	so := `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: echo}
spec:
  scaleTargetRef: {name: echo}
  minReplicaCount: 1
  maxReplicaCount: 2
  pollingInterval: 5
  cooldownPeriod: 30
  triggers:
  - type: prometheus
    metadata:
      serverAddress: http://10.199.0.1:19090
      query: vector(100)
      threshold: "10"
`
	if _, err := l.kubectl(ctx, []byte(so), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply ScaledObject: %v", err)
	}
	var last string
	err := poll(ctx, 2*time.Second, func(ctx context.Context) (bool, error) {
		h, err := l.client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "keda-hpa-echo", metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("HPA keda-hpa-echo: %w", err)
		}
		d, err := l.client.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("hpa desired=%d metrics=%d; deployment ready=%d", h.Status.DesiredReplicas, len(h.Status.CurrentMetrics), d.Status.ReadyReplicas)
		return h.Status.DesiredReplicas == 2 && d.Status.ReadyReplicas == 2, nil
	})
	if err != nil {
		t.Fatalf("KEDA did not scale echo to 2: %v; last %s", err, last)
	}
	t.Logf("KEDA scaled echo: %s", last)
}
