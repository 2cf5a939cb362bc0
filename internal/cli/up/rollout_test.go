package up_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// TestRollingRestartUnderLoadLosesNothing runs the deploy kit's local
// overlay, sends thumbnails through the Ingress and the gallery at a steady
// rate, and restarts both Deployments while it does: every request must be
// answered 2xx, by old pods before and new pods after, and every pod must
// have been replaced.
func TestRollingRestartUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	n := netsOf("127.0.31.0/24", "127.0.32.0/24")
	up := startUp(t, localOptions(t, n))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	begin := time.Now()
	before, err := up.api.waitFor(ctx, "every deployment ready", allReady)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d pods ready %s after start", len(before.Pods), time.Since(begin).Round(time.Millisecond))

	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	cookie, err := login(ctx, client, up.info.Ingress, galleryHost, "ann")
	if err != nil {
		t.Fatal(err)
	}
	load := startLoad(ctx, t, up.info.Ingress, cookie, 20, testPNGs(t, 16))
	if err := load.waitRuns(ctx, 1); err != nil {
		t.Fatal(err)
	}

	rolled := []string{"thumbnailer", "gallery"}
	old := map[string]rollout{}
	for _, name := range rolled {
		d, ok := deploymentOf(before, name)
		if !ok {
			t.Fatalf("no deployment %s in the overlay:\n%s", name, describe(before))
		}
		r := rollout{revision: d.Revision}
		for _, p := range podsOf(before, name) {
			r.pods = append(r.pods, p.Name)
		}
		old[name] = r
	}
	restartAt := time.Now()
	// Both rollouts overlap: the gallery's pods are replaced while the
	// thumbnailers it balances over are.
	for _, name := range rolled {
		if err := up.api.restart(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	after, err := up.api.waitFor(ctx, "both rollouts to finish", func(s api.Snapshot) bool {
		for _, name := range rolled {
			if !old[name].finished(s, name) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	rolloutTime := time.Since(restartAt)
	// Traffic on the new pods alone for a while.
	if err := load.waitRuns(ctx, load.runs.Load()+2); err != nil {
		t.Fatal(err)
	}
	res, err := load.finish()
	if err != nil {
		t.Fatal(err)
	}
	gallery, upstream := load.b.served()
	t.Logf("rollouts of %v took %s; load: %s", rolled, rolloutTime.Round(time.Millisecond), res)
	t.Logf("served by gallery pods: %s", sortedKeys(gallery))
	t.Logf("served by thumbnailer pods: %s", sortedKeys(upstream))
	res.check(t)
	if t.Failed() {
		for k, n := range load.b.failures() {
			t.Logf("  %d× %s", n, k)
		}
	}

	for _, name := range rolled {
		o := old[name]
		d, _ := deploymentOf(after, name)
		if d.Revision == o.revision {
			t.Errorf("deployment %s still at revision %s", name, d.Revision)
		}
		var fresh []string
		for _, p := range podsOf(after, name) {
			fresh = append(fresh, p.Name)
		}
		counts := gallery
		if name == "thumbnailer" {
			counts = upstream
		}
		// The load saw the hand-over: answers from old and from new pods.
		if !servedByAny(counts, o.pods) || !servedByAny(counts, fresh) {
			t.Errorf("%s: want answers from old pods %v and new pods %v, got %s", name, o.pods, fresh, sortedKeys(counts))
		}
	}
}

// rollout is a Deployment's state before a restart.
type rollout struct {
	revision string
	pods     []string
}

// finished holds once the Deployment runs its replicas on a new revision,
// all ready, and none of the pods from before remains, terminating or not.
func (r rollout) finished(s api.Snapshot, name string) bool {
	d, ok := deploymentOf(s, name)
	if !ok || d.Revision == r.revision || d.Replicas == 0 ||
		d.Ready != d.Replicas || d.Updated != d.Replicas || d.Current != d.Replicas {
		return false
	}
	for _, p := range podsOf(s, name) {
		if p.Revision != d.Revision || slices.Contains(r.pods, p.Name) || !p.Ready {
			return false
		}
	}
	return true
}

func servedByAny(counts map[string]int64, pods []string) bool {
	for _, p := range pods {
		if counts[p] > 0 {
			return true
		}
	}
	return false
}
