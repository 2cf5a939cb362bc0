//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"
)

// The autoscaling twin: each curve of twinCurves drives a real Deployment
// of labecho under (1) a CPU HPA, (2) a Pods-metric HPA on
// http_requests_in_flight through prometheus-adapter and (3) a KEDA
// ScaledObject on the same series through Prometheus, the three in
// parallel namespaces (only the CPU case burns CPU, at most 200m). The
// real controller's every status write and SuccessfulRescale event is
// recorded, with the pods' start-up and the metric pipeline's readings;
// then `shoal hpa simulate` (autoscale.Simulate) runs the same curve with
// the sync phase, pod start-up and metric lag measured in that run, and
// the two are compared decision by decision (compareDecisions).
//
// The experiment takes about 20 minutes with the three autoscalers of a
// curve side by side (go test -parallel 3; the default is GOMAXPROCS, 2
// here) and needs the labecho image with
// /wait and /metrics, docker.io/local/labecho:twin, which `make -C lab
// twin` builds before it runs this test with SHOAL_LAB_TWIN=1. Without
// that variable the test is skipped: it is an experiment with its own
// target, not part of the CI e2e run.

const twinImage = "docker.io/local/labecho:twin"

// twinSync is the lab controller's --horizontal-pod-autoscaler-sync-period.
const twinSync = 5 * time.Second

// twinWarmup is how long the initial load runs before a curve starts, so
// that every pipeline has a steady reading of it.
const twinWarmup = 40 * time.Second

// twinAutoscaler is one of the three autoscalers: its manifest, its units
// and how the twin reads its metric.
type twinAutoscaler struct {
	name string
	// unit is the load of one pod's worth (the target per pod), quantum
	// the step the driver can make.
	unit, quantum float64
	// manifest is the autoscaler's object; spec the scenario's key and
	// object for `shoal hpa simulate`.
	manifest, specKey string
	// hpaName is the HPA the controller decides with.
	hpaName string
	// resolution and window of the metric pipeline (metrics-server's
	// --metric-resolution and window; Prometheus' scrape interval).
	resolution, window time.Duration
}

const twinBehavior = `{scaleDown: {stabilizationWindowSeconds: 30}}`

func twinAutoscalers() []twinAutoscaler {
	return []twinAutoscaler{
		{name: "cpu", unit: 50, quantum: 1, specKey: "hpa", hpaName: "echo", resolution: 15 * time.Second, window: 15 * time.Second,
			manifest: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: echo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: echo}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior: ` + twinBehavior + "\n"},
		{name: "pods", unit: 2, quantum: 1, specKey: "hpa", hpaName: "echo", resolution: 5 * time.Second,
			manifest: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: echo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: echo}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Pods
    pods:
      metric: {name: http_requests_in_flight}
      target: {type: AverageValue, averageValue: "2"}
  behavior: ` + twinBehavior + "\n"},
		{name: "keda", unit: 2, quantum: 1, specKey: "scaledObject", hpaName: "keda-hpa-echo", resolution: 5 * time.Second,
			manifest: `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: echo}
spec:
  scaleTargetRef: {name: echo}
  minReplicaCount: 1
  maxReplicaCount: 4
  pollingInterval: 5
  cooldownPeriod: 30
  advanced:
    horizontalPodAutoscalerConfig:
      behavior: ` + twinBehavior + `
  triggers:
  - type: prometheus
    metadata:
      serverAddress: http://10.199.0.1:19090
      query: sum(http_requests_in_flight{namespace="@NS@"})
      threshold: "2"
`},
	}
}

const twinDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata:
      labels: {app: echo}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "8080", prometheus.io/path: /metrics}
    spec:
      terminationGracePeriodSeconds: 10
      automountServiceAccountToken: false
      enableServiceLinks: false
      containers:
      - name: echo
        image: ` + twinImage + `
        imagePullPolicy: Never
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: DRAIN_DELAY, value: 1s}
        # The lab's Prometheus scrapes container ports named admin.
        ports: [{name: admin, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /readyz, port: admin}
          periodSeconds: 1
          failureThreshold: 1
        resources:
          requests: {cpu: 100m, memory: 16Mi}
          limits: {cpu: 400m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: admin}]
