package autoscale

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestScenarioWithDefaults(t *testing.T) {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5}}
	tests := []struct {
		name         string
		in           Scenario
		wantInitial  int32
		wantStartup  time.Duration
		wantSync     time.Duration
		wantCapacity float64
		wantRequest  string
	}{
		{name: "hpa without minReplicas", in: Scenario{HPA: hpa},
			wantInitial: 1, wantStartup: 30 * time.Second, wantSync: 15 * time.Second, wantCapacity: 1, wantRequest: "1"},
		{name: "hpa with minReplicas 0 starts at 1", in: Scenario{HPA: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: i32(0), MaxReplicas: 5}}},
			wantInitial: 1, wantStartup: 30 * time.Second, wantSync: 15 * time.Second, wantCapacity: 1, wantRequest: "1"},
		{name: "hpa with minReplicas", in: Scenario{HPA: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: i32(3), MaxReplicas: 5}}},
			wantInitial: 3, wantStartup: 30 * time.Second, wantSync: 15 * time.Second, wantCapacity: 1, wantRequest: "1"},
		{name: "scaledObject starts at minReplicaCount", in: Scenario{ScaledObject: scaledObject(0, promTrigger("20", ""))},
			wantInitial: 0, wantStartup: 30 * time.Second, wantSync: 15 * time.Second, wantCapacity: 1, wantRequest: "1"},
		{name: "set fields are kept", in: Scenario{HPA: hpa, InitialReplicas: 4, PodStartup: time.Minute, SyncPeriod: 5 * time.Second, PodCapacity: 2.5, CPURequest: resource.MustParse("250m")},
			wantInitial: 4, wantStartup: time.Minute, wantSync: 5 * time.Second, wantCapacity: 2.5, wantRequest: "250m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			if got.InitialReplicas != tt.wantInitial || got.PodStartup != tt.wantStartup || got.SyncPeriod != tt.wantSync ||
				got.PodCapacity != tt.wantCapacity || got.CPURequest.Cmp(resource.MustParse(tt.wantRequest)) != 0 {
				t.Errorf("withDefaults() = initial %d, startup %v, sync %v, capacity %v, request %v; want %d, %v, %v, %v, %v",
					got.InitialReplicas, got.PodStartup, got.SyncPeriod, got.PodCapacity, got.CPURequest.String(),
					tt.wantInitial, tt.wantStartup, tt.wantSync, tt.wantCapacity, tt.wantRequest)
			}
		})
	}
}

// TestSimulatorScale checks the pods a scale leaves, by name: pods made at
// time zero are ready at once, later ones after the start-up, and a scale
// down removes unready pods first, then the newest.
func TestSimulatorScale(t *testing.T) {
	type step struct {
		at time.Duration
		n  int32
	}
	tests := []struct {
		name  string
		steps []step
		at    time.Duration // when readiness is checked
		want  []string
		ready int32
	}{
		{name: "initial pods are ready", steps: []step{{0, 3}}, at: 0, want: []string{"pod-0", "pod-1", "pod-2"}, ready: 3},
		{name: "new pods wait for start-up", steps: []step{{0, 1}, {time.Minute, 3}}, at: time.Minute + 29*time.Second, want: []string{"pod-0", "pod-1", "pod-2"}, ready: 1},
		{name: "new pods ready after start-up", steps: []step{{0, 1}, {time.Minute, 3}}, at: time.Minute + 30*time.Second, want: []string{"pod-0", "pod-1", "pod-2"}, ready: 3},
		{name: "scale down removes unready first", steps: []step{{0, 2}, {time.Minute, 3}, {time.Minute + 10*time.Second, 2}}, at: 2 * time.Minute, want: []string{"pod-0", "pod-1"}, ready: 2},
		{name: "scale down removes the newest ready", steps: []step{{0, 1}, {time.Minute, 2}, {2 * time.Minute, 3}, {3 * time.Minute, 2}}, at: 3 * time.Minute, want: []string{"pod-0", "pod-1"}, ready: 2},
		{name: "names are not reused", steps: []step{{0, 2}, {time.Minute, 1}, {2 * time.Minute, 2}}, at: 2 * time.Minute, want: []string{"pod-0", "pod-2"}, ready: 1},
		{name: "to zero", steps: []step{{0, 2}, {time.Minute, 0}}, at: time.Minute, want: nil, ready: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := &simulator{s: Scenario{PodStartup: 30 * time.Second}}
			for _, st := range tt.steps {
				sim.scale(st.at, st.n)
			}
			var names []string
			for _, p := range sim.pods {
				names = append(names, p.name)
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("pods = %v, want %v", names, tt.want)
			}
			if got := sim.readyPods(tt.at); got != tt.ready {
				t.Errorf("readyPods(%v) = %d, want %d", tt.at, got, tt.ready)
			}
			if int(sim.replicas) != len(sim.pods) {
				t.Errorf("replicas = %d with %d pods", sim.replicas, len(sim.pods))
			}
		})
	}
}

