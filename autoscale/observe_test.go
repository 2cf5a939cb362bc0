package autoscale

import (
	"math"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

func TestMetricModelMeasuredAt(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		m    MetricModel
		t    time.Duration
		want time.Duration
	}{
		{name: "zero model", t: 42 * s, want: 42 * s},
		{name: "delay only", m: MetricModel{Delay: 7 * s}, t: 42 * s, want: 35 * s},
		{name: "resolution", m: MetricModel{Resolution: 15 * s}, t: 44 * s, want: 30 * s},
		{name: "resolution, on a measurement", m: MetricModel{Resolution: 15 * s}, t: 45 * s, want: 45 * s},
		{name: "resolution and phase", m: MetricModel{Resolution: 15 * s, Phase: 4 * s}, t: 44 * s, want: 34 * s},
		{name: "resolution, phase and delay", m: MetricModel{Resolution: 15 * s, Phase: 4 * s, Delay: 2 * s}, t: 35 * s, want: 19 * s},
		{name: "before the first measurement", m: MetricModel{Resolution: 15 * s, Phase: 4 * s}, t: 3 * s, want: -11 * s},
		{name: "delay past zero", m: MetricModel{Delay: 10 * s}, t: 3 * s, want: -7 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.measuredAt(tt.t); got != tt.want {
				t.Errorf("measuredAt(%v) = %v, want %v", tt.t, got, tt.want)
			}
		})
	}
}

