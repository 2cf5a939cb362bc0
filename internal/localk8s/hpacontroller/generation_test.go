package hpacontroller_test

import (
	"context"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
)

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

func lastSync(c *hpacontroller.Controller, name string) time.Time {
	for _, s := range c.Status() {
		if s.Name == name {
			return s.LastSync
		}
	}
	return time.Time{}
}

// TestRunReconcilesChangesAtOnce follows Kubernetes v1.37's controller
// (upstream's TestEnqueueHPAAddsImmediately and TestUpdateHPAEnqueueBehavior):
// with a sync period of an hour, an autoscaler Set adds is reconciled at
// once, and so is a changed spec while HPAGeneration is on; with the gate
// off the change waits for the next period.
func TestRunReconcilesChangesAtOnce(t *testing.T) {
	tests := []struct {
		name  string
		gates map[string]bool
		want  int32 // web's replicas once the added autoscaler has synced
	}{
		{name: "HPAGeneration on (v1.37 default)", want: 4},
		{name: "HPAGeneration off", gates: map[string]bool{autoscale.GateGeneration: false}, want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deps := newDeployments(time.Now, 0, 1)
			deps.add("shoal", "web", 2, time.Now().Add(-time.Hour))
			deps.add("shoal", "zz-worker", 1, time.Now().Add(-time.Hour))
			c := hpacontroller.New(hpacontroller.Config{Target: deps, SyncPeriod: time.Hour,
				Autoscale: autoscale.Config{FeatureGates: tc.gates}})
			web := cpuHPA("web", 1, 5, 50, nil)
			if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{web}, nil); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.Run(ctx)
			}()
			defer func() {
				cancel()
				<-done
			}()
			waitFor(ctx, t, "the first sync", func() bool { return !lastSync(c, "web").IsZero() })

			// minReplicas 4 above the current 2 scales without metrics.
			raised := cpuHPA("web", 4, 5, 50, nil)
			if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{raised}, nil); err != nil {
				t.Fatal(err)
			}
			// A new autoscaler is always reconciled at once; its key sorts
			// after web's, so by its first sync a pending web has synced.
			worker := cpuHPA("zz-worker", 1, 3, 50, nil)
			if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{raised, worker}, nil); err != nil {
				t.Fatal(err)
			}
			waitFor(ctx, t, "the added autoscaler's sync", func() bool { return !lastSync(c, "zz-worker").IsZero() })
			if got := deps.replicas("shoal", "web"); got != tc.want {
				t.Errorf("web has %d replicas after the change, want %d", got, tc.want)
			}
		})
	}
}

// TestSetUnchangedSpecIsNotPending: Set with the same spec (upstream, a
// status-only update, which keeps the generation) does not reconcile out
// of turn.
func TestSetUnchangedSpecIsNotPending(t *testing.T) {
	deps := newDeployments(time.Now, 0, 1)
	deps.add("shoal", "web", 2, time.Now().Add(-time.Hour))
	deps.add("shoal", "zz", 1, time.Now().Add(-time.Hour))
	clk := &clock{t: epoch}
	c := hpacontroller.New(hpacontroller.Config{Target: deps, SyncPeriod: time.Hour, Now: clk.Now})
	if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{cpuHPA("web", 1, 5, 50, nil)}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(ctx, t, "the first sync", func() bool { return lastSync(c, "web").Equal(epoch) })
	clk.Set(epoch.Add(time.Minute))
	same := cpuHPA("web", 1, 5, 50, nil)
	same.Status.CurrentReplicas = 2
	// zz is new, so reconciled at once, after web (key order) were web
	// pending too.
	if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{same, cpuHPA("zz", 1, 5, 50, nil)}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "zz's sync", func() bool { return !lastSync(c, "zz").IsZero() })
	if got := lastSync(c, "web"); !got.Equal(epoch) {
		t.Errorf("web synced again at %v after a Set that kept its spec; want only its first sync at %v", got, epoch)
	}
}
