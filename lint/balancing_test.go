package lint

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the lint golden files")

// TestBalancingGolden lints Services that use v1.37's balancing fields in
// the combinations the rules SH030-SH034 tell apart, and compares what
// lint says with testdata/balancing/services.golden.
func TestBalancingGolden(t *testing.T) {
	path := filepath.Join("testdata", "balancing", "services.yaml")
	rep, err := (&Linter{}).Lint(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range rep.Findings {
		b.WriteString(f.String())
		b.WriteString("\n")
	}
	golden.Check(t, filepath.Join("testdata", "balancing", "services.golden"), []byte(b.String()), *updateGolden)
}

func TestPinnedTo(t *testing.T) {
	zoneTerm := func(values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: labelZone, Operator: corev1.NodeSelectorOpIn, Values: values}}}
	}
	required := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		key  string
		want string
	}{
		{name: "free", key: labelZone},
		{name: "nodeSelector", spec: corev1.PodSpec{NodeSelector: map[string]string{labelZone: "a"}}, key: labelZone, want: "a"},
		{name: "nodeName pins the node", spec: corev1.PodSpec{NodeName: "n1"}, key: labelHostname, want: "n1"},
		{name: "nodeName says nothing of the zone", spec: corev1.PodSpec{NodeName: "n1"}, key: labelZone},
		{name: "required affinity to one zone", spec: corev1.PodSpec{Affinity: required(zoneTerm("b"))}, key: labelZone, want: "b"},
		{name: "two zones allowed", spec: corev1.PodSpec{Affinity: required(zoneTerm("a", "b"))}, key: labelZone},
		{name: "terms naming different zones", spec: corev1.PodSpec{Affinity: required(zoneTerm("a"), zoneTerm("b"))}, key: labelZone},
		{name: "a term without the zone", spec: corev1.PodSpec{Affinity: required(zoneTerm("a"), corev1.NodeSelectorTerm{})}, key: labelZone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pinnedTo(&tt.spec, tt.key); got != tt.want {
				t.Errorf("pinnedTo() = %q, want %q", got, tt.want)
			}
		})
	}
}