// TestSimulatorInput checks the metric sample: ready pods share the load
// as CPU and as Pods metrics, unready pods have no samples, and Object and
// External metrics see the whole load.
func TestSimulatorInput(t *testing.T) {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MaxReplicas: 5,
		Metrics: []autoscalingv2.MetricSpec{
			{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "rps"}}},
			{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "hits"}}},
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "queue"}}},
		},
	}}
	sim, err := newSimulator(Scenario{HPA: hpa, InitialReplicas: 2, PodCapacity: 2, Load: []LoadPoint{{Value: 3}}}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	sim.scale(time.Minute, 3) // pod-2 is not ready until 1m30s
	in := sim.input(time.Minute, 3)
	if !in.Now.Equal(simEpoch.Add(time.Minute)) || in.CurrentReplicas != 3 || len(in.Pods) != 3 {
		t.Fatalf("input at %v with %d replicas and %d pods, want %v, 3 and 3", in.Now, in.CurrentReplicas, len(in.Pods), simEpoch.Add(time.Minute))
	}
	if q := in.ObjectMetrics["hits"]; q.Cmp(MetricValue(3)) != 0 {
		t.Errorf("object metric = %v, want 3", q.String())
	}
	if q := in.ExternalMetrics["queue"]; q.Cmp(MetricValue(3)) != 0 {
		t.Errorf("external metric = %v, want 3", q.String())
	}
	for _, p := range in.Pods {
		if p.Name == "pod-2" {
			if p.Ready || p.Usage != nil || p.Metrics != nil || !p.ReadyTransitionTime.Equal(*p.StartTime) {
				t.Errorf("unready pod = %+v, want not ready, without samples", p)
			}
			continue
		}
		// 1.5 per pod at a capacity of 2 is 75% of the 1 CPU request.
		cpu := p.Usage[corev1.ResourceCPU]
		if !p.Ready || cpu.MilliValue() != 750 {
			t.Errorf("%s: ready %v, cpu %v; want ready, 750m", p.Name, p.Ready, cpu.String())
		}
		if q := p.Metrics["rps"]; q.Cmp(MetricValue(1.5)) != 0 {
			t.Errorf("%s: rps = %v, want 1.5", p.Name, q.String())
		}
	}
}

func TestSimulatorSyncAtZero(t *testing.T) {
	so := scaledObject(0, promTrigger("20", "5"))
	sim, err := newSimulator(Scenario{ScaledObject: so, Load: []LoadPoint{{Value: 2}}}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	row, err := sim.sync(0)
	if err != nil {
		t.Fatal(err)
	}
	want := Sample{Time: 0, Load: 2, Metric: "2", Desired: 0, Ready: 0, Reason: "ScaledToZero"}
	if row != want {
		t.Errorf("sync at zero replicas = %+v, want %+v", row, want)
	}
	if sim.recs != nil || sim.events != nil {
		t.Errorf("sync at zero replicas recorded a decision")
	}
}

// TestSimulateHPAScaleToZero runs a plain HPA with minReplicas 0 and an
// External metric (HPAScaleToZero) through a quiet spell: it scales the
// target to zero, records ScaledToZero, and scales back up from zero when
// the load returns; with the gate off it stays at its minimum above zero
// and never reaches zero from a hand-made start.
func TestSimulateHPAScaleToZero(t *testing.T) {
	target := resource.MustParse("2")
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MinReplicas: i32(0), MaxReplicas: 10,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "queue"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &target}}}},
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: i32(0)}},
	}}
	load := []LoadPoint{{At: 0, Value: 4}, {At: 2 * time.Minute, Value: 0}, {At: 6 * time.Minute, Value: 6}}
	tests := []struct {
		name       string
		gates      map[string]bool
		wantZero   bool  // the timeline reaches zero replicas
		wantFinal  int32 // desired at the last sync
		wantReason string
	}{
		{name: "gate on", wantZero: true, wantFinal: 3},
		{name: "gate off", gates: map[string]bool{GateScaleToZero: false}, wantZero: true, wantFinal: 0, wantReason: "ScalingDisabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := Simulate(t.Context(), Scenario{HPA: hpa, InitialReplicas: 2, Duration: 8 * time.Minute, Load: load, Config: Config{FeatureGates: tc.gates}})
			if err != nil {
				t.Fatal(err)
			}
			zero := false
			for _, r := range rows {
				if r.Desired == 0 {
					zero = true
				}
			}
			last := rows[len(rows)-1]
			if zero != tc.wantZero || last.Desired != tc.wantFinal || (tc.wantReason != "" && last.Reason != tc.wantReason) {
				t.Errorf("reached zero %v, final %d %q; want %v, %d %q\n%+v", zero, last.Desired, last.Reason, tc.wantZero, tc.wantFinal, tc.wantReason, rows)
			}
		})
	}
}