`

// twinRecord is everything one run recorded, relative to the curve's
// start (t0).
type twinRecord struct {
	Curve, Autoscaler string
	T0                time.Time
	Steps             []loadStep
	// Writes are the HPA status writes seen on the watch: time, desired
	// replicas, and the metric and conditions for the log.
	Writes  []twinWrite
	Events  []string
	Startup []time.Duration // per pod made during the run: creation to Ready
	// Readings are the metric pipeline's total over time: the CPU of the
	// pods from the metrics API, or the in-flight sum from Prometheus.
	Readings []sample
	// CPU holds the metrics API's readings for the CPU autoscaler, with
	// their measurement times.
	CPU     []cpuReading
	Initial int32
}

// cpuReading is one poll of the metrics API: when, the pods' total CPU
// (millicores), and the newest sample's measurement time and window.
type cpuReading struct {
	At, Measured, Window time.Duration
	Value                float64
}

type twinWrite struct {
	At         time.Duration
	Desired    int32
	Current    int32
	Metric     string
	Conditions string
}

// twinResult is one run's figures.
type twinResult struct {
	Curve, Autoscaler string
	Phase, Period     time.Duration
	Startup           time.Duration
	Model             metricModel
	FitRMSE           float64
	// Gain is the ratio of the pods' CPU to the driven burn during the
	// warm-up (see cpuGain).
	Gain               float64
	Writes, Rescales   int
	Modelled, Recorded comparison
}

func TestTwin(t *testing.T) {
	if os.Getenv("SHOAL_LAB_TWIN") != "1" {
		t.Skip("the autoscaling twin is a 20-minute experiment with its own target: make -C lab twin (sets SHOAL_LAB_TWIN=1)")
	}
	l := newLab(t)
	shoal := os.Getenv("LAB_SHOAL") // built once by e2e.sh
	if shoal == "" {
		shoal = filepath.Join(t.TempDir(), "shoal")
		build := exec.Command("go", "build", "-o", shoal, "./cmd/shoal")
		build.Dir = l.repo
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build shoal: %v\n%s", err, out)
		}
	}
	outDir := envOr("SHOAL_TWIN_OUT", filepath.Join(os.TempDir(), "shoal-twin"))
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	curves := twinCurves()
	if only := os.Getenv("SHOAL_TWIN_CURVES"); only != "" {
		var keep []twinCurve
		for _, c := range curves {
			if strings.Contains(","+only+",", ","+c.Name+",") {
				keep = append(keep, c)
			}
		}
		curves = keep
	}
	var (
		mu      sync.Mutex
		results []twinResult
	)
	for _, c := range curves {
		t.Run(c.Name, func(t *testing.T) {
			for _, a := range twinAutoscalers() {
				t.Run(a.name, func(t *testing.T) {
					t.Parallel()
					rec := runTwinCurve(t, l, c, a)
					raw, _ := json.MarshalIndent(rec, "", " ")
					if err := os.WriteFile(filepath.Join(outDir, c.Name+"-"+a.name+".json"), raw, 0o644); err != nil {
						t.Errorf("write record: %v", err)
					}
					res := twinCompare(t, shoal, outDir, rec, c, a)
					mu.Lock()
					results = append(results, res)
					mu.Unlock()
				})
			}
		})
	}
	sort.Slice(results, func(i, j int) bool {
		if results[i].Curve != results[j].Curve {
			return results[i].Curve < results[j].Curve
		}
		return results[i].Autoscaler < results[j].Autoscaler
	})
	table := twinTable(results)
	t.Logf("twin against the real controller:\n%s", table)
	if err := os.WriteFile(filepath.Join(outDir, "table.md"), []byte(table), 0o644); err != nil {
		t.Errorf("write table: %v", err)
	}
	for _, r := range results {
		if r.Modelled.EqualShare() < 0.95 || r.Modelled.Worse > 0 {
			t.Errorf("%s/%s: the twin on modelled metrics matched %d of %d decisions at the same sync, %d within one, %d worse (%v): want at least 95%% and none worse",
				r.Curve, r.Autoscaler, r.Modelled.Equal, r.Modelled.Decisions, r.Modelled.WithinOne, r.Modelled.Worse, r.Modelled.Misses)
		}
	}
}

// TestTwinReplay runs the twin again on the records a TestTwin run left
// in SHOAL_TWIN_RECORDS (its SHOAL_TWIN_OUT), without the lab: the real
// decisions are recorded once, the twin's model can change after. Skipped
// without that variable.
func TestTwinReplay(t *testing.T) {
	dir := os.Getenv("SHOAL_TWIN_RECORDS")
	if dir == "" {
		t.Skip("set SHOAL_TWIN_RECORDS to the output folder of a TestTwin run (make -C lab twin)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	shoal := os.Getenv("LAB_SHOAL") // a built shoal, as e2e.sh passes
	if shoal == "" {
		shoal = filepath.Join(t.TempDir(), "shoal")
		build := exec.Command("go", "build", "-o", shoal, "./cmd/shoal")
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build shoal: %v\n%s", err, out)
		}
	}
	out := t.TempDir()
	var results []twinResult
	for _, c := range twinCurves() {
		for _, a := range twinAutoscalers() {
			raw, err := os.ReadFile(filepath.Join(dir, c.Name+"-"+a.name+".json"))
			if err != nil {
				continue
			}
			var rec twinRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatalf("%s-%s: %v", c.Name, a.name, err)
			}
			results = append(results, twinCompare(t, shoal, out, rec, c, a))
		}
	}
	if len(results) == 0 {
		t.Fatalf("no records in %s", dir)
	}
	t.Logf("twin against the recorded controller:\n%s", twinTable(results))
}

// runTwinCurve deploys echo and the autoscaler in a fresh namespace, runs
// the warm-up and the curve, and returns what the controller did.
func runTwinCurve(t *testing.T, l *lab, c twinCurve, a twinAutoscaler) twinRecord {
	ns := l.namespace(t, "twin-"+a.name)
	ctx, cancel := context.WithTimeout(context.Background(), twinWarmup+c.Duration+5*time.Minute)
	defer cancel()
	if _, err := l.kubectl(ctx, []byte(twinDeployment), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply echo: %v", err)
	}
	if err := waitDeploymentReady(ctx, l, ns, "echo"); err != nil {
		t.Fatalf("echo not ready: %v", err)
	}
	svc, err := l.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service: %v", err)
	}
	base := "http://" + svc.Spec.ClusterIP + ":80"
	if err := waitServing(ctx, l, ns, "echo", 1, httpRequest(newConnClient(), "GET", base+"/", "", nil, 200)); err != nil {
		t.Fatalf("echo service: %v", err)
	}
	steps := c.scaled(a.unit, a.quantum)
	rec := twinRecord{Curve: c.Name, Autoscaler: a.name, Steps: steps}

	// The warm-up: the autoscaler and the curve's first load together.
	warm := time.Now()
	rec.T0 = warm.Add(twinWarmup)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		driveTwinLoad(loadCtx, a, base, steps, rec.T0, rec.T0.Add(c.Duration))
	}()
	defer func() { stopLoad(); wg.Wait() }()
	if _, err := l.kubectl(ctx, []byte(strings.ReplaceAll(a.manifest, "@NS@", ns)), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply %s: %v", a.name, err)
	}

	// Watch the HPA and the pods from now to the curve's end.
	recCtx, stopRec := context.WithDeadline(ctx, rec.T0.Add(c.Duration))
	defer stopRec()
	var rwg sync.WaitGroup
	var writes []twinWrite
	var podErr, hpaErr error
	created, ready := map[string]time.Time{}, map[string]time.Time{}
	rwg.Add(3)
	go func() { defer rwg.Done(); writes, hpaErr = watchHPA(recCtx, l, ns, a.hpaName, rec.T0) }()
	go func() { defer rwg.Done(); podErr = watchPods(recCtx, l, ns, created, ready) }()
	go func() {
		defer rwg.Done()
		if a.name == "cpu" {
			rec.CPU = pollPodCPU(recCtx, l, ns, rec.T0)
		}
	}()
	rwg.Wait()
	stopLoad()
	wg.Wait()
	if hpaErr != nil {
		t.Fatalf("watch HPA: %v", hpaErr)
	}
	if podErr != nil {
		t.Fatalf("watch pods: %v", podErr)
	}
	rec.Writes = writes
	rec.Initial = 1
	for _, w := range writes {
		if w.At <= 0 {
			rec.Initial = w.Desired
		}
	}
	for name, cr := range created {
		if r, ok := ready[name]; ok && cr.After(warm) {
			rec.Startup = append(rec.Startup, r.Sub(cr))
		}
	}
	if a.name != "cpu" {
		rec.Readings, err = promInFlight(ctx, ns, rec.T0, rec.T0.Add(-twinWarmup/2), rec.T0.Add(c.Duration))
		if err != nil {
			t.Errorf("read Prometheus: %v", err)
		}
	}
	evs, err := l.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler"})
	if err == nil {
		for _, e := range evs.Items {
			ts := e.LastTimestamp.Time
			if ts.IsZero() {
				ts = e.EventTime.Time
			}
			rec.Events = append(rec.Events, fmt.Sprintf("%+.0fs %s %s", ts.Sub(rec.T0).Seconds(), e.Reason, e.Message))
		}
		sort.Strings(rec.Events)
	}
	return rec
}

// driveTwinLoad holds the curve's load from now until end (the first
// step's value before t0): for the CPU autoscaler open-loop requests that
// each burn 20 ms of CPU, for the others closed-loop workers each keeping
// one 1 s /wait in flight. Every request is on a new connection, so
// kube-proxy spreads them over the ready pods.
func driveTwinLoad(ctx context.Context, a twinAutoscaler, base string, steps []loadStep, t0, end time.Time) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(u string) {
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			return
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	level := func() float64 {
		now := time.Now()
		if now.Before(t0) {
			return steps[0].Value
		}
		return valueAt(steps, now.Sub(t0))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if a.name == "cpu" {
		const burn = 20 // ms of CPU per request: level millicores is level/20 requests a second
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		credit := 0.0
		for time.Now().Before(end) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			credit += level() / burn * 0.05
			for ; credit >= 1; credit-- {
				wg.Add(1)
				go func() { defer wg.Done(); get(base + "/burn?cpu=1&ms=" + strconv.Itoa(burn)) }()
			}
		}
		return
	}
	maxWorkers := 0
	for _, st := range steps {
		maxWorkers = max(maxWorkers, int(math.Round(st.Value)))
	}
	for i := 0; i < maxWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				if float64(i) < math.Round(level()) {
					get(base + "/wait?ms=1000")
					continue
				}
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
}

// watchHPA records every status write of the HPA named name until ctx
// ends, timed on arrival relative to t0.
func watchHPA(ctx context.Context, l *lab, ns, name string, t0 time.Time) ([]twinWrite, error) {
	var out []twinWrite
	var last string
	for ctx.Err() == nil {
		w, err := l.client.AutoscalingV2().HorizontalPodAutoscalers(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return out, err
		}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			h, ok := ev.Object.(*autoscalingv2.HorizontalPodAutoscaler)
			if !ok {
				continue
			}
			if h.Status.DesiredReplicas == 0 {
				continue // made, not yet synced: minReplicas is 1
			}
			st, _ := json.Marshal(h.Status)
			if string(st) == last {
				continue // a spec or metadata write
			}
			last = string(st)
			out = append(out, twinWrite{At: time.Since(t0), Desired: h.Status.DesiredReplicas, Current: h.Status.CurrentReplicas,
				Metric: statusMetric(h.Status.CurrentMetrics), Conditions: conditionText(h.Status.Conditions)})
		}
		w.Stop()
	}
	return out, nil
}

func statusMetric(ms []autoscalingv2.MetricStatus) string {
	var parts []string
	for _, m := range ms {
		var v autoscalingv2.MetricValueStatus
		switch {
		case m.Resource != nil:
			v = m.Resource.Current
		case m.Pods != nil:
			v = m.Pods.Current
		case m.External != nil:
			v = m.External.Current
		}
		switch {
		case v.AverageUtilization != nil:
			parts = append(parts, fmt.Sprintf("%d%%", *v.AverageUtilization))
		case v.AverageValue != nil:
			parts = append(parts, v.AverageValue.String())
		case v.Value != nil:
			parts = append(parts, v.Value.String())
		}
	}
	return strings.Join(parts, ",")
}

func conditionText(cs []autoscalingv2.HorizontalPodAutoscalerCondition) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	return strings.Join(parts, " ")
}

// watchPods records when each pod was first seen and first seen Ready, on
// arrival: the API's timestamps have whole seconds only.
func watchPods(ctx context.Context, l *lab, ns string, created, ready map[string]time.Time) error {
	for ctx.Err() == nil {
		w, err := l.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			now := time.Now()
			if _, seen := created[p.Name]; !seen {
				created[p.Name] = now
				if ev.Type != watch.Added || now.Sub(p.CreationTimestamp.Time) > 2*time.Second {
					created[p.Name] = p.CreationTimestamp.Time // listed, not made now
				}
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					if _, seen := ready[p.Name]; !seen {
						ready[p.Name] = now
					}
				}
			}
		}
		w.Stop()
	}
	return nil
}

// pollPodCPU reads the pods' total CPU from the metrics API every 250 ms,
// as the HPA controller would read it then, with the newest sample's
// timestamp and window.
func pollPodCPU(ctx context.Context, l *lab, ns string, t0 time.Time) []cpuReading {
	var out []cpuReading
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		raw, err := l.client.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods").DoRaw(ctx)
		if err == nil {
			var list struct {
				Items []struct {
					Timestamp  time.Time `json:"timestamp"`
					Window     string    `json:"window"`
					Containers []struct {
						Usage map[string]string `json:"usage"`
					} `json:"containers"`
				} `json:"items"`
			}
			if json.Unmarshal(raw, &list) == nil && len(list.Items) > 0 {
				r := cpuReading{At: time.Since(t0), Measured: math.MinInt64}
				for _, it := range list.Items {
					for _, c := range it.Containers {
						r.Value += milliCPU(c.Usage["cpu"])
					}
					if m := it.Timestamp.Sub(t0); m > r.Measured {
						r.Measured = m
						r.Window, _ = time.ParseDuration(it.Window)
					}
				}
				out = append(out, r)
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// cpuGain is the median ratio of the pods' CPU to the driven level over
// the warm-up's measurements whose window lies inside it (the load was
// steady): the runtime, probes, scrapes and connections cost CPU beyond
// the burn, in proportion to the requests. The modelled curve is scaled
// by it.
func cpuGain(rs []cpuReading, level float64) float64 {
	var d []float64
	for _, r := range rs {
		if r.Measured-r.Window >= -twinWarmup+10*time.Second && r.Measured <= 0 && level > 0 {
			d = append(d, r.Value/level)
		}
	}
	if len(d) == 0 {
		return 1
	}
	sort.Float64s(d)
	return math.Round(d[len(d)/2]*100) / 100
}

// gainSteps scales every step by gain.
func gainSteps(steps []loadStep, gain float64) []loadStep {
	out := make([]loadStep, len(steps))
	for i, st := range steps {
		out[i] = loadStep{At: st.At, Value: math.Round(st.Value * gain)}
	}
	return out
}

// cpuModel measures metrics-server's pipeline from the readings: each
// measurement's time and window come with it, and its delay is from that
// time to the first poll that saw it (medians; the phase is the circular
// mean of the measurement times modulo the resolution). The curve it
// returns is the recorded one: each measurement's value over its window.
func cpuModel(rs []cpuReading, resolution time.Duration) (metricModel, []loadStep, error) {
	var delays, windows, times []time.Duration
	var out []loadStep
	last := time.Duration(math.MinInt64)
	for _, r := range rs {
		if r.Measured == last || r.Measured == math.MinInt64 {
			continue
		}
		last = r.Measured
		delays, windows, times = append(delays, r.At-r.Measured), append(windows, r.Window), append(times, r.Measured)
		at := max(r.Measured-r.Window, 0)
		if len(out) > 0 && out[len(out)-1].At >= at {
			out[len(out)-1].Value = r.Value // an earlier window clamped to zero
			continue
		}
		out = append(out, loadStep{At: at, Value: r.Value})
	}
	if len(times) == 0 {
		return metricModel{}, nil, fmt.Errorf("twin: no CPU readings from the metrics API")
	}
	median := func(ds []time.Duration) time.Duration {
		ds = append([]time.Duration(nil), ds...)
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	phase, err := syncPhase(times, resolution)
	if err != nil {
		return metricModel{}, nil, err
	}
	return metricModel{Delay: median(delays).Round(10 * time.Millisecond), Resolution: resolution, Phase: phase.Round(10*time.Millisecond) % resolution,
		Window: median(windows).Round(10 * time.Millisecond)}, out, nil
}

// milliCPU parses the metrics API's CPU quantities: "12345678n", "12m",
// "1".
func milliCPU(q string) float64 {
	scale := 1000.0
	switch {
	case strings.HasSuffix(q, "n"):
		q, scale = strings.TrimSuffix(q, "n"), 1e-6
	case strings.HasSuffix(q, "u"):
		q, scale = strings.TrimSuffix(q, "u"), 1e-3
	case strings.HasSuffix(q, "m"):
		q, scale = strings.TrimSuffix(q, "m"), 1
	}
	v, err := strconv.ParseFloat(q, 64)
	if err != nil {
		return 0
	}
	return v * scale
}

// promInFlight reads sum(http_requests_in_flight) of the namespace from
// the lab's Prometheus every 250 ms over [from, to], as prometheus-adapter
// and KEDA would have read it at each of those times.
func promInFlight(ctx context.Context, ns string, t0, from, to time.Time) ([]sample, error) {
	q := url.Values{}
	q.Set("query", fmt.Sprintf(`sum(http_requests_in_flight{namespace=%q})`, ns))
	q.Set("start", strconv.FormatFloat(float64(from.UnixMilli())/1000, 'f', 3, 64))
	q.Set("end", strconv.FormatFloat(float64(to.UnixMilli())/1000, 'f', 3, 64))
	q.Set("step", "0.25")
	req, err := http.NewRequestWithContext(ctx, "GET", "http://10.199.0.1:19090/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode query_range: %w", err)
	}
	if body.Status != "success" || len(body.Data.Result) != 1 {
		return nil, fmt.Errorf("query_range: status %s, %d series, error %q", body.Status, len(body.Data.Result), body.Error)
	}
	var out []sample
	for _, v := range body.Data.Result[0].Values {
		ts, _ := v[0].(float64)
		s, _ := v[1].(string)
		val, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		at := time.UnixMilli(int64(math.Round(ts * 1000))).Sub(t0)
		out = append(out, sample{At: at, Value: val})
	}
	return out, nil
}

// twinCompare measures the run's sync phase, pod start-up and metric lag,
// runs the twin twice (on the modelled and on the recorded metric) and
// compares both with the real decisions.
func twinCompare(t *testing.T, shoal, outDir string, rec twinRecord, c twinCurve, a twinAutoscaler) twinResult {
	res := twinResult{Curve: c.Name, Autoscaler: a.name, Writes: len(rec.Writes)}
	for _, e := range rec.Events {
		if strings.Contains(e, "SuccessfulRescale") {
			res.Rescales++
		}
	}
	var writeTimes []time.Duration
	var real []decision
	for _, w := range rec.Writes {
		writeTimes = append(writeTimes, w.At)
		real = append(real, decision{At: w.At, Replicas: w.Desired})
	}
	phase, period, err := syncClock(writeTimes, twinSync)
	if err != nil {
		t.Fatalf("%s/%s: %v", c.Name, a.name, err)
	}
	res.Phase, res.Period = phase, period
	res.Startup = 3 * time.Second
	if len(rec.Startup) > 0 {
		sort.Slice(rec.Startup, func(i, j int) bool { return rec.Startup[i] < rec.Startup[j] })
		res.Startup = rec.Startup[len(rec.Startup)/2].Round(100 * time.Millisecond)
	}
	var readings []sample
	var recorded []loadStep
	modelled := rec.Steps
	if a.name == "cpu" {
		// metrics-server stamps each measurement: measured, not fitted.
		res.Model, recorded, err = cpuModel(rec.CPU, a.resolution)
		res.FitRMSE = math.NaN()
		res.Gain = cpuGain(rec.CPU, rec.Steps[0].Value)
		modelled = gainSteps(rec.Steps, res.Gain)
	} else {
		for _, r := range rec.Readings {
			if r.At >= -twinWarmup/4 {
				readings = append(readings, r)
			}
		}
		res.Model, res.FitRMSE, err = fitMetricModel(rec.Steps, readings, a.resolution, a.window, 10*time.Second)
		recorded = recordedCurve(readings, res.Model)
	}
	if err != nil {
		t.Errorf("%s/%s: %v", c.Name, a.name, err)
	}
	realSyncs := atSyncs(real, rec.Initial, phase, period, c.Duration)
	for i, variant := range []struct {
		name  string
		steps []loadStep
	}{{"modelled", modelled}, {"recorded", recorded}} {
		if len(variant.steps) == 0 {
			continue
		}
		twin, err := runShoalTwin(shoal, filepath.Join(outDir, c.Name+"-"+a.name+"-"+variant.name+".json"), rec, c, a, res, variant.steps)
		var cmp comparison
		if err != nil {
			t.Errorf("twin %s: %v", variant.name, err)
		} else {
			cmp = compareDecisions(realSyncs, twin, period)
		}
		if i == 0 {
			res.Modelled = cmp
		} else {
			res.Recorded = cmp
		}
	}
	t.Logf("%s/%s: sync period %v phase %v, start-up %v, metric %+v (rmse %.2f, gain %.2f), %d writes, %d rescales; modelled %+v; recorded %+v",
		c.Name, a.name, period, phase, res.Startup, res.Model, res.FitRMSE, res.Gain, res.Writes, res.Rescales, res.Modelled, res.Recorded)
	return res
}

// runShoalTwin writes the scenario for `shoal hpa simulate` and returns
// its decisions.
func runShoalTwin(shoal, path string, rec twinRecord, c twinCurve, a twinAutoscaler, res twinResult, steps []loadStep) ([]decision, error) {
	spec, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(a.manifest, "@NS@", "twin")))
	if err != nil {
		return nil, fmt.Errorf("autoscaler manifest: %w", err)
	}
	var load []map[string]any
	for _, st := range steps {
		load = append(load, map[string]any{"at": st.At.String(), "value": st.Value})
	}
	metrics := map[string]string{"delay": res.Model.Delay.String()}
	if res.Model.Resolution > 0 {
		metrics["resolution"] = res.Model.Resolution.String()
		metrics["phase"] = res.Model.Phase.String()
	}
	if res.Model.Window > 0 {
		metrics["window"] = res.Model.Window.String()
	}
	scen := map[string]any{
		"name":            c.Name + " " + a.name,
		"duration":        c.Duration.String(),
		"syncPeriod":      res.Period.String(),
		"syncPhase":       res.Phase.String(),
		"podStartup":      res.Startup.String(),
		"initialReplicas": rec.Initial,
		"podCapacity":     100,
		"cpuRequest":      "100m",
		"metrics":         metrics,
		// The lab's kube-controller-manager flags; metrics-server reports
		// 15 s windows.
		"config":  map[string]string{"downscaleStabilizationWindow": "30s", "metricWindow": "15s"},
		"load":    load,
		a.specKey: json.RawMessage(spec),
	}
	raw, err := json.MarshalIndent(scen, "", " ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return nil, err
	}
	out, err := exec.Command(shoal, "hpa", "simulate", "-f", path, "-o", "json").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("shoal hpa simulate -f %s: %w: %s", path, err, ee.Stderr)
		}
		return nil, err
	}
	var runs []struct {
		Samples []struct {
			Time    float64 `json:"time"`
			Desired int32   `json:"desired"`
		} `json:"samples"`
	}
	if err := json.Unmarshal(out, &runs); err != nil || len(runs) != 1 {
		return nil, fmt.Errorf("shoal hpa simulate output: %v (%d runs)", err, len(runs))
	}
	var ds []decision
	for _, s := range runs[0].Samples {
		ds = append(ds, decision{At: time.Duration(math.Round(s.Time*1000)) * time.Millisecond, Replicas: s.Desired})
	}
	return ds, nil
}

// twinTable renders the results as the BENCHMARKS table.
func twinTable(rs []twinResult) string {
	var b strings.Builder
	b.WriteString("| curve | autoscaler | syncs | changes | equal (modelled) | within one | worse | changes equal / within one | equal (recorded) | worse (recorded) | sync period / phase | pod start-up | metric delay / resolution / window (fit rmse) |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rs {
		m, rc := r.Modelled, r.Recorded
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d (%.0f%%) | %d | %d | %d / %d | %d (%.0f%%) | %d | %v / %v | %v | %v / %v / %v (%.2f) |\n",
			r.Curve, r.Autoscaler, m.Decisions, m.Changes, m.Equal, 100*m.EqualShare(), m.WithinOne, m.Worse,
			m.ChangesEqual, m.ChangesWithinOne, rc.Equal, 100*rc.EqualShare(), rc.Worse,
			r.Period, r.Phase, r.Startup, r.Model.Delay, r.Model.Resolution, r.Model.Window, r.FitRMSE)
	}
	return b.String()
}