func TestAverageLoad(t *testing.T) {
	s := time.Second
	step := &Scenario{Load: []LoadPoint{{At: 0, Value: 1}, {At: 10 * s, Value: 3}, {At: 20 * s, Value: 0}}}
	ramp := &Scenario{Load: []LoadPoint{{At: 0, Value: 0}, {At: 10 * s, Value: 10, Ramp: true}}}
	tests := []struct {
		name     string
		s        *Scenario
		from, to time.Duration
		want     float64
	}{
		{name: "a point", s: step, from: 12 * s, to: 12 * s, want: 3},
		{name: "inside one step", s: step, from: 11 * s, to: 19 * s, want: 3},
		{name: "across a step", s: step, from: 5 * s, to: 15 * s, want: 2},
		{name: "across two steps", s: step, from: 5 * s, to: 25 * s, want: (5*1 + 10*3 + 5*0) / 20.0},
		{name: "before zero is the value at zero", s: step, from: -10 * s, to: 0, want: 1},
		{name: "partly before zero", s: step, from: -5 * s, to: 10 * s, want: 1},
		{name: "a ramp", s: ramp, from: 0, to: 10 * s, want: 5},
		{name: "a ramp's second half and after", s: ramp, from: 5 * s, to: 15 * s, want: (5*7.5 + 5*10) / 10.0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := averageLoad(tt.s, tt.from, tt.to); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("averageLoad(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

func TestMetricModelValidate(t *testing.T) {
	s := time.Second
	tests := []struct {
		name    string
		m       MetricModel
		wantErr bool
	}{
		{name: "zero"},
		{name: "metrics-server", m: MetricModel{Delay: 3 * s, Resolution: 15 * s, Phase: 7 * s, Window: 15 * s}},
		{name: "negative delay", m: MetricModel{Delay: -s}, wantErr: true},
		{name: "phase without resolution", m: MetricModel{Phase: s}, wantErr: true},
		{name: "phase at resolution", m: MetricModel{Resolution: 5 * s, Phase: 5 * s}, wantErr: true},
		{name: "window over an hour", m: MetricModel{Window: 2 * time.Hour}, wantErr: true},
		{name: "too fine a resolution", m: MetricModel{Resolution: time.Millisecond}, wantErr: true},
		{name: "per-pod clocks", m: MetricModel{Resolution: 5 * s, Pods: []PodClock{{Phase: 0}, {Phase: 4 * s, Discovery: 2 * s}}, Discovery: 2 * s}},
		{name: "a pod phase at resolution", m: MetricModel{Resolution: 5 * s, Pods: []PodClock{{Phase: s}, {Phase: 5 * s}}}, wantErr: true},
		{name: "pod clocks without resolution", m: MetricModel{Pods: []PodClock{{}}}, wantErr: true},
		{name: "negative discovery", m: MetricModel{Discovery: -s}, wantErr: true},
		{name: "a pod's negative discovery", m: MetricModel{Resolution: 5 * s, Pods: []PodClock{{Discovery: -s}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.validate(10 * time.Minute)
			if (err != nil) != tt.wantErr {
				t.Errorf("validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// TestSimulateMetricModelAndPhase runs a step of load through a CPU HPA
// and checks when the decision to scale up comes: at the first sync (on
// the phase) that reads a measurement taken after the step.
func TestSimulateMetricModelAndPhase(t *testing.T) {
	s := time.Second
	load := []LoadPoint{{At: 0, Value: 0.5}, {At: 20 * s, Value: 2.5}}
	tests := []struct {
		name      string
		phase     time.Duration
		metrics   MetricModel
		wantFirst time.Duration // the first sync at which desired > 1
		wantSyncs []time.Duration
	}{
		{name: "no lag, syncs on the period", wantFirst: 20 * s, wantSyncs: []time.Duration{0, 5 * s, 10 * s}},
		{name: "no lag, phase 2s", phase: 2 * s, wantFirst: 22 * s, wantSyncs: []time.Duration{2 * s, 7 * s, 12 * s}},
		{name: "gauge sampled every 5s, 3s late", phase: 2 * s, metrics: MetricModel{Delay: 3 * s, Resolution: 5 * s, Phase: s},
			// At 22s the latest measurement read is at 16s; at 27s, 21s.
			wantFirst: 27 * s, wantSyncs: []time.Duration{2 * s, 7 * s, 12 * s}},
		{name: "averaged over 15s windows", metrics: MetricModel{Resolution: 15 * s, Window: 15 * s},
			// The window ending at 30s holds 10s of 2.5 and 5s of 0.5:
			// 1.83 against a target of 0.5 per pod.
			wantFirst: 30 * s, wantSyncs: []time.Duration{0, 5 * s, 10 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hpa := cpuHPA(i32(1), 4, 50)
			out, err := Simulate(t.Context(), Scenario{HPA: hpa, SyncPeriod: 5 * s, SyncPhase: tt.phase, Metrics: tt.metrics,
				Duration: time.Minute, Load: load, PodStartup: 3 * s})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.wantSyncs {
				if out[i].Time != want {
					t.Fatalf("sync %d at %v, want %v", i, out[i].Time, want)
				}
			}
			first := time.Duration(-1)
			for _, row := range out {
				if row.Desired > 1 {
					first = row.Time
					break
				}
			}
			if first != tt.wantFirst {
				t.Errorf("first scale-up at %v, want %v (timeline %+v)", first, tt.wantFirst, out)
			}
		})
	}
}

// TestSimulatorPodSamples checks which pods have samples under a metric
// model: none until a whole window after the pod was made, a partial share
// for a pod that turned ready within the window, and the sample's time.
func TestSimulatorPodSamples(t *testing.T) {
	s := time.Second
	sc := Scenario{HPA: cpuHPA(i32(1), 4, 50), InitialReplicas: 1, PodStartup: 5 * s, SyncPeriod: 5 * s,
		Metrics: MetricModel{Resolution: 15 * s, Window: 15 * s}, Load: []LoadPoint{{Value: 2}}, Duration: time.Minute}.withDefaults()
	sim, err := newSimulator(sc)
	if err != nil {
		t.Fatal(err)
	}
	sim.scale(10*s, 2) // pod-1 made at 10s, ready at 15s
	tests := []struct {
		at        time.Duration
		wantCPU   map[string]int64 // milli-CPU by pod; absent: no sample
		wantMTime time.Duration
	}{
		// At 20s the measurement at 15s covers [0s, 15s]: pod-1 was made
		// inside it, so it has no sample.
		{at: 20 * s, wantCPU: map[string]int64{"pod-0": 2000}, wantMTime: 15 * s},
		// At 35s the measurement at 30s covers [15s, 30s]: both pods were
		// ready through it, sharing the load.
		{at: 35 * s, wantCPU: map[string]int64{"pod-0": 1000, "pod-1": 1000}, wantMTime: 30 * s},
	}
	for _, tt := range tests {
		in := sim.input(tt.at, 0)
		for _, p := range in.Pods {
			q, has := p.Usage[corev1.ResourceCPU]
			want, wantHas := tt.wantCPU[p.Name]
			if has != wantHas || (has && q.MilliValue() != want) {
				t.Errorf("at %v: %s has cpu %v (sample %v), want %dm (sample %v)", tt.at, p.Name, q.String(), has, want, wantHas)
			}
			if has && (p.MetricTime == nil || !p.MetricTime.Equal(simEpoch.Add(tt.wantMTime))) {
				t.Errorf("at %v: %s metric time %v, want %v", tt.at, p.Name, p.MetricTime, simEpoch.Add(tt.wantMTime))
			}
		}
	}
}

// TestSimulatorPodPhases reads a Pods metric and its per-pod sum with each
// pod scraped at its own phase: a pod scraped before a step still reads
// the old load, a new pod has no sample before its discovery, and a pod
// removed since its last scrape still counts in the sum until its next.
func TestSimulatorPodPhases(t *testing.T) {
	s := time.Second
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		MaxReplicas: 5,
		Metrics: []autoscalingv2.MetricSpec{
			{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "inflight"}}},
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "sum"}}},
		},
	}}
	// pod-0 is scraped at 1s, 6s, ...; pod-1 at 4s, 9s, ...; pod-2 (made
	// at 30s, ready at 31s, first scraped 3s after it was made) at 3s, 8s,
	// ...
	sc := Scenario{HPA: hpa, InitialReplicas: 2, PodStartup: s, SyncPeriod: 5 * s,
		Metrics: MetricModel{Resolution: 5 * s, Pods: []PodClock{{Phase: s}, {Phase: 4 * s}, {Phase: 3 * s, Discovery: 3 * s}}},
		Load:    []LoadPoint{{Value: 4}, {At: 20 * s, Value: 8}, {At: 40 * s, Value: 6}}, Duration: time.Minute}.withDefaults()
	sim, err := newSimulator(sc)
	if err != nil {
		t.Fatal(err)
	}
	type reading struct {
		at   time.Duration
		pods map[string]float64 // absent: no sample
		sum  float64
	}
	check := func(r reading) {
		t.Helper()
		in := sim.input(r.at, 0)
		for _, p := range in.Pods {
			q, has := p.Metrics["inflight"]
			want, wantHas := r.pods[p.Name]
			if has != wantHas || (has && q.Cmp(MetricValue(want)) != 0) {
				t.Errorf("at %v: %s reads %v (sample %v), want %v (sample %v)", r.at, p.Name, q.String(), has, want, wantHas)
			}
		}
		if q := in.ExternalMetrics["sum"]; q.Cmp(MetricValue(r.sum)) != 0 {
			t.Errorf("at %v: the sum reads %v, want %v", r.at, q.String(), r.sum)
		}
	}
	// At 22s pod-0 was scraped at 21s (after the step), pod-1 at 19s.
	check(reading{at: 22 * s, pods: map[string]float64{"pod-0": 4, "pod-1": 2}, sum: 6})
	check(reading{at: 25 * s, pods: map[string]float64{"pod-0": 4, "pod-1": 4}, sum: 8})
	sim.scale(30*s, 3)
	// pod-2 is ready at 31s, first scraped at 33s. At 32s the others'
	// scrapes at 31s (pod-0, after the move) and 29s (pod-1, before).
	check(reading{at: 32 * s, pods: map[string]float64{"pod-0": 8.0 / 3, "pod-1": 4}, sum: 8.0/3 + 4})
	check(reading{at: 35 * s, pods: map[string]float64{"pod-0": 8.0 / 3, "pod-1": 8.0 / 3, "pod-2": 8.0 / 3}, sum: 8})
	sim.scale(45*s, 1)
	// pod-1 and pod-2 are gone at 45s; at 47s pod-0's scrape at 46s
	// reads the load alone, pod-2's last at 43s and pod-1's at 44s still
	// count in the sum.
	check(reading{at: 47 * s, pods: map[string]float64{"pod-0": 6}, sum: 6 + 2 + 2})
	// By 50s both were scraped again after their removal: gone.
	check(reading{at: 50 * s, pods: map[string]float64{"pod-0": 6}, sum: 6})
}

// TestSimulatorRecordedSamples reads each pod's CPU over the windows a
// real pipeline measured: a 10 s and a 20 s window, each read from when it
// was seen, and a new pod with no sample whose window starts before it was
// made.
func TestSimulatorRecordedSamples(t *testing.T) {
	s := time.Second
	pod0 := PodClock{Samples: []MetricSample{{At: 10 * s, Window: 10 * s, Seen: 11 * s}, {At: 30 * s, Window: 20 * s, Seen: 31 * s}}}
	pod1 := PodClock{Samples: []MetricSample{{At: 24 * s, Window: 10 * s, Seen: 24 * s}, {At: 30 * s, Window: 20 * s, Seen: 31 * s}, {At: 40 * s, Window: 10 * s, Seen: 41 * s}}}
	sc := Scenario{HPA: cpuHPA(i32(1), 4, 50), InitialReplicas: 1, PodStartup: s, SyncPeriod: 5 * s,
		Metrics: MetricModel{Resolution: 15 * s, Window: 15 * s, Pods: []PodClock{pod0, pod1}},
		Load:    []LoadPoint{{Value: 1}, {At: 20 * s, Value: 3}}, Duration: time.Minute}.withDefaults()
	sim, err := newSimulator(sc)
	if err != nil {
		t.Fatal(err)
	}
	sim.scale(25*s, 2) // pod-1 made at 25s, ready at 26s
	tests := []struct {
		at         time.Duration
		wantCPU    map[string]int64 // milli-CPU by pod; absent: no sample
		wantWindow time.Duration
	}{
		// Before 31s pod-0 reads its 10s window at 10s: the load of 1
		// alone. pod-1's latest sample was taken at 24s, before it was
		// made: no sample.
		{at: 30 * s, wantCPU: map[string]int64{"pod-0": 1000}, wantWindow: 10 * s},
		// From 31s its 20s window to 30s: 10s at 1, 6s at 3, and from 26s
		// 3 shared with pod-1: (10 + 18 + 6) / 20. pod-1's window starts
		// before it was made (a real pod's first window can start before
		// the sync that made the twin's), and it was taken after: the
		// sample counts, with what pod-1 served in it, 1.5 for 4s of 20.
		{at: 35 * s, wantCPU: map[string]int64{"pod-0": 1700, "pod-1": 300}, wantWindow: 20 * s},
		// At 41s pod-1's 10s window to 40s: 3 shared by two.
		{at: 41 * s, wantCPU: map[string]int64{"pod-0": 1700, "pod-1": 1500}, wantWindow: 10 * s},
	}
	for _, tt := range tests {
		in := sim.input(tt.at, 0)
		for _, p := range in.Pods {
			q, has := p.Usage[corev1.ResourceCPU]
			want, wantHas := tt.wantCPU[p.Name]
			if has != wantHas || (has && q.MilliValue() != want) {
				t.Errorf("at %v: %s has cpu %v (sample %v), want %dm (sample %v)", tt.at, p.Name, q.String(), has, want, wantHas)
			}
		}
		if w := in.Pods[len(in.Pods)-1].MetricWindow; tt.at == 41*s && w != tt.wantWindow {
			t.Errorf("at %v: pod-1's window %v, want %v", tt.at, w, tt.wantWindow)
		}
		if w := in.Pods[0].MetricWindow; tt.at < 41*s && w != tt.wantWindow {
			t.Errorf("at %v: pod-0's window %v, want %v", tt.at, w, tt.wantWindow)
		}
	}
}
