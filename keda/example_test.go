package keda_test

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/keda"
)

func Example() {
	doc := []byte(`
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: gallery
spec:
  scaleTargetRef:
    name: gallery
  minReplicaCount: 2
  triggers:
    - type: prometheus
      metadata:
        query: sum(rate(http_requests_total{app="gallery"}[1m]))
        threshold: "100"
`)
	var so keda.ScaledObject
	if err := yaml.UnmarshalStrict(doc, &so); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(so.Name, so.Spec.ScaleTargetRef.Name, *so.Spec.MinReplicaCount, so.Spec.Triggers[0].Metadata["threshold"])

	// A misspelled field is an error, not a silent default.
	err := yaml.UnmarshalStrict([]byte("spec:\n  minReplicas: 2\n"), &so)
	fmt.Println(err != nil)
	// Output:
	// gallery gallery 2 100
	// true
}
