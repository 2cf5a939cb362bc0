//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// The autoscaling twin: each curve of twinCurves drives a real Deployment
// of labecho under (1) a CPU HPA, (2) a Pods-metric HPA on
// http_requests_in_flight through prometheus-adapter and (3) a KEDA
// ScaledObject on the same series through Prometheus, the three in
// parallel namespaces (only the CPU case burns CPU, at most 200m). The
// driver (twin_drive_test.go) holds the curve exactly and evenly on the
// ready pods. The real controller's every status write and
// SuccessfulRescale event is recorded, with each pod's life and the metric
// pipeline's own record of what it measured when (Prometheus' samples of
// each pod, metrics-server's measurements of each pod); then `shoal hpa
// simulate` (autoscale.Simulate) runs the same curve with the sync clock,
// pod start-up and metric pipeline measured in that run, and the two are
// compared decision by decision (compareDecisions).
//
// The experiment takes about 25 minutes with the three autoscalers of a
// curve side by side (go test -parallel 3; the default is GOMAXPROCS, 2
// here) and needs the labecho image with held /wait and /metrics,
// docker.io/local/labecho:twin, which `make -C lab twin` builds before it
// runs this test with SHOAL_LAB_TWIN=1. Without that variable the test is
// skipped: it is an experiment with its own target, not part of the CI e2e
// run. Each run's records land in SHOAL_TWIN_OUT; TestTwinReplay runs the
// twin again on them, by default on the run kept in testdata/twin.

const twinImage = "docker.io/local/labecho:twin"

// twinSync is the lab controller's --horizontal-pod-autoscaler-sync-period.
const twinSync = 5 * time.Second

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

