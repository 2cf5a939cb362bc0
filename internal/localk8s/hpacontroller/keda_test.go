package hpacontroller_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
)

// queries answers trigger queries with values the test sets, and records
// which queries were asked.
type queries struct {
	mu     sync.Mutex
	values map[string]float64
	err    error
	asked  []string
}

var _ hpacontroller.Metrics = (*queries)(nil)

func (q *queries) PodsMetric(context.Context, string, []string, string) (map[string]float64, error) {
	return nil, errors.New("no pods metrics in this test")
}

func (q *queries) Query(_ context.Context, query string) (float64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked = append(q.asked, query)
	if q.err != nil {
		return 0, q.err
	}
	v, ok := q.values[query]
	if !ok {
		return 0, errors.New("unknown query " + query)
	}
	return v, nil
}

func (q *queries) set(query string, v float64, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.values[query], q.err, q.asked = v, err, nil
}

// deployKitScaledObjects decodes deploy/overlays/keda/scaledobjects.yaml.
func deployKitScaledObjects(t *testing.T) map[string]*autoscale.ScaledObject {
	t.Helper()
	data, err := os.ReadFile("../../../deploy/overlays/keda/scaledobjects.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*autoscale.ScaledObject{}
	for doc := range bytes.SplitSeq(data, []byte("\n---\n")) {
		var so autoscale.ScaledObject
		if err := yaml.UnmarshalStrict(doc, &so); err != nil {
			t.Fatal(err)
		}
		out[so.Name] = &so
	}
	if len(out) != 2 {
		t.Fatalf("deploy kit has ScaledObjects %v, want gallery and thumbnailer", out)
	}
	return out
}

// TestScaledObjectCPUAndPrometheus reconciles the deploy kit's
// thumbnailer ScaledObject (cpu at 70% utilization next to a prometheus
// trigger on requests in flight): the cpu trigger is read from the pods'
// CPU usage, only the prometheus trigger is queried, and the larger
// proposal wins.
func TestScaledObjectCPUAndPrometheus(t *testing.T) {
	sos := deployKitScaledObjects(t)
	so := sos["thumbnailer"]
	inflight := so.Spec.Triggers[1].Metadata["query"]
	tests := []struct {
		name     string
		cpu      float64 // cores used over the window by the 2 pods together
		inflight float64
		queryErr error
		want     int32
		metrics  string
	}{
		{name: "cpu above target, queue low", cpu: 2.8, inflight: 2, want: 4,
			metrics: "cpu: 140%/70%, s1-prometheus: 1/4 (avg)"},
		{name: "queue above target, cpu low", cpu: 0.7, inflight: 16, want: 4,
			metrics: "cpu: 35%/70%, s1-prometheus: 8/4 (avg)"},
		{name: "both on target", cpu: 1.4, inflight: 8, want: 2,
			metrics: "cpu: 70%/70%, s1-prometheus: 4/4 (avg)"},
		{name: "cpu wants three, queue wants five", cpu: 2, inflight: 18, want: 4,
			metrics: "cpu: 100%/70%, s1-prometheus: 9/4 (avg)"},
		{name: "prometheus down, cpu still scales up", cpu: 2.8, queryErr: errors.New("prometheus unreachable"), want: 4,
			metrics: "cpu: 140%/70%, s1-prometheus: <unknown>/4 (avg)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const sync = 15 * time.Second
			clk := &clock{t: epoch.Add(-sync)}
			deps := newDeployments(clk.Now, 30*time.Second, 1)
			deps.add("default", "thumbnailer", 2, epoch.Add(-time.Hour))
			q := &queries{values: map[string]float64{}}
			var ev events
			c := hpacontroller.New(hpacontroller.Config{Target: deps, Metrics: q, Now: clk.Now, OnEvent: ev.add})
			if err := c.Set(nil, []*autoscale.ScaledObject{so}); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// The first sync takes the CPU samples; the queue is on target,
			// so nothing changes yet.
			q.set(inflight, 8, nil)
			if err := c.SyncOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if st := c.Status()[0]; st.Desired != 2 || st.Metrics != "cpu: <unknown>/70%, s1-prometheus: 4/4 (avg)" {
				t.Fatalf("first sync: %+v", st)
			}

			deps.burn("default", "thumbnailer", tt.cpu, sync)
			clk.Set(epoch)
			q.set(inflight, tt.inflight, tt.queryErr)
			if err := c.SyncOnce(ctx); err != nil {
				t.Fatal(err)
			}
			st := c.Status()[0]
			if st.Kind != api.KindScaledObject || st.Name != "thumbnailer" || st.Min != 2 || st.Max != 10 {
				t.Errorf("status = %+v", st)
			}
			if st.Desired != tt.want || st.Metrics != tt.metrics {
				t.Errorf("desired %d, metrics %q (%s); want %d, %q", st.Desired, st.Metrics, st.Reason, tt.want, tt.metrics)
			}
			if got := deps.replicas("default", "thumbnailer"); got != tt.want {
				t.Errorf("deployment has %d replicas, want %d", got, tt.want)
			}
			if !slices.Equal(q.asked, []string{inflight}) {
				t.Errorf("queries asked %q, want only the prometheus trigger's", q.asked)
			}
			if tt.queryErr != nil {
				if !strings.Contains(st.MetricError, "prometheus unreachable") {
					t.Errorf("metric error %q does not name the failed query", st.MetricError)
				}
			} else if st.MetricError != "" {
				t.Errorf("metric error %q", st.MetricError)
			}
			for _, e := range ev.reasons() {
				if !strings.HasPrefix(e, "SuccessfulRescale hpa/keda-hpa-thumbnailer: New size: 4; reason: ") {
					t.Errorf("event %q, want only the KEDA HPA's rescale to 4", e)
				}
			}
		})
	}
}

