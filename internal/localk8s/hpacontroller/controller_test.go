package hpacontroller_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is the controlled time of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// events records what the controller emits.
type events struct {
	mu   sync.Mutex
	list []hpacontroller.Event
}

func (e *events) add(ev hpacontroller.Event) { e.mu.Lock(); e.list = append(e.list, ev); e.mu.Unlock() }

func (e *events) reasons() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Reason+" "+ev.Object+": "+ev.Message)
	}
	return out
}

func cpuHPA(name string, minR, maxR, target int32, behavior *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shoal"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: name, APIVersion: "apps/v1"},
			MinReplicas:    &minR,
			MaxReplicas:    maxR,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target},
				},
			}},
			Behavior: behavior,
		},
	}
}

// thumbnailerBehavior is deploy/base/thumbnailer/hpa.yaml's behavior.
func thumbnailerBehavior(t *testing.T) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	t.Helper()
	var b autoscalingv2.HorizontalPodAutoscalerBehavior
	err := yaml.UnmarshalStrict([]byte(`
scaleUp:
  stabilizationWindowSeconds: 0
  selectPolicy: Max
  policies: [{type: Percent, value: 100, periodSeconds: 15}, {type: Pods, value: 4, periodSeconds: 15}]
scaleDown:
  stabilizationWindowSeconds: 300
  selectPolicy: Min
  policies: [{type: Percent, value: 50, periodSeconds: 60}, {type: Pods, value: 2, periodSeconds: 60}]
`), &b)
	if err != nil {
		t.Fatal(err)
	}
	return &b
}

// TestCPUMatchesSimulate drives the controller with pods whose CPU time
// grows with a load curve and checks that every sync decides what
// autoscale.Simulate predicts for the same HPA, load and pod start-up.
func TestCPUMatchesSimulate(t *testing.T) {
	tests := []struct {
		name     string
		hpa      *autoscalingv2.HorizontalPodAutoscaler
		initial  int
		load     []autoscale.LoadPoint
		duration time.Duration
		// want, when set, checks the timeline itself.
		want func(final int32) bool
	}{
		{
			name: "step up, no behavior", hpa: cpuHPA("web", 1, 10, 70, nil), initial: 2,
			load:     []autoscale.LoadPoint{{At: 0, Value: 1.4}, {At: 30 * time.Second, Value: 6}},
			duration: 3 * time.Minute,
		},
		{
			name: "step up then down, thumbnailer behavior", hpa: cpuHPA("thumbnailer", 2, 10, 70, thumbnailerBehavior(t)), initial: 2,
			load: []autoscale.LoadPoint{
				{At: 0, Value: 1}, {At: 30 * time.Second, Value: 4.8}, {At: 4 * time.Minute, Value: 1.2},
			},
			duration: 12 * time.Minute,
		},
		{
			// behavior.scaleUp/scaleDown.tolerance (KEP-4951, GA in v1.37):
			// 75% of a 70% target is inside the default 10% but outside a
			// 1% scale-up tolerance, so 2 pods become 3; 40% is then inside
			// a 50% scale-down tolerance, so 3 stay.
			name: "per-direction tolerance", hpa: cpuHPA("api", 2, 10, 70, toleranceBehavior(t)), initial: 2,
			load:     []autoscale.LoadPoint{{At: 0, Value: 1.4}, {At: 30 * time.Second, Value: 1.5}, {At: 4 * time.Minute, Value: 1.2}},
			duration: 10 * time.Minute,
			want:     func(final int32) bool { return final == 3 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const sync, startup = 15 * time.Second, 30 * time.Second
			want, err := autoscale.Simulate(t.Context(), autoscale.Scenario{
				HPA: tt.hpa, InitialReplicas: int32(tt.initial), PodStartup: startup, SyncPeriod: sync,
				Duration: tt.duration, Load: tt.load,
			})
			if err != nil {
				t.Fatal(err)
			}
			clk := &clock{t: epoch.Add(-sync)}
			deps := newDeployments(clk.Now, startup, 1)
			deps.add("shoal", tt.hpa.Name, tt.initial, epoch.Add(-time.Hour))
			var ev events
			c := hpacontroller.New(hpacontroller.Config{Target: deps, Now: clk.Now, OnEvent: ev.add})
			if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{tt.hpa}, nil); err != nil {
				t.Fatal(err)
			}
			scenario := autoscale.Scenario{Load: tt.load}
			ctx := context.Background()
			// A first sync a period before time zero takes the CPU
			// samples that the simulation's first decision already has.
			if err := c.SyncOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if st := c.Status()[0]; st.MetricError == "" || st.Desired != int32(tt.initial) {
				t.Errorf("first sync without a CPU window: %+v, want a metric error and no change", st)
			}
			rescales := 0
			for _, w := range want {
				clk.Set(epoch.Add(w.Time))
				deps.burn("shoal", tt.hpa.Name, scenario.LoadAt(w.Time), sync)
				if err := c.SyncOnce(ctx); err != nil {
					t.Fatal(err)
				}
				st := c.Status()[0]
				if st.Desired != w.Desired {
					t.Fatalf("at %s (load %g): desired %d (%s, %s), simulation %d (%s, %s)",
						w.Time, w.Load, st.Desired, st.Metrics, st.Reason, w.Desired, w.Metric, w.Reason)
				}
				if got := deps.replicas("shoal", tt.hpa.Name); got != w.Desired {
					t.Fatalf("at %s: deployment has %d replicas, want %d", w.Time, got, w.Desired)
				}
				if wantText := "cpu: " + w.Metric + "/70%"; st.Metrics != wantText {
					t.Errorf("at %s: metrics %q, want %q", w.Time, st.Metrics, wantText)
				}
				if !st.LastScale.IsZero() && st.LastScale.Equal(clk.Now()) {
					rescales++
				}
			}
			if tt.want != nil && !tt.want(want[len(want)-1].Desired) {
				t.Errorf("final desired %d is not what the row asks for", want[len(want)-1].Desired)
			}
			evs := ev.reasons()
			if rescales == 0 || len(evs) != rescales {
				t.Fatalf("%d rescales, events %q", rescales, evs)
			}
			for _, e := range evs {
				if !strings.HasPrefix(e, "SuccessfulRescale hpa/"+tt.hpa.Name+": New size: ") || !strings.Contains(e, "; reason: ") {
					t.Errorf("event %q is not an upstream SuccessfulRescale", e)
				}
			}
			for _, e := range ev.list {
				if e.Namespace != "shoal" {
					t.Errorf("event %+v: namespace %q, want the HPA's %q", e, e.Namespace, "shoal")
				}
			}
			t.Logf("events: %q", evs)
		})
	}
}