// twinInFlightTarget is the in-flight autoscalers' target per pod: ten
// requests, so that one request more or less on a pod moves its reading
// by a tenth of the target, not half of it.
const twinInFlightTarget = 10

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
		{name: "pods", unit: twinInFlightTarget, quantum: 1, specKey: "hpa", hpaName: "echo", resolution: 5 * time.Second,
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
      target: {type: AverageValue, averageValue: "10"}
  behavior: ` + twinBehavior + "\n"},
		{name: "keda", unit: twinInFlightTarget, quantum: 1, specKey: "scaledObject", hpaName: "keda-hpa-echo", resolution: 5 * time.Second,
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
      threshold: "10"
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
        # Ready within a second of starting; on a loaded node a probe
        # that times out once must not take the pod out (the driver would
        # move its load away and back).
        readinessProbe:
          httpGet: {path: /readyz, port: admin}
          periodSeconds: 1
          failureThreshold: 3
        resources:
          requests: {cpu: 100m, memory: 16Mi}
          limits: {cpu: 400m, memory: 64Mi}
`

// twinResult is one run's figures.
type twinResult struct {
	Curve, Autoscaler string
	Phase, Period     time.Duration
	// SyncTimes are the syncs in the curve, measured (see syncTimes).
	SyncTimes []time.Duration
	Startup   time.Duration
	Model     metricModel
	// Gain is the ratio of the pods' CPU to the driven burn over
	// metrics-server's windows (see cpuGain).
	Gain               float64
	Writes, Rescales   int
	Modelled, Recorded comparison
	// Measured is the twin on the readings the real pipeline took of
	// each pod: the controller's decisions alone, without the metric
	// model.
	Measured comparison
	// Outside and OutsidePeak are the cores the node was busy beyond the
	// lab, on average and at the most over 10 s, from the warm-up to the
	// curve's end; NodeRead is false for a record without them.
	Outside, OutsidePeak float64
	NodeRead             bool
}

func TestTwin(t *testing.T) {
	if os.Getenv("SHOAL_LAB_TWIN") != "1" {
		t.Skip("the autoscaling twin is a 20-minute experiment with its own target: make -C lab twin (sets SHOAL_LAB_TWIN=1)")
	}
	l := newLab(t)
	// The twin polls the metrics API ten times a second beside its
	// watches: more than client-go's default 5 requests a second.
	cfg, err := clientcmd.BuildConfigFromFlags("", l.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	if l.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	shoal := twinShoal(t, l.repo)
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
	// The node's CPU beside the lab, for the whole run, so that a miss
	// says whether other work shared the node.
	node := &nodeLog{}
	nctx, stopNode := context.WithCancel(context.Background())
	var nwg sync.WaitGroup
	nwg.Add(1)
	go func() { defer nwg.Done(); node.run(nctx, labMeter(), nodePeriod) }()
	defer func() { stopNode(); nwg.Wait() }()
	for _, c := range curves {
		t.Run(c.Name, func(t *testing.T) {
			for _, a := range twinAutoscalers() {
				if only := os.Getenv("SHOAL_TWIN_AUTOSCALERS"); only != "" && !strings.Contains(","+only+",", ","+a.name+",") {
					continue
				}
				t.Run(a.name, func(t *testing.T) {
					t.Parallel()
					rec := runTwinCurve(t, l, c, a, node)
					raw, _ := json.Marshal(rec)
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
	checkTwinGoal(t, results)
	checkMeasuredGoal(t, results)
}

// TestTwinReplay runs the twin again on the records of TestTwin runs,
// without the lab: the real decisions are recorded once, the twin's model
// can change after. By default it replays the runs kept in testdata
// (keptTwinRuns) and holds the twin to the goal on each, except where a
// run's shortfall is written down, where it must not do worse;
// SHOAL_TWIN_RECORDS names another run's output folder (its
// SHOAL_TWIN_OUT), whose figures it only logs.
func TestTwinReplay(t *testing.T) {
	shoal := twinShoal(t, "../..")
	if dir := os.Getenv("SHOAL_TWIN_RECORDS"); dir != "" {
		results := replayTwinRun(t, shoal, dir)
		t.Logf("twin against the recorded controller:\n%s", twinTable(results))
		return
	}
	for _, run := range keptTwinRuns() {
		t.Run(filepath.Base(run.dir), func(t *testing.T) {
			results := replayTwinRun(t, shoal, run.dir)
			t.Logf("twin against the recorded controller:\n%s", twinTable(results))
			checkTwinGoal(t, withoutShortfalls(t, results, run.short, "on modelled metrics", func(r twinResult) comparison { return r.Modelled }))
			checkMeasuredGoal(t, withoutShortfalls(t, results, run.measuredShort, "on the measured readings", func(r twinResult) comparison { return r.Measured }))
		})
	}
}

// withoutShortfalls returns the results of the cases without a written
// shortfall, to be held to the goal, and fails a case with one whose
// variant (picked by cmp) does worse than the kept figures.
func withoutShortfalls(t *testing.T, results []twinResult, short map[string]twinShortfall, variant string, cmp func(twinResult) comparison) []twinResult {
	t.Helper()
	var meet []twinResult
	for _, r := range results {
		f, ok := short[r.Curve+"/"+r.Autoscaler]
		if !ok {
			meet = append(meet, r)
			continue
		}
		if c := cmp(r); c.Equal < f.equal || c.Worse > f.worse {
			t.Errorf("%s/%s: the twin %s matched %d at the same sync with %d worse, the kept run's figures are %d and %d (%s)",
				r.Curve, r.Autoscaler, variant, c.Equal, c.Worse, f.equal, f.worse, f.why)
		}
	}
	return meet
}

// twinShortfall is a kept run's case below the goal: the twin's figures
// on it when it was kept, which a change to the model must not lower,
// and why the case falls short.
type twinShortfall struct {
	equal, worse int
	why          string
}

// keptTwinRun is a TestTwin run kept in dir, with the cases in which the
// twin falls short of the goal on it.
type keptTwinRun struct {
	dir   string
	short map[string]twinShortfall
	// measuredShort are the cases in which the twin on the pipeline's own
	// readings falls short: none but what the readings cannot show.
	measuredShort map[string]twinShortfall
}

// keptTwinRuns are the TestTwin runs kept in testdata (BENCHMARKS.md has
// their tables), each with the cases in which the twin falls short of
// the goal.
func keptTwinRuns() []keptTwinRun {
	return []keptTwinRun{
		// 2026-12-02 16:34-16:50 UTC, load average 6-10.
		{dir: filepath.Join("testdata", "twin"), short: map[string]twinShortfall{
			"ramp/cpu":      {31, 4, "the driver's pod watch delivered the pod 15 s into the curve, so no load ran before, and the loaded node starved the pods' CPU behind the driven curve"},
			"ramp/keda":     {34, 1, "a pod held 15 requests at its 90.5 s scrape where the even split gives 10.3 (a readiness flap had moved requests away and back); KEDA's sum at 96.0 s read that scrape (35, so 4 replicas) where the twin's read 31"},
			"sawtooth/pods": {35, 1, "a read saw a scrape taken 33 ms before its status write, where the twin places the read 46 ms before it"},
		}},
		// 2026-12-03 06:35-06:54 UTC, the first run with the model's API
		// times and millicores; a niced test suite shared the node during
		// the step and spike curves.
		{dir: filepath.Join("testdata", "twin-2026-12-03"), short: map[string]twinShortfall{
			"spike/cpu": {19, 11, "the real pod read 104% of request at 35.5 s where the twin, at the run's gain (1.17), read 98%: 2.08 against 1.96 times the 50% target, so 3 replicas against 2, held 55 s by the scale-down window"},
			"ramp/cpu":  {32, 3, "at 135.9 s the real pods read 36% and the twin 38%: 2.88 against 3.04 times the target on 4 pods, so the twin kept a recommendation of 4 in the scale-down window through 160.9 s, where the controller went to 3"},
		}},
		// 2026-12-03 09:39-09:59 UTC, load average under 1 but for the
		// lab's own work; the first run kept after KEDA's whole-second
		// query time joined the model.
		{dir: filepath.Join("testdata", "twin-2026-12-03b"), short: map[string]twinShortfall{
			"ramp/keda": {33, 1, "at 110.8 s the twin summed 30.25 requests where KEDA read 30: the pods hold whole requests, and the twin's even shares of a level changing between two pods' scrapes add up to a fraction over 3 replicas' worth, so it kept 4 through 135.9 s"},
		}},
		// 2026-12-04 00:58-01:21 UTC, load average under 1 but for the
		// lab's own work; the first run out of sample after recorded
		// samples began counting from the twin's pod's creation.
		{dir: filepath.Join("testdata", "twin-2026-12-04"), short: map[string]twinShortfall{
			"ramp/cpu":     {24, 9, "at 45.6 s the twin read 57% of request where the real pod read 54%, either side of the 10% tolerance, so the twin scaled to 2 a sync early (2 against 1 at 50.6 and 55.7 s); from there the two ran different pods (3 against 2 at 80.8-85.8 s, 3 against 4 at 90.8-105.9 s)"},
			"ramp/keda":    {34, 1, twinKEDAFailedScrape},
			"sawtooth/cpu": {27, 8, "the twin read 2-5 points of request above the real pods through 106 s (39% against 37% there on 4 pods: a recommendation of 4 against 3, kept by the 30 s window, so it went to 3 at 146 s where the controller did at 131 s), then 55% against 63% on 3 pods at 150.9 s: within the tolerance for the twin, a scale-up to 4 for the controller"},
		}, measuredShort: map[string]twinShortfall{
			"ramp/keda": {34, 1, twinKEDAFailedScrape},
		}},
		// 2026-12-04 01:33-01:55 UTC, the first run that recorded failed
		// scrapes (their durations read from Prometheus after the run);
		// step/keda and step/pods did not run: the driver's pod watch,
		// opened without a version on a lab just started, delivered
		// nothing for 2 minutes (the driver now lists, then watches).
		{dir: filepath.Join("testdata", "twin-2026-12-04b"), short: map[string]twinShortfall{
			"spike/cpu": {24, 6, "the CPU per driven burn drifted within the run (gain 1.21 over the run's windows): the twin read below the real pods after the spike and scaled down 30 s early"},
			"ramp/keda": {33, 1, "the pods hold whole requests, the twin even fractional shares of a level changing between two pods' scrapes; the measured variant, on the real per-pod readings, matches all 36"},
		}},
		// 2026-12-04 04:49-05:05 UTC, the first complete run with failed
		// scrapes recorded; a CPU-bound process (a week-long simulation,
		// 04:57-05:07) shared the 2-core node through the ramp and the
		// sawtooth.
		{dir: filepath.Join("testdata", "twin-2026-12-04c"), short: map[string]twinShortfall{
			"sawtooth/pods": {35, 1, "the controller scaled down at the run's last sync (177.2 s) and the twin one sync later, past the record's end"},
		}},
		// 2026-12-04 05:26-05:42 UTC, load average under 1 but for the
		// lab's own work, nothing else running; the CPU driver credits
		// the curve by the time since its last tick. Every case meets the
		// goal on modelled and measured readings alike.
		{dir: filepath.Join("testdata", "twin-2026-12-04d")},
		// 2026-12-04 07:31-08:43 UTC, four runs one after the other,
		// nothing else running: the first with the node's CPU read (0.03-
		// 0.07 cores outside the lab on average in every case). The first
		// two ran with the gain over steady windows, the last two with
		// the gain over every window (cpuGain).
		{dir: filepath.Join("testdata", "twin-2026-12-04e"), short: map[string]twinShortfall{
			"sawtooth/keda": {34, 1, "at 100.8 s KEDA read 30 requests on 4 pods (3 replicas' worth) where the twin's even shares of the moving level summed 30.8 (4), a recommendation the 30 s window kept through 125.9 s, where the controller went to 3; and at the run's last sync the controller scaled down, the twin one sync later, past the record's end"},
		}},
		{dir: filepath.Join("testdata", "twin-2026-12-04f"), short: map[string]twinShortfall{
			"ramp/cpu": {33, 2, twinRampToleranceEdge},
		}},
		{dir: filepath.Join("testdata", "twin-2026-12-04g"), short: map[string]twinShortfall{
			"ramp/keda": {34, 0, "at 100.9 s KEDA read 33 requests on 3 pods (1.10 of the target: within the tolerance) where the twin's even shares of the moving level summed 33.67 (1.12), so the twin scaled to 4 a sync early; and at 131.0 s it scaled down a sync early"},
		}},
		{dir: filepath.Join("testdata", "twin-2026-12-04h"), short: map[string]twinShortfall{
			"ramp/cpu":      {33, 2, twinRampToleranceEdge},
			"ramp/keda":     {33, 1, "at 110.8 s KEDA read 30 requests on 4 pods where the twin's even shares summed 30.25, so the twin kept 4 a sync longer (to 135.9 s); at 140.9 s KEDA's sum still held the pod removed at 135.9 s (23 requests, so 3 kept through 165.9 s) where the twin's had dropped it (18), so it went to 2 two syncs early"},
			"sawtooth/pods": {35, 1, "the controller scaled down at the run's last sync (176.3 s) and the twin one sync later, past the record's end"},
		}},
		// 2026-12-05 01:19-01:35 UTC, the model unchanged since 04h; two
		// test helpers ran at nice 19 beside it (0.01 cores outside the
		// lab on average, 0.04 at the most over 10 s).
		{dir: filepath.Join("testdata", "twin-2026-12-05"), short: map[string]twinShortfall{
			"spike/cpu": {19, 11, "the real pod read 101% of request at 35.2 s where the twin, at the run's gain (1.15), read 97%: 2.02 against 1.93 times the 50% target, so 3 replicas against 2, held by the scale-down window; as on 2026-12-03; the window in which a spike or a step begins read over the steady windows' gain by more than 1% in 15 of the 22 such windows of the kept runs since then (-5% to +12%)"},
		}},
	}
}

// twinRampToleranceEdge is the ramp/CPU miss of two of the 2026-12-04
// quiet runs.
const twinRampToleranceEdge = "at 125.5 s the twin read 45% of request where the pods read 43%: 0.90 against 0.86 of the 50% target, within the 10% tolerance for the twin and outside it for the controller, so the twin kept a recommendation of 4 in the 30 s window until 165.7 s where the controller went to 3 at 150.6 s"

// twinKEDAFailedScrape is why ramp/keda of the 2026-12-04 run falls short
// on modelled and measured readings alike.
const twinKEDAFailedScrape = "the pod removed at 136.25 s was due a scrape at 137.34 s, after its process had exited (a drain delay of 1 s) and before its target was dropped; the scrape failed and Prometheus marked its series stale at once, so KEDA's sum at 141.3 s read 17 without its last 5, where the twin held that 5 until the 2.1 intervals a dropped target's series take to go stale (22: a recommendation of 3, kept by the 30 s window through 161.5 s, where the controller went to 2). The run's four other removals were due their scrape 2.7-4.7 s after the removal, when the target had been dropped, and held their last reading as the twin does; the record does not say when a pod's process exited or its target went"

// replayTwinRun runs the twin on each record in dir.
func replayTwinRun(t *testing.T, shoal, dir string) []twinResult {
	t.Helper()
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
	return results
}

// twinShoal returns the shoal binary the twin runs: LAB_SHOAL (e2e.sh
// builds one for every test), or one built from the repository at repo.
func twinShoal(t *testing.T, repo string) string {
	t.Helper()
	if shoal := os.Getenv("LAB_SHOAL"); shoal != "" {
		return shoal
	}
	shoal := filepath.Join(t.TempDir(), "shoal")
	build := exec.Command("go", "build", "-o", shoal, "./cmd/shoal")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build shoal: %v\n%s", err, out)
	}
	return shoal
}

// checkTwinGoal fails the test for each result whose twin, on the
// modelled pipeline, matched fewer than 95% of the real decisions at the
// same sync or missed any by more than one sync.
func checkTwinGoal(t *testing.T, results []twinResult) {
	t.Helper()
	for _, r := range results {
		if r.Modelled.EqualShare() < 0.95 || r.Modelled.Worse > 0 {
			t.Errorf("%s/%s: the twin on modelled metrics matched %d of %d decisions at the same sync, %d within one, %d worse (%v): want at least 95%% and none worse%s",
				r.Curve, r.Autoscaler, r.Modelled.Equal, r.Modelled.Decisions, r.Modelled.WithinOne, r.Modelled.Worse, r.Modelled.Misses, r.nodeNote())
		}
	}
}

// nodeNote says, for a case's failure, whether the node was the lab's
// alone while it ran.
func (r twinResult) nodeNote() string {
	switch {
	case !r.NodeRead:
		return ""
	case r.Outside > quietMean || r.OutsidePeak > quietPeak:
		return fmt.Sprintf("; the node was not the lab's alone: %.2f cores busy outside the lab on average, %.2f over the busiest 10 s (a quiet node: at most %.2f and %.2f); the CPU model's gain is one figure per case, so other work on the node moves the pods' readings off it",
			r.Outside, r.OutsidePeak, quietMean, quietPeak)
	default:
		return fmt.Sprintf("; the node was quiet (%.2f cores outside the lab on average, %.2f at the most over 10 s)", r.Outside, r.OutsidePeak)
	}
}

// checkMeasuredGoal holds the twin on the pipeline's own readings (the
// measured variant) to the goal in every case, no shortfall excused: given
// what the real controller read, the twin's controller must decide as it
// did. The real run's last sync is excused from "within one sync", which
// the record cannot show.
func checkMeasuredGoal(t *testing.T, results []twinResult) {
	t.Helper()
	for _, r := range results {
		m := r.Measured
		if m.EqualShare() < 0.95 || m.Worse-m.WorseLast > 0 {
			t.Errorf("%s/%s: the twin on the measured readings matched %d of %d decisions at the same sync, %d within one, %d worse (%v): want at least 95%% and none worse",
				r.Curve, r.Autoscaler, m.Equal, m.Decisions, m.WithinOne, m.Worse, m.Misses)
		}
	}
}

// runTwinCurve deploys echo in a fresh namespace, measures the idle pod's
// CPU (the CPU autoscaler), runs the warm-up with the autoscaler and the
// curve, and returns what the controller and the pipeline did.
func runTwinCurve(t *testing.T, l *lab, c twinCurve, a twinAutoscaler, node *nodeLog) twinRecord {
	ns := l.namespace(t, "twin-"+a.name)
	ctx, cancel := context.WithTimeout(context.Background(), twinWarmup+c.Duration+6*time.Minute)
	defer cancel()
	if _, err := l.kubectl(ctx, []byte(twinDeployment), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply echo: %v", err)
	}
	if err := waitDeploymentReady(ctx, l, ns, "echo"); err != nil {
		t.Fatalf("echo not ready: %v", err)
	}
	rec := twinRecord{Curve: c.Name, Autoscaler: a.name, Steps: c.scaled(a.unit, a.quantum)}
	if a.name == "cpu" {
		idle, err := measureIdleCPU(ctx, l, ns, time.Now())
		if err != nil {
			t.Fatalf("idle CPU: %v", err)
		}
		rec.Idle = idle
	}

	// The driver starts on the curve's first load; the warm-up, with the
	// autoscaler, begins once the driver has a pod to send to (a new
	// watch has been seen to deliver a pod tens of seconds late).
	drv := &twinDriver{steps: rec.Steps, inFlight: a.name != "cpu", serving: make(chan struct{}),
		watch: func(ctx context.Context, views chan map[string]podView) { watchPodViews(ctx, l, ns, views) }}
	far := time.Now().Add(time.Hour)
	drv.setClock(far, far.Add(c.Duration))
	dctx, stopDrv := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); drv.run(dctx) }()
	defer func() { stopDrv(); wg.Wait() }()
	select {
	case <-drv.serving:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the driver saw no ready pod in 2m")
	}
	warm := time.Now()
	rec.T0 = warm.Add(twinWarmup)
	end := rec.T0.Add(c.Duration)
	drv.setClock(rec.T0, end)
	if _, err := l.kubectl(ctx, []byte(strings.ReplaceAll(a.manifest, "@NS@", ns)), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply %s: %v", a.name, err)
	}

	// Watch the HPA and the pods from now to the curve's end.
	recCtx, stopRec := context.WithDeadline(ctx, end)
	defer stopRec()
	var rwg sync.WaitGroup
	var writes []twinWrite
	var pods []twinPod
	var podErr, hpaErr error
	rwg.Add(3)
	go func() { defer rwg.Done(); writes, hpaErr = watchHPA(recCtx, l, ns, a.hpaName, rec.T0) }()
	go func() { defer rwg.Done(); pods, podErr = watchPods(recCtx, l, ns, rec.T0) }()
	go func() {
		defer rwg.Done()
		if a.name == "cpu" {
			rec.CPU = pollPodCPU(recCtx, l, ns, rec.T0)
		}
	}()
	rwg.Wait()
	wg.Wait()
	if hpaErr != nil {
		t.Fatalf("watch HPA: %v", hpaErr)
	}
	if podErr != nil {
		t.Fatalf("watch pods: %v", podErr)
	}
	rec.Writes, rec.Pods, rec.Held, rec.Started = writes, pods, drv.Held(), drv.Started()
	var nodeErr error
	if rec.Node, nodeErr = node.between(rec.T0, warm, end); nodeErr != nil {
		t.Errorf("read the node's CPU: %v", nodeErr)
	}
	rec.Initial = 1
	for _, w := range writes {
		if w.At <= 0 {
			rec.Initial = w.Desired
		}
	}
	if a.name != "cpu" {
		var err error
		rec.Scrapes, err = promScrapes(ctx, ns, rec.T0, end)
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

// twinCompare measures the run's sync clock, pod start-up and metric
// pipeline, runs the twin twice (on the driven curve through the measured
// pipeline, and on the readings the pipeline reported) and compares both
// with the real decisions.
func twinCompare(t *testing.T, shoal, outDir string, rec twinRecord, c twinCurve, a twinAutoscaler) twinResult {
	res := twinResult{Curve: c.Name, Autoscaler: a.name, Writes: len(rec.Writes), NodeRead: len(rec.Node) > 0}
	res.Outside, res.OutsidePeak = nodeBusy(rec.Node, 10*time.Second, nodePeriod)
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
	res.SyncTimes = syncTimes(writeTimes, phase, period, c.Duration)
	pods := rec.curvePods(res.SyncTimes, period)
	res.Startup = 3 * time.Second
	var ups []time.Duration
	for i, d := range podStartups(pods, 0) {
		if pods[i].Created > -twinWarmup && pods[i].Ready != nil {
			ups = append(ups, d)
		}
	}
	if len(ups) > 0 {
		sort.Slice(ups, func(i, j int) bool { return ups[i] < ups[j] })
		res.Startup = ups[len(ups)/2].Round(10 * time.Millisecond)
	}
	var recorded []loadStep
	var recModel metricModel
	modelled := rec.Steps
	if a.name == "cpu" {
		// metrics-server stamps each measurement: measured, not fitted.
		rs := cpuReadings(rec.CPU, -twinWarmup, c.Duration, 250*time.Millisecond)
		res.Model, recorded, err = cpuModel(rs, a.resolution)
		res.Gain = rec.cpuGain()
		modelled = gainSteps(rec.Steps, res.Gain)
		recModel = res.Model
	} else {
		// Prometheus stamps each scrape: each pod's phase is measured.
		res.Model, err = scrapeModel(pods, rec.Scrapes, a.resolution)
		recorded = readingsCurve(inFlightReadings(rec.Scrapes, -twinWarmup/4, c.Duration, 250*time.Millisecond, a.resolution+time.Second))
	}
	if err != nil {
		t.Errorf("%s/%s: %v", c.Name, a.name, err)
	}
	// The controller reads the metric as a sync starts and writes the
	// status, which pins the sync's time, as it ends: the next sync comes
	// a nominal period after that end, so the period's excess over the
	// nominal one is that work, and the read came that much before the
	// write.
	work := max(period-twinSync, 0)
	res.Model.Delay += work
	recModel.Delay += work
	if a.name == "cpu" {
		// metrics-server stamps each measurement of each pod with its
		// time and window: the twin reads the driven curve over those.
		res.Model.Pods = cpuClocks(pods, rec.CPU, res.Model.Phase, twinCPUPoll, work)
	} else {
		// A scrape is readable once taken; the controller reads work
		// before the write that pins its sync.
		for i := range res.Model.Pods {
			for j := range res.Model.Pods[i].Samples {
				res.Model.Pods[i].Samples[j].Seen += work
			}
		}
	}
	realSyncs := atSyncTimes(real, rec.Initial, res.SyncTimes, period)
	measured := res.Model
	measured.Measured = true
	for i, variant := range []struct {
		name  string
		steps []loadStep
		model metricModel
	}{{"modelled", modelled, res.Model}, {"recorded", recorded, recModel}, {"measured", modelled, measured}} {
		if len(variant.steps) == 0 {
			continue
		}
		twin, rows, err := runShoalTwin(shoal, filepath.Join(outDir, c.Name+"-"+a.name+"-"+variant.name+".json"), rec, c, a, res, variant.model, variant.steps)
		var cmp comparison
		if err != nil {
			t.Errorf("twin %s: %v", variant.name, err)
		} else {
			cmp = compareDecisions(realSyncs, twin, period)
			if os.Getenv("SHOAL_TWIN_TRACE") != "" {
				t.Logf("%s/%s %s, sync by sync:\n%s", c.Name, a.name, variant.name, twinTrace(rec, realSyncs, rows))
			}
		}
		switch i {
		case 0:
			res.Modelled = cmp
		case 1:
			res.Recorded = cmp
		default:
			res.Measured = cmp
		}
	}
	m := res.Model
	t.Logf("%s/%s: sync period %v phase %v, start-up %v, metric delay %v resolution %v phase %v window %v discovery %v, %d pod clocks (gain %.2f), %d writes, %d rescales; modelled %+v; recorded %+v; measured %+v",
		c.Name, a.name, period, phase, res.Startup, m.Delay, m.Resolution, m.Phase, m.Window, m.Discovery, len(m.Pods), res.Gain, res.Writes, res.Rescales, res.Modelled, res.Recorded, res.Measured)
	return res
}

// twinRow is one sync of the twin's timeline.
type twinRow struct {
	Time    float64 `json:"time"`
	Desired int32   `json:"desired"`
	Ready   int32   `json:"ready"`
	Metric  string  `json:"metric"`
}

// twinTrace sets the real syncs beside the twin's rows, with the metric
// each read (the real one from the status write of that sync, if any).
func twinTrace(rec twinRecord, real []decision, rows []twinRow) string {
	var b strings.Builder
	for i, r := range real {
		mark := " "
		var row twinRow
		if i < len(rows) {
			row = rows[i]
		}
		if row.Desired != r.Replicas {
			mark = "*"
		}
		metric := ""
		for _, w := range rec.Writes {
			if absDur(w.At-r.At) < 2500*time.Millisecond {
				metric = w.Metric
			}
		}
		fmt.Fprintf(&b, "%s %7.3fs real %d %-10s twin %d %-10s ready %d\n", mark, r.At.Seconds(), r.Replicas, metric, row.Desired, row.Metric, row.Ready)
	}
	return b.String()
}

// runShoalTwin writes the scenario for `shoal hpa simulate` and returns
// its decisions and rows.
func runShoalTwin(shoal, path string, rec twinRecord, c twinCurve, a twinAutoscaler, res twinResult, m metricModel, steps []loadStep) ([]decision, []twinRow, error) {
	spec, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(a.manifest, "@NS@", "twin")))
	if err != nil {
		return nil, nil, fmt.Errorf("autoscaler manifest: %w", err)
	}
	var load []map[string]any
	for _, st := range steps {
		load = append(load, map[string]any{"at": st.At.String(), "value": st.Value})
	}
	metrics := map[string]any{"delay": m.Delay.String()}
	if m.Resolution > 0 {
		metrics["resolution"] = m.Resolution.String()
		metrics["phase"] = m.Phase.String()
	}
	if m.Window > 0 {
		metrics["window"] = m.Window.String()
	}
	if m.Discovery > 0 {
		metrics["discovery"] = m.Discovery.String()
	}
	if m.Stale > 0 {
		metrics["stale"] = m.Stale.String()
	}
	if len(m.Pods) > 0 {
		var pods []map[string]any
		for _, p := range m.Pods {
			pod := map[string]any{"phase": p.Phase.String(), "discovery": p.Discovery.String()}
			var samples []map[string]any
			for _, s := range p.Samples {
				smp := map[string]any{"at": s.At.String(), "window": s.Window.String(), "seen": s.Seen.String()}
				switch {
				case s.Failed:
					smp["failed"] = true
				case m.Measured:
					smp["value"] = s.Value
				}
				samples = append(samples, smp)
			}
			if len(samples) > 0 {
				pod["samples"] = samples
			}
			if p.Removed > 0 {
				pod["removed"] = p.Removed.String()
			}
			pods = append(pods, pod)
		}
		metrics["pods"] = pods
	}
	scen := map[string]any{
		"name":       c.Name + " " + a.name,
		"duration":   c.Duration.String(),
		"syncPeriod": res.Period.String(),
		"syncPhase":  res.Phase.String(),
		"syncTimes":  durations(res.SyncTimes),
		// The API server keeps pods' times to the second: where the
		// curve's start fell in its second decides where they round.
		"clockPhase":      (time.Duration(rec.T0.Nanosecond())).String(),
		"podStartup":      res.Startup.String(),
		"podStartups":     durations(podStartups(rec.curvePods(res.SyncTimes, res.Period), res.Startup)),
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
		return nil, nil, err
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return nil, nil, err
	}
	out, err := exec.Command(shoal, "hpa", "simulate", "-f", path, "-o", "json").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, nil, fmt.Errorf("shoal hpa simulate -f %s: %w: %s", path, err, ee.Stderr)
		}
		return nil, nil, err
	}
	var runs []struct {
		Samples []twinRow `json:"samples"`
	}
	if err := json.Unmarshal(out, &runs); err != nil || len(runs) != 1 {
		return nil, nil, fmt.Errorf("shoal hpa simulate output: %v (%d runs)", err, len(runs))
	}
	var ds []decision
	for _, s := range runs[0].Samples {
		ds = append(ds, decision{At: time.Duration(math.Round(s.Time*1000)) * time.Millisecond, Replicas: s.Desired})
	}
	return ds, runs[0].Samples, nil
}

func durations(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// twinTable renders the results as the BENCHMARKS table.
func twinTable(rs []twinResult) string {
	var b strings.Builder
	b.WriteString("| curve | autoscaler | syncs | changes | equal (modelled) | within one | worse | changes equal / within one | equal (recorded) | worse (recorded) | equal (measured) | worse (measured) | sync period / phase | pod start-up (median) | metric delay / resolution / window / first scrape | CPU gain | cores busy outside the lab (mean / 10 s peak) |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n")
	for _, r := range rs {
		m, rc, ms := r.Modelled, r.Recorded, r.Measured
		gain := "-"
		if r.Gain > 0 {
			gain = fmt.Sprintf("%.2f", r.Gain)
		}
		outside := "-"
		if r.NodeRead {
			outside = fmt.Sprintf("%.2f / %.2f", r.Outside, r.OutsidePeak)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d (%.0f%%) | %d | %d | %d / %d | %d (%.0f%%) | %d | %d (%.0f%%) | %d | %v / %v | %v | %v / %v / %v / %v | %s | %s |\n",
			r.Curve, r.Autoscaler, m.Decisions, m.Changes, m.Equal, 100*m.EqualShare(), m.WithinOne, m.Worse,
			m.ChangesEqual, m.ChangesWithinOne, rc.Equal, 100*rc.EqualShare(), rc.Worse, ms.Equal, 100*ms.EqualShare(), ms.Worse,
			r.Period, r.Phase, r.Startup, r.Model.Delay, r.Model.Resolution, r.Model.Window, r.Model.Discovery, gain, outside)
	}
	return b.String()
}