// TestSimulateSyncTimes runs the same scenario on a fixed period and on
// the same syncs given as times, then on a drifting clock, and checks the
// rows fall at the given times with the decisions of the fixed clock.
func TestSimulateSyncTimes(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	base := Scenario{ScaledObject: scaledObject(1, promTrigger("10", "")), SyncPeriod: 5 * s, SyncPhase: 2 * s, PodStartup: s,
		Duration: time.Minute, Load: []LoadPoint{{Value: 5}, {At: 20 * s, Value: 35}, {At: 40 * s, Value: 5}}}
	fixed, err := Simulate(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	var times, drifting []time.Duration
	for i, row := range fixed {
		times = append(times, row.Time)
		drifting = append(drifting, row.Time+time.Duration(i)*20*ms)
	}
	for _, tt := range []struct {
		name  string
		times []time.Duration
	}{{"the same syncs", times}, {"a drifting clock", drifting}} {
		t.Run(tt.name, func(t *testing.T) {
			sc := base
			sc.SyncPhase, sc.SyncTimes = 0, tt.times
			got, err := Simulate(t.Context(), sc)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(fixed) {
				t.Fatalf("%d rows, want %d", len(got), len(fixed))
			}
			for i := range got {
				if got[i].Time != tt.times[i] || got[i].Desired != fixed[i].Desired {
					t.Errorf("row %d at %v wants %d, want at %v wanting %d", i, got[i].Time, got[i].Desired, tt.times[i], fixed[i].Desired)
				}
			}
		})
	}
	for _, bad := range [][]time.Duration{{3 * s, 2 * s}, {-s}, {2 * time.Minute}} {
		sc := base
		sc.SyncTimes = bad
		if _, err := Simulate(t.Context(), sc); err == nil {
			t.Errorf("syncTimes %v: no error", bad)
		}
	}
}

// TestSimulatorPodStartups gives each pod its own start-up, in the order
// the pods are made; pods past the list take PodStartup.
func TestSimulatorPodStartups(t *testing.T) {
	s := time.Second
	sim := &simulator{s: Scenario{PodStartup: 30 * s, PodStartups: []time.Duration{0, 2 * s, 5 * s}}}
	sim.scale(0, 1)
	sim.scale(time.Minute, 4)
	want := map[string]time.Duration{"pod-1": time.Minute + 2*s, "pod-2": time.Minute + 5*s, "pod-3": time.Minute + 30*s}
	for _, p := range sim.pods {
		if w, ok := want[p.name]; ok && p.readyAt != w {
			t.Errorf("%s ready at %v, want %v", p.name, p.readyAt, w)
		}
	}
	if err := (&Scenario{HPA: cpuHPA(i32(1), 4, 50), Duration: time.Minute, Load: []LoadPoint{{Value: 1}}, PodStartups: []time.Duration{-s}}).Validate(); err == nil {
		t.Error("a negative start-up validated")
	}
}

// TestSimulatorAPITimes checks that a pod's start and Ready transition
// reach the controller to the second, on the clock of ClockPhase, as the
// API server keeps them: a new pod's CPU sample whose window starts
// between the truncated and the true transition then counts.
func TestSimulatorAPITimes(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		phase, at, want time.Duration
	}{
		{0, 46770 * ms, 46 * time.Second},
		{940 * ms, 46770 * ms, 46060 * ms},
		{940 * ms, 46050 * ms, 45060 * ms},
		{940 * ms, 46060 * ms, 46060 * ms},
		{500 * ms, -time.Hour, -time.Hour - 500*ms},
	}
	for _, tt := range tests {
		sim := &simulator{s: Scenario{ClockPhase: tt.phase}}
		if got := sim.apiTime(tt.at).Sub(simEpoch); got != tt.want {
			t.Errorf("phase %v: apiTime(%v) = %v, want %v", tt.phase, tt.at, got, tt.want)
		}
	}

	// A pod ready at 46.77 s whose sample, over a 10.7 s window, ends at
	// 57.06 s: its transition, kept as 46.06 s, plus the window is 56.76 s,
	// so the sample counts; at the true transition it would not.
	hpa := cpuHPA(i32(1), 4, 50)
	sc := Scenario{HPA: hpa, ClockPhase: 940 * ms, InitialReplicas: 1, PodCapacity: 100, CPURequest: resource.MustParse("100m"),
		Duration: 2 * time.Minute, Load: []LoadPoint{{Value: 46}}}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	sim, err := newSimulator(sc.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	sim.pods = append(sim.pods, simPod{name: "new", id: 1, created: 45800 * ms, readyAt: 46770 * ms})
	now := 60 * time.Second
	p := sim.pod(sim.pods[1], now, podReading{at: 57060 * ms, window: 10700 * ms, share: 11.5, ok: true, sampled: true}, 0)
	c := calculator{cfg: sc.withDefaults().Config, in: &Input{Now: simEpoch.Add(now)}, pods: []Pod{p}}
	samples := map[string]podSample{"new": {value: 12, timestamp: *p.MetricTime}}
	ready, unready, _, _ := c.groupPods(samples, corev1.ResourceCPU)
	if ready != 1 || len(unready) != 0 {
		t.Errorf("new pod: %d ready, unready %v; want its sample counted", ready, unready)
	}

	sc.ClockPhase = time.Second
	if err := sc.Validate(); err == nil {
		t.Error("a clock phase of 1s validated")
	}
}

// TestSimulatorUsageRoundsUp checks that a pod's CPU reaches the
// controller as metrics-server reports it, in nanocores, so that reading
// it in millicores rounds up as the controller's does.
func TestSimulatorUsageRoundsUp(t *testing.T) {
	sim := &simulator{s: Scenario{PodCapacity: 100, CPURequest: resource.MustParse("100m")}, hpa: cpuHPA(i32(1), 4, 50)}
	p := sim.pod(simPod{name: "p", created: -time.Hour, readyAt: -time.Hour}, time.Minute, podReading{at: time.Minute, share: 14.266, ok: true}, 0)
	cpu := p.Usage[corev1.ResourceCPU]
	if cpu.MilliValue() != 15 {
		t.Errorf("usage %v reads %dm, want 15m (14.266m rounded up)", cpu.String(), cpu.MilliValue())
	}
}

// TestSimulatorPodBaseline: a pod's idle use is added to its CPU, not to
// its Pods metric.
func TestSimulatorPodBaseline(t *testing.T) {
	tests := []struct {
		name     string
		baseline float64
		wantCPU  int64 // millicores
		wantPods string
	}{
		{"no baseline", 0, 20, "20"},
		{"idle use of 0.8m", 0.8, 21, "20"},
		{"idle use of 3m", 3, 23, "20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hpa := cpuHPA(i32(1), 4, 50)
			hpa.Spec.Metrics = append(hpa.Spec.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "inflight"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(10, resource.DecimalSI)}}})
			sim := &simulator{s: Scenario{PodCapacity: 100, PodBaseline: tt.baseline, CPURequest: resource.MustParse("100m")}, hpa: hpa}
			p := sim.pod(simPod{name: "p", created: -time.Hour, readyAt: -time.Hour}, time.Minute, podReading{at: time.Minute, share: 20, ok: true}, 0)
			cpu := p.Usage[corev1.ResourceCPU]
			if cpu.MilliValue() != tt.wantCPU {
				t.Errorf("CPU %dm, want %dm", cpu.MilliValue(), tt.wantCPU)
			}
			if got := p.Metrics["inflight"]; got.String() != tt.wantPods {
				t.Errorf("Pods metric %s, want %s", got.String(), tt.wantPods)
			}
		})
	}
	s := Scenario{HPA: cpuHPA(i32(1), 4, 50), Duration: time.Minute, PodBaseline: -1, Load: []LoadPoint{{Value: 1}}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "podBaseline") {
		t.Errorf("a negative baseline: %v, want an error naming podBaseline", err)
	}
}