// toleranceBehavior decodes, strictly as shoal up does, a behavior with
// v1.37's per-direction tolerances.
func toleranceBehavior(t *testing.T) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	t.Helper()
	var b autoscalingv2.HorizontalPodAutoscalerBehavior
	err := yaml.UnmarshalStrict([]byte(`
scaleUp:
  tolerance: 10m
scaleDown:
  tolerance: 500m
  stabilizationWindowSeconds: 60
`), &b)
	if err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestTargetErrors(t *testing.T) {
	clk := &clock{t: epoch}
	deps := newDeployments(clk.Now, 0, 1)
	deps.add("shoal", "web", 2, epoch.Add(-time.Hour))
	var ev events
	c := hpacontroller.New(hpacontroller.Config{Target: deps, Now: clk.Now, OnEvent: ev.add})
	if err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{cpuHPA("web", 1, 5, 50, nil)}, nil); err != nil {
		t.Fatal(err)
	}
	deps.failPod = errors.New("apiserver down")
	err := c.SyncOnce(context.Background())
	if !errors.Is(err, hpacontroller.ErrTarget) {
		t.Fatalf("SyncOnce = %v, want ErrTarget", err)
	}
	st := c.Status()[0]
	if st.Reason != "FailedGetScale" || !strings.Contains(st.MetricError, "apiserver down") {
		t.Errorf("status = %+v", st)
	}
	if evs := ev.reasons(); len(evs) != 1 || !strings.HasPrefix(evs[0], "FailedGetScale hpa/web") {
		t.Errorf("events = %q", evs)
	}
}

func TestSetValidates(t *testing.T) {
	c := hpacontroller.New(hpacontroller.Config{Target: newDeployments(time.Now, 0, 1)})
	good := cpuHPA("web", 1, 5, 50, nil)
	badMax := cpuHPA("bad-max", 1, 0, 50, nil)
	noTarget := cpuHPA("no-target", 1, 5, 50, nil)
	noTarget.Spec.ScaleTargetRef.Name = ""
	statefulSet := cpuHPA("sts", 1, 5, 50, nil)
	statefulSet.Spec.ScaleTargetRef.Kind = "StatefulSet"
	cpuTrigger := &autoscale.ScaledObject{ObjectMeta: metav1.ObjectMeta{Name: "cpu"}, Spec: autoscale.ScaledObjectSpec{
		Triggers: []autoscale.ScaleTrigger{{Type: "cpu", Metadata: map[string]string{"value": "70"}}},
	}}
	err := c.Set([]*autoscalingv2.HorizontalPodAutoscaler{good, badMax, noTarget, statefulSet, good}, []*autoscale.ScaledObject{cpuTrigger})
	if err == nil {
		t.Fatal("Set accepted invalid autoscalers")
	}
	for _, want := range []string{"bad-max", "no-target", "StatefulSet", "listed twice", "ScaledObject/default/cpu"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	got := c.Status()
	if len(got) != 1 || got[0].Name != "web" || got[0].Target != "deployment/web" || got[0].Min != 1 || got[0].Max != 5 {
		t.Errorf("Status = %+v, want only the valid HPA", got)
	}
}

func TestRun(t *testing.T) {
	deps := newDeployments(time.Now, 0, 1)
	deps.add("shoal", "web", 2, time.Now().Add(-time.Hour))
	c := hpacontroller.New(hpacontroller.Config{Target: deps, SyncPeriod: 10 * time.Millisecond})
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
	for c.Status()[0].LastSync.IsZero() {
		select {
		case <-ctx.Done():
			t.Fatal("Run did not sync")
		case <-time.After(time.Millisecond):
		}
	}
	first := c.Status()[0].LastSync
	for !c.Status()[0].LastSync.After(first) {
		select {
		case <-ctx.Done():
			t.Fatal("Run did not sync again")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after its context ended")
	}
}
