package cluster

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// TestMaxPods runs two Deployments on a machine of three pods, as a
// node's --max-pods bounds them: asking for more at the start fails naming
// the limit, and a scale past it leaves the pods at the limit with a
// FailedCreate warning instead of starting a process per replica asked.
func TestMaxPods(t *testing.T) {
	t.Run("at the start", func(t *testing.T) {
		cfg := testConfig(t, &Objects{Deployments: []*appsv1.Deployment{newTestDeployment("default", "a", 2), newTestDeployment("default", "b", 2)}})
		cfg.MaxPods = 3
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err == nil || !strings.Contains(err.Error(), "at most 3 pods") {
			t.Fatalf("Start = %v, want the limit named", err)
		}
		if s := c.Snapshot(); len(s.Pods) != 0 {
			t.Errorf("pods left after a failed Start: %s", describe(s))
		}
	})
	t.Run("scaled past it", func(t *testing.T) {
		cfg := testConfig(t, &Objects{Deployments: []*appsv1.Deployment{newTestDeployment("default", "a", 2), newTestDeployment("default", "b", 1)}})
		cfg.MaxPods = 3
		tc := startClusterWith(t, cfg)
		tc.waitReady("a", 2)
		tc.waitReady("b", 1)
		if err := tc.c.Scale("default", "b", 5); err != nil {
			t.Fatal(err)
		}
		s := tc.waitFor("a FailedCreate warning on deployment/b", func(s api.Snapshot) bool {
			return slices.ContainsFunc(s.Events, func(e api.Event) bool {
				return e.Type == "Warning" && e.Reason == "FailedCreate" && e.Object == "deployment/b" && strings.Contains(e.Message, "at most 3 pods")
			})
		})
		if len(s.Pods) != 3 {
			t.Errorf("%d pods, want the 3 the limit allows: %s", len(s.Pods), describe(s))
		}
		// Room made by scaling a down is taken by b.
		if err := tc.c.Scale("default", "a", 0); err != nil {
			t.Fatal(err)
		}
		tc.waitReady("b", 3)
	})
}