// TestSimulatorKEDAReadsWholeSeconds: KEDA's Prometheus trigger evaluates
// its query at the start of the read's wall-clock second, so a scrape
// taken later in that second is not in the sum; an HPA's pipeline reads
// it.
func TestSimulatorKEDAReadsWholeSeconds(t *testing.T) {
	ms := time.Millisecond
	so := &ScaledObject{Spec: ScaledObjectSpec{MaxReplicaCount: i32(8), Triggers: []ScaleTrigger{{Type: "prometheus",
		Metadata: map[string]string{"threshold": "10"}}}}}
	// One pod scraped at 9.9 s and 10.2 s, each readable at once.
	clock := PodClock{Samples: []MetricSample{{At: 9900 * ms, Seen: 9900 * ms}, {At: 10200 * ms, Seen: 10200 * ms}}}
	tests := []struct {
		name       string
		keda       bool
		clockPhase time.Duration
		readAt     time.Duration
		want       time.Duration // the sample read; negative: none yet
	}{
		{"KEDA, read at 10.4 s", true, 0, 10400 * ms, 9900 * ms},
		{"KEDA, read at 11.0 s", true, 0, 11000 * ms, 10200 * ms},
		{"KEDA, time zero 0.7 s into its second, read at 10.4 s (11.1 s on the wall)", true, 700 * ms, 10400 * ms, 10200 * ms},
		{"KEDA, time zero 0.5 s into its second, read at 10.4 s (10.9 s on the wall, evaluated at 9.5 s)", true, 500 * ms, 10400 * ms, -1},
		{"HPA, read at 10.4 s", false, 0, 10400 * ms, 10200 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Scenario{HPA: cpuHPA(i32(1), 4, 50), InitialReplicas: 1, Duration: time.Minute, ClockPhase: tt.clockPhase,
				Metrics: MetricModel{Pods: []PodClock{clock}}, Load: []LoadPoint{{Value: 1}}}
			if tt.keda {
				s.HPA, s.ScaledObject = nil, so
			}
			sim, err := newSimulator(s.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			r := sim.podReading(sim.pods[0], tt.readAt, sim.queryBound(tt.readAt))
			if tt.want < 0 {
				if r.ok {
					t.Errorf("read the sample at %v, want none", r.at)
				}
				return
			}
			if !r.ok || r.at != tt.want {
				t.Errorf("read the sample at %v (ok %v), want %v", r.at, r.ok, tt.want)
			}
		})
	}
}

