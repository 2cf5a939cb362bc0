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

// TestPrometheusThresholds lints ScaledObjects whose prometheus trigger's
// threshold KEDA would read as NaN, infinity or 0: each is an SH016 on
// the field.
func TestPrometheusThresholds(t *testing.T) {
	const head = "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {name: web}\n  triggers:\n  - type: prometheus\n    metadata:\n      serverAddress: http://prometheus:9090\n      query: sum(up)\n"
	tests := []struct{ name, metadata, want string }{
		{"NaN", "      threshold: \"NaN\"\n", `spec.triggers[0].metadata.threshold: "NaN" is not a number greater than 0`},
		{"infinite", "      threshold: \"+Inf\"\n", `"+Inf" is not a number greater than 0`},
		{"zero", "      threshold: \"0\"\n", `"0" is not a number greater than 0`},
		{"words", "      threshold: \"ten\"\n", `"ten" is not a number greater than 0`},
		{"activation NaN", "      threshold: \"5\"\n      activationThreshold: \"nan\"\n", `spec.triggers[0].metadata.activationThreshold: "nan" is not a finite number`},
		{"valid", "      threshold: \"5.5\"\n      activationThreshold: \"0\"\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := (&Linter{Only: []string{IDInvalidSpec}}).LintBytes("so.yaml", []byte(head+tt.metadata))
			if tt.want == "" {
				if len(rep.Findings) != 0 {
					t.Fatalf("findings %v, want none", rep.Findings)
				}
				return
			}
			if len(rep.Findings) != 1 || !strings.Contains(rep.Findings[0].Message, tt.want) {
				t.Fatalf("findings %+v, want one SH016 saying %q", rep.Findings, tt.want)
			}
		})
	}
}
