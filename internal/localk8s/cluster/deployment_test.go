package cluster

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestRollingParams(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }
	tests := []struct {
		name                       string
		replicas                   int32
		surge, unavailable         *intstr.IntOrString
		wantSurge, wantUnavailable int
	}{
		{name: "defaults 25% of 4", replicas: 4, wantSurge: 1, wantUnavailable: 1},
		{name: "defaults 25% of 10: surge up, unavailable down", replicas: 10, wantSurge: 3, wantUnavailable: 2},
		{name: "defaults 25% of 1", replicas: 1, wantSurge: 1, wantUnavailable: 0},
		{name: "defaults of 0 replicas: both 0 means 1 unavailable", replicas: 0, wantSurge: 0, wantUnavailable: 1},
		{name: "ints", replicas: 5, surge: num(2), unavailable: num(1), wantSurge: 2, wantUnavailable: 1},
		{name: "ints larger than replicas", replicas: 2, surge: num(5), unavailable: num(3), wantSurge: 5, wantUnavailable: 3},
		{name: "both 0 ints mean 1 unavailable", replicas: 3, surge: num(0), unavailable: num(0), wantSurge: 0, wantUnavailable: 1},
		{name: "both 0% mean 1 unavailable", replicas: 3, surge: pct("0%"), unavailable: pct("0%"), wantSurge: 0, wantUnavailable: 1},
		{name: "10% of 3 rounds to 0 unavailable and 1 surge", replicas: 3, surge: pct("10%"), unavailable: pct("10%"), wantSurge: 1, wantUnavailable: 0},
		{name: "50% of 3", replicas: 3, surge: pct("50%"), unavailable: pct("50%"), wantSurge: 2, wantUnavailable: 1},
		{name: "100% surge, 0 unavailable", replicas: 3, surge: pct("100%"), unavailable: num(0), wantSurge: 3, wantUnavailable: 0},
		{name: "only maxUnavailable set keeps default surge", replicas: 8, unavailable: num(0), wantSurge: 2, wantUnavailable: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := newTestDeployment("default", "web", tt.replicas)
			if tt.surge != nil || tt.unavailable != nil {
				obj.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: tt.surge, MaxUnavailable: tt.unavailable}
			}
			d, err := newDeployment(obj)
			if err != nil {
				t.Fatal(err)
			}
			surge, unavailable := d.rollingParams()
			if surge != tt.wantSurge || unavailable != tt.wantUnavailable {
				t.Errorf("rollingParams() = surge %d, unavailable %d; want %d, %d", surge, unavailable, tt.wantSurge, tt.wantUnavailable)
			}
		})
	}
}

func TestNewDeploymentReplicasDefault(t *testing.T) {
	obj := newTestDeployment("", "web", 3)
	obj.Spec.Replicas = nil
	d, err := newDeployment(obj)
	if err != nil {
		t.Fatal(err)
	}
	if d.replicas != 1 || d.namespace != "default" {
		t.Errorf("replicas %d in %q, want 1 in default as the API server defaults them", d.replicas, d.namespace)
	}
}

func TestTemplateHash(t *testing.T) {
	tmpl := newTestDeployment("default", "web", 1).Spec.Template
	h := templateHash(tmpl)
	if len(h) != 10 || strings.Trim(h, safeAlphabet) != "" {
		t.Fatalf("templateHash = %q, want 10 characters of %q", h, safeAlphabet)
	}
	if again := templateHash(*tmpl.DeepCopy()); again != h {
		t.Errorf("templateHash of an equal template = %q, want %q", again, h)
	}
	// Each restart stamps a new time, hence a new revision.
	restarted := *tmpl.DeepCopy()
	restarted.Annotations = map[string]string{RestartedAtAnnotation: "2025-01-02T03:04:05Z"}
	r1 := templateHash(restarted)
	if r1 == h {
		t.Errorf("templateHash unchanged by the %s annotation", RestartedAtAnnotation)
	}
	restarted.Annotations[RestartedAtAnnotation] = "2025-01-02T03:04:06Z"
	if r2 := templateHash(restarted); r2 == r1 || r2 == h {
		t.Errorf("templateHash after a second restart = %q, want one differing from %q and %q", r2, r1, h)
	}
	changed := *tmpl.DeepCopy()
	changed.Spec.Containers[0].Image = "shoal.test/testpod:v2"
	if templateHash(changed) == h {
		t.Error("templateHash unchanged by a new image")
	}
}