// TestSimulatorKEDAObserveWholeSeconds: the same bound applies to a
// pipeline modelled by its resolution and phase instead of recorded
// samples.
func TestSimulatorKEDAObserveWholeSeconds(t *testing.T) {
	ms := time.Millisecond
	so := &ScaledObject{Spec: ScaledObjectSpec{MaxReplicaCount: i32(8), Triggers: []ScaleTrigger{{Type: "prometheus",
		Metadata: map[string]string{"threshold": "10"}}}}}
	for _, tt := range []struct {
		name   string
		keda   bool
		readAt time.Duration
		want   time.Duration
	}{
		{"KEDA at 10.5 s", true, 10500 * ms, 9200 * ms},
		{"KEDA at 11.0 s", true, 11000 * ms, 10200 * ms},
		{"HPA at 10.5 s", false, 10500 * ms, 10200 * ms},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A sample every second, at 0.2 s past it.
			s := Scenario{HPA: cpuHPA(i32(1), 4, 50), InitialReplicas: 1, Duration: time.Minute,
				Metrics: MetricModel{Resolution: time.Second, Phase: 200 * ms}, Load: []LoadPoint{{Value: 1}}}
			if tt.keda {
				s.HPA, s.ScaledObject = nil, so
			}
			sim, err := newSimulator(s.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			if at, _ := sim.observe(tt.readAt, sim.queryBound(tt.readAt)); at != tt.want {
				t.Errorf("read the sample taken at %v, want %v", at, tt.want)
			}
		})
	}
}

