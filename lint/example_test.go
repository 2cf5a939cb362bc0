package lint_test

import (
	"fmt"

	"github.com/shoal-dev/shoal/lint"
)

func ExampleLinter_LintBytes() {
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: example.com/web:1
          ports:
            - containerPort: 8080
`
	rep := (&lint.Linter{}).LintBytes("web.yaml", []byte(manifest))
	for _, f := range rep.Findings {
		fmt.Println(f)
	}
	// Output:
	// web.yaml:11: warning SH019 Deployment/web: no NetworkPolicy with Ingress selects its pods, so any pod in the cluster can reach every port they serve
	// web.yaml:14: error SH001 Deployment/web: container "web": serves ports but has no readinessProbe
	// web.yaml:14: warning SH004 Deployment/web: container "web": serves ports but has no preStop hook
}

// The fields an API server of lint.KubernetesVersion with default feature
// gates drops, which lint reports as SH035.
func ExampleGatedFields() {
	off := map[string]bool{}
	for _, g := range lint.FeatureGates() {
		off[g.Name] = !g.Default
	}
	for _, f := range lint.GatedFields() {
		if off[f.Gate] && f.Type == "core/v1.HTTPGetAction" {
			fmt.Printf("%s.%s: %s, since v%s\n", f.Type, f.Field, f.Gate, f.Since)
		}
	}
	// Output:
	// core/v1.HTTPGetAction.protocol: H2CContainerProbe, since v1.37
}