// TestDeployKitScaledObjectsAccepted sets the deploy kit's ScaledObjects
// as `shoal up -k deploy/overlays/keda` does.
func TestDeployKitScaledObjectsAccepted(t *testing.T) {
	sos := deployKitScaledObjects(t)
	c := hpacontroller.New(hpacontroller.Config{Target: newDeployments(time.Now, 0, 1)})
	if err := c.Set(nil, []*autoscale.ScaledObject{sos["gallery"], sos["thumbnailer"]}); err != nil {
		t.Fatalf("Set = %v", err)
	}
	var names []string
	for _, st := range c.Status() {
		names = append(names, st.Name+" "+st.Target)
	}
	if want := []string{"gallery deployment/gallery", "thumbnailer deployment/thumbnailer"}; !slices.Equal(names, want) {
		t.Errorf("autoscalers %q, want %q", names, want)
	}
}

// TestScaledObjectCPUOnly checks that cpu-only ScaledObjects need a
// minimum above zero, and with one are always active: the HPA decides.
func TestScaledObjectCPUOnly(t *testing.T) {
	cpuOnly := func(name string, minR int32) *autoscale.ScaledObject {
		so := deployKitScaledObjects(t)["thumbnailer"]
		so.Name, so.Spec.MinReplicaCount, so.Spec.Fallback = name, &minR, nil
		so.Spec.Triggers = so.Spec.Triggers[:1]
		return so
	}
	clk := &clock{t: epoch.Add(-15 * time.Second)}
	deps := newDeployments(clk.Now, 30*time.Second, 1)
	deps.add("default", "thumbnailer", 3, epoch.Add(-time.Hour))
	c := hpacontroller.New(hpacontroller.Config{Target: deps, Now: clk.Now})
	err := c.Set(nil, []*autoscale.ScaledObject{cpuOnly("to-zero", 0), cpuOnly("cpu", 1)})
	if err == nil || !strings.Contains(err.Error(), "ScaledObject/default/to-zero") || !strings.Contains(err.Error(), "only cpu/memory triggers and minReplicaCount 0") {
		t.Fatalf("Set = %v, want the cpu-only object with minReplicaCount 0 refused", err)
	}
	if err := c.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 3 pods at 35% for a 70% target: the HPA halves them; no metrics
	// source is needed for a cpu trigger.
	deps.burn("default", "thumbnailer", 1.05, 15*time.Second)
	clk.Set(epoch)
	if err := c.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if len(st) != 1 || st[0].Name != "cpu" || st[0].Metrics != "cpu: 35%/70%" || st[0].MetricError != "" {
		t.Fatalf("status = %+v", st)
	}
	// The scale-down stabilization window of the deploy kit's behavior
	// holds the count.
	if st[0].Desired != 3 || st[0].Reason != "ScaleDownStabilized" {
		t.Errorf("desired %d (%s), want 3 held by ScaleDownStabilized", st[0].Desired, st[0].Reason)
	}
}