// TestSimulatorRemovedPodScrapedAfter: a recorded scrape of a pod taken
// after its removal (Prometheus still scraped the terminating pod) reads
// nothing in KEDA's sum, and so does a failed scrape (the pod had gone:
// Prometheus marks its series stale at once); a removed pod not scraped
// since keeps its last reading until it goes stale.
func TestSimulatorRemovedPodScrapedAfter(t *testing.T) {
	s := time.Second
	so := &ScaledObject{Spec: ScaledObjectSpec{MaxReplicaCount: i32(8), Triggers: []ScaleTrigger{{Type: "prometheus",
		Metadata: map[string]string{"threshold": "10"}}}}}
	tests := []struct {
		name    string
		removed []MetricSample // the removed pod's scrapes
		wantSum float64
	}{
		{"scraped after its removal", []MetricSample{{At: 9 * s, Seen: 9 * s}, {At: 10500 * time.Millisecond, Seen: 10500 * time.Millisecond}}, 10},
		{"not scraped since", []MetricSample{{At: 9 * s, Seen: 9 * s}}, 15},
		{"its scrape after its removal failed", []MetricSample{{At: 9 * s, Seen: 9 * s}, {At: 11 * s, Seen: 11 * s, Failed: true}}, 10},
		{"a scrape failed before its removal", []MetricSample{{At: 9 * s, Seen: 9 * s}, {At: 9500 * time.Millisecond, Seen: 9500 * time.Millisecond, Failed: true}}, 10},
		{"its scrape failed, but not yet readable", []MetricSample{{At: 9 * s, Seen: 9 * s}, {At: 11 * s, Seen: 12500 * time.Millisecond, Failed: true}}, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := Scenario{ScaledObject: so, InitialReplicas: 2, Duration: time.Minute, Load: []LoadPoint{{Value: 10}},
				Metrics: MetricModel{Stale: 10500 * time.Millisecond, Pods: []PodClock{
					{Samples: []MetricSample{{At: 9200 * time.Millisecond, Seen: 9200 * time.Millisecond}, {At: 11200 * time.Millisecond, Seen: 11200 * time.Millisecond}}},
					{Samples: tt.removed},
				}}}
			sim, err := newSimulator(sc.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			sim.scale(10*s, 1) // the newer pod goes at 10 s
			if len(sim.gone) != 1 || sim.gone[0].id != 1 {
				t.Fatalf("removed %+v, want the pod made second", sim.gone)
			}
			// The kept pod serves the whole 10 from 10 s on; the removed
			// one served 5 until then.
			if got := sim.podSum(12*s, sim.queryBound(12*s)); got != tt.wantSum {
				t.Errorf("KEDA's sum at 12 s: %v, want %v", got, tt.wantSum)
			}
		})
	}
}

