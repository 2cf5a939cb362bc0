package lint

import (
	"strings"
	"testing"
)

// TestHPAMetricsTheAPIServerRefuses lints HPAs whose spec.metrics the API
// server refuses: each is one SH016 on the field, at its line.
func TestHPAMetricsTheAPIServerRefuses(t *testing.T) {
	const head = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 5\n  metrics:\n"
	tests := []struct {
		name, metrics, want string
		line                int
	}{
		{"target 0", "  - type: Resource\n    resource:\n      name: cpu\n      target: {type: Utilization, averageUtilization: 0}\n",
			"spec.metrics[0].resource.target.averageUtilization: must be greater than 0", 11},
		{"no source", "  - type: Pods\n", "spec.metrics[0].pods: is required for type Pods", 8},
		{"unknown type", "  - type: Bogus\n", `spec.metrics[0].type: "Bogus" is not Object, Pods, Resource, ContainerResource or External`, 8},
		{"valid", "  - type: Resource\n    resource:\n      name: cpu\n      target: {type: Utilization, averageUtilization: 60}\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := (&Linter{Only: []string{IDInvalidSpec}}).LintBytes("hpa.yaml", []byte(head+tt.metrics))
			if tt.want == "" {
				if len(rep.Findings) != 0 {
					t.Fatalf("findings %v, want none", rep.Findings)
				}
				return
			}
			if len(rep.Findings) != 1 || rep.Findings[0].Rule != IDInvalidSpec || !strings.Contains(rep.Findings[0].Message, tt.want) || rep.Findings[0].Line != tt.line {
				t.Fatalf("findings %+v, want one SH016 at line %d saying %q", rep.Findings, tt.line, tt.want)
			}
		})
	}
}
