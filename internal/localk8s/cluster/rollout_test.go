package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// rollout restarts deployment web and samples the snapshot until every
// pod is of the new revision and ready, calling check on every sample.
// It returns the pods before and after and whether some sample showed
// pods of both revisions.
func (tc *testCluster) rollout(replicas int, check func(s api.Snapshot, oldRev, newRev string)) (before, after []api.PodInfo, mixed bool) {
	tc.t.Helper()
	s := tc.waitReady("web", replicas)
	before = podsOf(s, "web")
	oldRev := deploymentInfo(tc.t, s, "web").Revision
	if err := tc.c.Restart("default", "web"); err != nil {
		tc.t.Fatal(err)
	}
	newRev := deploymentInfo(tc.t, tc.c.Snapshot(), "web").Revision
	if newRev == oldRev {
		tc.t.Fatalf("Restart left the revision at %s", oldRev)
	}
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for samples := 0; ; samples++ {
		s := tc.c.Snapshot()
		check(s, oldRev, newRev)
		if tc.t.Failed() {
			tc.t.FailNow()
		}
		ps := podsOf(s, "web")
		var old, cur int
		for _, p := range ps {
			switch p.Revision {
			case oldRev:
				old++
			case newRev:
				cur++
			}
		}
		mixed = mixed || (old > 0 && cur > 0)
		d := deploymentInfo(tc.t, s, "web")
		if old == 0 && len(ps) == replicas && d.Updated == int32(replicas) && d.Ready == int32(replicas) &&
			len(serviceInfo(tc.t, s, "web").Endpoints) == replicas {
			tc.t.Logf("rollout done after %d samples", samples)
			return before, ps, mixed
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("rollout did not finish\nsnapshot: %s", describe(s))
		}
		<-tick.C
	}
}

func TestRollingUpdate(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }
	tests := []struct {
		name               string
		replicas           int32
		rolling            *appsv1.RollingUpdateDeployment
		surge, unavailable int
	}{
		{name: "surge 1, unavailable 0", replicas: 3, rolling: &appsv1.RollingUpdateDeployment{MaxSurge: num(1), MaxUnavailable: num(0)}, surge: 1, unavailable: 0},
		{name: "defaults 25% of 4", replicas: 4, surge: 1, unavailable: 1},
		{name: "surge 0, unavailable 50% of 3", replicas: 3, rolling: &appsv1.RollingUpdateDeployment{MaxSurge: pct("0%"), MaxUnavailable: pct("50%")}, surge: 0, unavailable: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDeployment("default", "web", tt.replicas)
			d.Spec.Strategy.RollingUpdate = tt.rolling
			drainDelay(d, "300ms")
			tc := startCluster(t, &Objects{
				Deployments: []*appsv1.Deployment{d},
				Services:    []*corev1.Service{newTestService("default", "web", "web", false)},
			})
			n := int(tt.replicas)
			var maxPods, minReady = 0, n
			before, after, mixed := tc.rollout(n, func(s api.Snapshot, oldRev, newRev string) {
				live, ready := 0, 0
				for _, p := range podsOf(s, "web") {
					if p.Revision != oldRev && p.Revision != newRev {
						t.Errorf("pod %s of revision %s, neither %s nor %s", p.Name, p.Revision, oldRev, newRev)
					}
					if p.Terminating {
						continue // as in Kubernetes, terminating pods count toward neither bound
					}
					live++
					if p.Ready {
						ready++
					}
				}
				maxPods, minReady = max(maxPods, live), min(minReady, ready)
				if live > n+tt.surge {
					t.Errorf("%d pods, more than %d replicas + maxSurge %d\nsnapshot: %s", live, n, tt.surge, describe(s))
				}
				if ready < n-tt.unavailable {
					t.Errorf("%d ready pods, fewer than %d replicas - maxUnavailable %d\nsnapshot: %s", ready, n, tt.unavailable, describe(s))
				}
			})
			t.Logf("at most %d pods, at least %d ready", maxPods, minReady)
			if !mixed {
				t.Error("no sample showed old and new pods together: not a rolling update")
			}
			for _, p := range after {
				if slices.Contains(names(before), p.Name) {
					t.Errorf("pod %s survived the restart", p.Name)
				}
			}
			for _, pid := range pids(before) {
				if alive(pid) {
					t.Errorf("process %d of an old pod is still running", pid)
				}
			}
			// The Service front door only reaches new pods.
			s := tc.c.Snapshot()
			seen := tc.servedBy("http://"+serviceInfo(t, s, "web").ClusterIP+"/", names(after), 10*n)
			if len(seen) < 2 {
				t.Errorf("new connections served by %v only", seen)
			}
			restarted := false
			for _, e := range s.Events {
				restarted = restarted || (e.Reason == "RolloutRestart" && e.Object == "deployment/web")
			}
			if !restarted {
				t.Error("no RolloutRestart event")
			}
		})
	}
}

func TestRecreate(t *testing.T) {
	d := newTestDeployment("default", "web", 2)
	d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	drainDelay(d, "500ms")
	tc := startCluster(t, &Objects{
		Deployments: []*appsv1.Deployment{d},
		Services:    []*corev1.Service{newTestService("default", "web", "web", false)},
	})
	allTerminating := false
	before, _, _ := tc.rollout(2, func(s api.Snapshot, oldRev, newRev string) {
		var old, cur []string
		terminating := 0
		for _, p := range podsOf(s, "web") {
			if p.Revision == oldRev {
				old = append(old, fmt.Sprintf("%s(terminating=%v)", p.Name, p.Terminating))
				if p.Terminating {
					terminating++
				}
			} else {
				cur = append(cur, p.Name)
			}
		}
		allTerminating = allTerminating || terminating == 2
		// Old pods leave the snapshot only once their processes have
		// exited, so no new pod may exist while one is listed.
		if len(old) > 0 && len(cur) > 0 {
			t.Errorf("new pods %q while old pods %q exist\nsnapshot: %s", cur, old, describe(s))
		}
	})
	// The old pods drain for 500ms after SIGTERM: long enough for a
	// sample to see both of them terminating at once.
	if !allTerminating {
		t.Error("no sample showed every old pod terminating at once")
	}
	for _, pid := range pids(before) {
		if alive(pid) {
			t.Errorf("process %d of an old pod is still running", pid)
		}
	}
}

// drainDelay makes d's pods keep serving for delay after SIGTERM.
func drainDelay(d *appsv1.Deployment, delay string) {
	c := &d.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: "DRAIN_DELAY", Value: delay})
}