// TestSimulatorMeasuredSamples: a recorded sample that carries its value
// is read as measured, whatever the load, so that a twin given the real
// pipeline's readings decides on exactly those.
func TestSimulatorMeasuredSamples(t *testing.T) {
	s := time.Second
	val := func(v float64) *float64 { return &v }
	so := &ScaledObject{Spec: ScaledObjectSpec{MinReplicaCount: i32(1), MaxReplicaCount: i32(8), PollingInterval: i32(5), Triggers: []ScaleTrigger{{Type: "prometheus",
		Metadata: map[string]string{"threshold": "10"}}}}}
	tests := []struct {
		name     string
		hpa      bool
		baseline float64
		samples  [][]MetricSample
		want     int32 // desired replicas at the 10 s sync
	}{
		{"CPU, modelled: 40% of request stays at one pod", true, 0,
			[][]MetricSample{{{At: 8 * s, Window: 5 * s, Seen: 9 * s}}}, 1},
		{"CPU, measured 120% of request: three pods", true, 0,
			[][]MetricSample{{{At: 8 * s, Window: 5 * s, Seen: 9 * s, Value: val(120)}}}, 3},
		{"CPU, measured: no baseline added", true, 30,
			[][]MetricSample{{{At: 8 * s, Window: 5 * s, Seen: 9 * s, Value: val(100)}}}, 2},
		{"CPU, a measured sample not yet seen: the one before", true, 0,
			[][]MetricSample{{{At: 3 * s, Window: 5 * s, Seen: 4 * s, Value: val(60)}, {At: 8 * s, Window: 5 * s, Seen: 11 * s, Value: val(200)}}}, 2},
		{"KEDA, modelled: the load of 40 over two pods", false, 0,
			[][]MetricSample{{{At: 9 * s, Seen: 9 * s}}, {{At: 9 * s, Seen: 9 * s}}}, 4},
		{"KEDA, measured 7 and 18: three replicas", false, 0,
			[][]MetricSample{{{At: 9 * s, Seen: 9 * s, Value: val(7)}}, {{At: 9 * s, Seen: 9 * s, Value: val(18)}}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := Scenario{InitialReplicas: 1, Duration: 10 * s, SyncPeriod: 10 * s, PodCapacity: 100, PodBaseline: tt.baseline,
				CPURequest: resource.MustParse("100m"), Load: []LoadPoint{{Value: 40}}}
			if tt.hpa {
				sc.HPA = cpuHPA(i32(1), 8, 50)
			} else {
				sc.ScaledObject, sc.InitialReplicas = so, 2
			}
			for _, smp := range tt.samples {
				sc.Metrics.Pods = append(sc.Metrics.Pods, PodClock{Samples: smp})
			}
			got, err := Simulate(t.Context(), sc)
			if err != nil {
				t.Fatal(err)
			}
			last := got[len(got)-1]
			if last.Time != 10*s || last.Desired != tt.want {
				t.Errorf("at %v desired %d (metric %s), want %d at 10s", last.Time, last.Desired, last.Metric, tt.want)
			}
		})
	}
	for _, v := range []float64{-1, math.NaN(), math.Inf(1)} {
		sc := Scenario{HPA: cpuHPA(i32(1), 4, 50), Duration: time.Minute, Load: []LoadPoint{{Value: 1}},
			Metrics: MetricModel{Pods: []PodClock{{Samples: []MetricSample{{At: s, Seen: s, Value: val(v)}}}}}}
		if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), "metrics.pods[0].samples[0].value") {
			t.Errorf("a sample's value of %v: %v, want an error naming metrics.pods[0].samples[0].value", v, err)
		}
	}
	sc := Scenario{HPA: cpuHPA(i32(1), 4, 50), Duration: time.Minute, Load: []LoadPoint{{Value: 1}},
		Metrics: MetricModel{Pods: []PodClock{{Samples: []MetricSample{{At: s, Seen: s, Value: val(3), Failed: true}}}}}}
	if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), "metrics.pods[0].samples[0] is failed") {
		t.Errorf("a failed sample with a value: %v, want an error naming metrics.pods[0].samples[0]", err)
	}
}

// TestSimulatorPodsWithoutReadingFirst: the pods made first have no
// reading yet at a sync while later ones have (each pod on its own
// clock): the sync's input holds usage for the later pods only, and the
// controller decides on those.
func TestSimulatorPodsWithoutReadingFirst(t *testing.T) {
	s := time.Second
	val := func(v float64) *float64 { return &v }
	util := int32(50)
	h := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 8,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &util}}}}}}
	late := []MetricSample{{At: 20 * s, Window: 5 * s, Seen: 21 * s}}
	measured := []MetricSample{{At: 8 * s, Window: 5 * s, Seen: 9 * s, Value: val(100)}}
	sc := Scenario{HPA: h, InitialReplicas: 4, Duration: 10 * s, SyncTimes: []time.Duration{10 * s}, PodCapacity: 100,
		Load: []LoadPoint{{Value: 100}}, Metrics: MetricModel{Pods: []PodClock{{Samples: late}, {Samples: late}, {Samples: measured}, {Samples: measured}}}}
	got, err := Simulate(t.Context(), sc)
	if err != nil {
		t.Fatal(err)
	}
	// Two pods read 100% of request against a 50% target; the two without
	// a reading count, as the controller counts missing pods when scaling
	// up, at 0%: (100+100+0+0)/4 = 50%, on target.
	if len(got) != 1 || got[0].Desired != 4 {
		t.Errorf("decision %+v, want 4 replicas kept", got)
	}
}
