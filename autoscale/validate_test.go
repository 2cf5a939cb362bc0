package autoscale

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// TestValidateMetrics gives spec.metrics the API server refuses (and a
// few it takes): each refusal names the field.
func TestValidateMetrics(t *testing.T) {
	tests := []struct {
		name, metrics string
		want          string // "" when valid
	}{
		{"cpu utilization", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]`, ""},
		{"memory average value", `[{type: Resource, resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}}]`, ""},
		{"container cpu", `[{type: ContainerResource, containerResource: {name: cpu, container: app, target: {type: Utilization, averageUtilization: 50}}}]`, ""},
		{"pods", `[{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: "10"}}}]`, ""},
		{"object", `[{type: Object, object: {describedObject: {kind: Service, name: web}, metric: {name: rps}, target: {type: Value, value: "100"}}}]`, ""},
		{"external", `[{type: External, external: {metric: {name: queue}, target: {type: AverageValue, averageValue: "30"}}}]`, ""},
		{"no metrics", `[]`, ""},
		{"utilization 0", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 0}}}]`, "hpa.spec.metrics[0].resource.target.averageUtilization: must be greater than 0"},
		{"utilization -5", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: -5}}}]`, "averageUtilization: must be greater than 0"},
		{"utilization unset", `[{type: Resource, resource: {name: cpu, target: {type: Utilization}}}]`, "averageUtilization: must be greater than 0"},
		{"resource without source", `[{type: Resource}]`, "hpa.spec.metrics[0].resource: is required for type Resource"},
		{"unknown type", `[{type: Bogus}]`, `hpa.spec.metrics[0].type: "Bogus" is not Object, Pods, Resource, ContainerResource or External`},
		{"no type", `[{resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]`, `.type: "" is not`},
		{"two sources", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}, pods: {metric: {name: x}, target: {type: AverageValue, averageValue: "1"}}}]`, "hpa.spec.metrics[0]: type Resource takes .resource and no other source"},
		{"second metric bad", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}, {type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue}}}]`, "hpa.spec.metrics[1].pods.target.averageValue: must be greater than 0"},
		{"pods by value", `[{type: Pods, pods: {metric: {name: rps}, target: {type: Value, value: "1"}}}]`, `pods.target.type: "Value" is not one of [AverageValue]`},
		{"pods without name", `[{type: Pods, pods: {metric: {}, target: {type: AverageValue, averageValue: "1"}}}]`, ".pods.metric.name: is required"},
		{"external value negative", `[{type: External, external: {metric: {name: q}, target: {type: Value, value: "-3"}}}]`, "external.target.value: must be greater than 0"},
		{"memory averageValue 0", `[{type: Resource, resource: {name: memory, target: {type: AverageValue, averageValue: "0"}}}]`, "resource.target.averageValue: must be greater than 0"},
		{"resource by value", `[{type: Resource, resource: {name: cpu, target: {type: Value, value: "1"}}}]`, `resource.target.type: "Value" is not one of`},
		{"object without described object", `[{type: Object, object: {metric: {name: rps}, target: {type: Value, value: "1"}}}]`, ".object.describedObject: kind and name are required"},
		{"container resource without container", `[{type: ContainerResource, containerResource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]`, ".containerResource: name and container are required"},
		{"external utilization", `[{type: External, external: {metric: {name: q}, target: {type: Utilization, averageUtilization: 50}}}]`, `external.target.type: "Utilization" is not one of`},
		// Every value given is checked, not only the one the type reads.
		{"utilization with a negative value", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50, value: "-1"}}}]`, "resource.target.value: must be greater than 0"},
		{"value with averageUtilization 0", `[{type: Object, object: {describedObject: {kind: Service, name: web}, metric: {name: rps}, target: {type: Value, value: "1", averageUtilization: 0}}}]`, "object.target.averageUtilization: must be greater than 0"},
		// The controller reads a resource's averageValue, and an external
		// metric's, before the type: the API server refuses a second value.
		{"resource utilization and averageValue", `[{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50, averageValue: 500m}}}]`, "resource.target.averageValue: may not be set with averageUtilization"},
		{"container resource utilization and averageValue", `[{type: ContainerResource, containerResource: {name: cpu, container: app, target: {type: AverageValue, averageUtilization: 50, averageValue: 500m}}}]`, "containerResource.target.averageValue: may not be set with averageUtilization"},
		{"external value and averageValue", `[{type: External, external: {metric: {name: q}, target: {type: Value, value: "1", averageValue: "2"}}}]`, "external.target.value: may not be set with averageValue"},
		{"object value and averageValue", `[{type: Object, object: {describedObject: {kind: Service, name: web}, metric: {name: rps}, target: {type: Value, value: "1", averageValue: "2"}}}]`, ""},
		// Names as the API server takes them.
		{"metric name with a slash", `[{type: Pods, pods: {metric: {name: a/b}, target: {type: AverageValue, averageValue: "1"}}}]`, `pods.metric.name: "a/b" may not contain '/'`},
		{"external metric name ..", `[{type: External, external: {metric: {name: ".."}, target: {type: Value, value: "1"}}}]`, `external.metric.name: ".." may not be '..'`},
		{"described object name with %", `[{type: Object, object: {describedObject: {kind: Service, name: "w%b"}, metric: {name: rps}, target: {type: Value, value: "1"}}}]`, `object.describedObject.name: "w%b" may not contain '%'`},
		{"container not a DNS label", `[{type: ContainerResource, containerResource: {name: cpu, container: App_1, target: {type: Utilization, averageUtilization: 50}}}]`, "containerResource.container: a lowercase RFC 1123 label"},
		{"keda-style external name", `[{type: External, external: {metric: {name: s0-prometheus, selector: {matchLabels: {scaledobject.keda.sh/name: web}}}, target: {type: AverageValue, averageValue: "70"}}}]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spec autoscalingv2.HorizontalPodAutoscalerSpec
			if err := yaml.UnmarshalStrict([]byte(`{maxReplicas: 5, metrics: `+tt.metrics+`}`), &spec); err != nil {
				t.Fatal(err)
			}
			err := ValidateMetrics(&spec)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateMetrics = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.Is(err, ErrInvalidInput) || !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateMetrics = %v, want ErrInvalidInput and a FieldError with %q", err, tt.want)
			}
			// A simulation of the spec refuses it the same way.
			s := Scenario{HPA: &autoscalingv2.HorizontalPodAutoscaler{Spec: spec}, Duration: 60e9, Load: []LoadPoint{{Value: 1}}}
			if err := s.Validate(); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Scenario.Validate = %v, want the same refusal", err)
			}
		})
	}
}

// TestSaturate converts floats past int64's range as the quantities
// made from demands and thresholds need: to the nearest int64, never
// wrapped to the other sign.
func TestSaturate(t *testing.T) {
	tests := []struct {
		in   float64
		want int64
	}{
		{1.5, 1}, {-1.5, -1}, {0, 0}, {math.NaN(), 0},
		{9.3e18, math.MaxInt64}, {1e308, math.MaxInt64}, {math.Inf(1), math.MaxInt64},
		{-9.3e18, math.MinInt64}, {math.Inf(-1), math.MinInt64},
	}
	for _, tt := range tests {
		if got := saturate(tt.in); got != tt.want {
			t.Errorf("saturate(%g) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if q := MetricValue(1e17); q.Sign() <= 0 || q.Cmp(resource.MustParse("1e16")) <= 0 {
		t.Errorf("MetricValue(1e17) = %s, want a large positive quantity", q.String())
	}
}

// TestDemandBound refuses a demand past MaxDemand, in a replayed curve
// and in a simulated load, naming the point.
func TestDemandBound(t *testing.T) {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5}}
	r := Replay{HPA: hpa, Curve: []LoadPoint{{Value: 1}, {At: 60e9, Value: 2e12}}, PodCapacity: 1}
	if err := r.Validate(); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "curve[1].value 2e+12 must be within [0, 1e+12]") {
		t.Errorf("Replay.Validate = %v, want curve[1] refused", err)
	}
	s := Scenario{HPA: hpa, Duration: 60e9, Load: []LoadPoint{{Value: 1e308}}}
	if err := s.Validate(); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "load[0].value 1e+308 must be within") {
		t.Errorf("Scenario.Validate = %v, want load[0] refused", err)
	}
}

// TestWorkBounds refuses a replay and a tuning whose work (syncs times the
// most replicas) is past the bounds, naming what to change; a week of the
// controller's default syncs over 1000 replicas is still a replay.
func TestWorkBounds(t *testing.T) {
	hpa := func(maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := yaml.UnmarshalStrict([]byte(`{spec: {scaleTargetRef: {kind: Deployment, name: web}, maxReplicas: 1, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]}}`), &h); err != nil {
			t.Fatal(err)
		}
		h.Spec.MaxReplicas = maxReplicas
		return &h
	}
	// The last point holds for the step before it: a week in all.
	week := []LoadPoint{{Value: 1}, {At: 7*24*time.Hour - 2*time.Minute, Value: 1}, {At: 7*24*time.Hour - time.Minute, Value: 1}}
	day := []LoadPoint{{Value: 1}, {At: 24*time.Hour - 2*time.Minute, Value: 1}, {At: 24*time.Hour - time.Minute, Value: 1}}
	withWindow := func(h *autoscalingv2.HorizontalPodAutoscaler, seconds int32) *autoscalingv2.HorizontalPodAutoscaler {
		h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &seconds}}
		return h
	}
	kedaWork := func(poll, maxReplicas int32) *ScaledObject {
		var so ScaledObject
		if err := yaml.UnmarshalStrict([]byte(`{spec: {scaleTargetRef: {name: web}, minReplicaCount: 1, triggers: [{type: prometheus, metadata: {query: q, threshold: "1"}}]}}`), &so); err != nil {
			t.Fatal(err)
		}
		so.Spec.PollingInterval, so.Spec.MaxReplicaCount = &poll, &maxReplicas
		return &so
	}
	tests := []struct {
		name string
		r    Replay
		want string // "" when it is a replay
	}{
		{"a week of 15s syncs over 480 replicas", Replay{HPA: hpa(480), Curve: week, PodCapacity: 1}, ""},
		{"a day of 15s syncs over 1000 replicas", Replay{HPA: hpa(1000), Curve: day, PodCapacity: 1}, ""},
		{"a week of 15s syncs over 1000 replicas", Replay{HPA: hpa(1000), Curve: week, PodCapacity: 1},
			"syncs every 15s over up to 1000 replicas is 4.1e+07 pod-syncs, more than 2e+07 (about 8 s): give a longer sync period, fewer replicas"},
		{"a week of 1s syncs over 1000 replicas", Replay{HPA: hpa(1000), Curve: week, PodCapacity: 1, SyncPeriod: time.Second},
			"syncs every 1s over up to 1000 replicas is 6.2e+08 pod-syncs, more than 2e+07"},
		{"a week of 1s syncs over 8 replicas", Replay{HPA: hpa(8), Curve: week, PodCapacity: 1, SyncPeriod: time.Second}, ""},
		// A week of 1s syncs under a one-hour window took 45 s with 15 pods:
		// each sync scans an hour of recommendations.
		{"a week of 1s syncs under a one-hour window", Replay{HPA: withWindow(hpa(8), 3600), Curve: week, PodCapacity: 1, SyncPeriod: time.Second},
			"over up to 8 replicas is 1.4e+08 pod-syncs, more than 2e+07 (about 8 s): give a longer sync period, shorter stabilization windows"},
		{"a week of 1s syncs under a day's downscale window", Replay{HPA: hpa(1), Curve: week, PodCapacity: 1, SyncPeriod: time.Second, Config: Config{DownscaleStabilizationWindow: 24 * time.Hour}},
			"shorter stabilization windows and policy periods (or config downscaleStabilizationWindow)"},
		{"a week of 1s KEDA polls over 1000 replicas", Replay{ScaledObject: kedaWork(1, 1000), Curve: week, PodCapacity: 1},
			"syncs every 15s over up to 1000 replicas is 4.1e+07 pod-syncs"},
		{"a week of 1s KEDA polls over 300 replicas", Replay{ScaledObject: kedaWork(1, 300), Curve: week, PodCapacity: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want a replay", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrInvalidInput saying %q", err, tt.want)
			}
		})
	}
	// A replay whose sync period and polling interval make a clock of
	// 1ms steps, each integrating 20 pods; a simulation's steps of 1ms
	// cost next to nothing (a week of them took 1.6 s).
	r := Replay{ScaledObject: kedaWork(15, 20), Curve: week, PodCapacity: 1, SyncPeriod: 15001 * time.Millisecond}
	if err := r.Validate(); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "is 1.3e+08 pod-syncs, more than 2e+07 (about 8 s): the clock steps by the greatest common divisor of the sync period, the polling interval and the sync phase") {
		t.Errorf("Replay.Validate = %v, want a clock of 1ms steps refused", err)
	}
	s := Scenario{HPA: hpa(100), Duration: 7 * 24 * time.Hour, Load: week, SyncPhase: time.Millisecond}
	if err := s.Validate(); err != nil {
		t.Errorf("Scenario.Validate = %v, want a simulation with a sync phase of 1ms", err)
	}
	// The default grid over a week of 15s syncs: 241 replays, each
	// counted with its own windows.
	_, err := Tune(t.Context(), Replay{HPA: hpa(480), Curve: week, PodCapacity: 1}, TuneSpace{}, 0, nil)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "tuning replays 241 specs of up to 2e+07 pod-syncs each, 4.8e+09 in all, more than 1.2e+09 (about 8 minutes)") {
		t.Fatalf("Tune = %v, want the tuning refused before any replay", err)
	}
	// The interrupt test of cmd/shoal tunes the default grid over a week
	// of 15s syncs and up to 100 replicas: within the bound.
	var total float64
	base := Replay{HPA: hpa(100), Curve: week, PodCapacity: 1}
	sc := base.scenario()
	total += sc.work(true).total()
	for _, st := range DefaultTuneSpace().settings() {
		c := sc
		c.HPA = st.apply(base.HPA, 1, resource.MustParse("1"))
		total += c.work(true).total()
	}
	if total > MaxTuneWork {
		t.Errorf("the default grid over 100 replicas is %.3g pod-syncs, more than MaxTuneWork", total)
	}
}

// TestHugeValuesSaturate replays demands of up to MaxDemand, and specs
// with the largest policies the API server takes, through every kind of
// metric: the proposals past int32 (a utilization of 10^14 percent, a
// policy of 2^31 percent) saturate and the spec scales to its maximum,
// where they wrapped and a demand of 10^9 pods' worth peaked below a
// demand of 10^7.
func TestHugeValuesSaturate(t *testing.T) {
	spec := func(metric string) *autoscalingv2.HorizontalPodAutoscaler {
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := yaml.UnmarshalStrict([]byte(`{spec: {scaleTargetRef: {kind: Deployment, name: web}, minReplicas: 2, maxReplicas: 20, metrics: [`+metric+`]}}`), &h); err != nil {
			t.Fatal(err)
		}
		return &h
	}
	cpu := `{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}`
	step := func(v float64) []LoadPoint {
		return []LoadPoint{{Value: 10}, {At: time.Minute, Value: v}, {At: 5 * time.Minute, Value: v}}
	}
	huge := spec(cpu)
	huge.Spec.MaxReplicas = 1000
	huge.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{
		Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: math.MaxInt32, PeriodSeconds: 15}}}}
	tests := []struct {
		name string
		r    Replay
		want int32 // peak replicas
	}{
		{"cpu utilization, 1e7", Replay{HPA: spec(cpu), Curve: step(1e7)}, 20},
		{"cpu utilization, 1e9", Replay{HPA: spec(cpu), Curve: step(1e9)}, 20},
		{"cpu utilization, MaxDemand", Replay{HPA: spec(cpu), Curve: step(MaxDemand)}, 20},
		{"cpu utilization, MaxDemand over a tiny capacity", Replay{HPA: spec(cpu), Curve: step(MaxDemand), PodCapacity: 1e-300}, 20},
		{"cpu average value, MaxDemand", Replay{HPA: spec(`{type: Resource, resource: {name: cpu, target: {type: AverageValue, averageValue: 100m}}}`), Curve: step(MaxDemand)}, 20},
		{"pods metric, MaxDemand", Replay{HPA: spec(`{type: Pods, pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 1m}}}`), Curve: step(MaxDemand)}, 20},
		{"external value, MaxDemand", Replay{HPA: spec(`{type: External, external: {metric: {name: q}, target: {type: Value, value: 1m}}}`), Curve: step(MaxDemand)}, 20},
		{"object average value, MaxDemand", Replay{HPA: spec(`{type: Object, object: {describedObject: {kind: Service, name: web}, metric: {name: q}, target: {type: AverageValue, averageValue: 1m}}}`), Curve: step(MaxDemand)}, 20},
		{"a policy of 2^31 percent from 200 replicas", Replay{HPA: huge, Curve: step(900), InitialReplicas: 200, PodStartup: time.Second}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := tt.r.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if rep.PeakReplicas != tt.want {
				t.Errorf("peak %d replicas, want %d", rep.PeakReplicas, tt.want)
			}
		})
	}
}

// TestReportJSON encodes a figure that is not finite as null, as
// PeakOverload's infinity always was, instead of failing the whole
// report with encoding/json's "unsupported value: +Inf"; finite figures
// keep their keys and order.
func TestReportJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Report
		want string
	}{
		{"finite", Report{PodSeconds: 10, UnderSeconds: 1.5, Shortfall: 2, PeakOverload: 3, ScaleEvents: 1, PeakReplicas: 4},
			`{"podSeconds":10,"underSeconds":1.5,"shortfall":2,"scaleEvents":1,"peakReplicas":4,"peakOverload":3}`},
		{"no ready pod", Report{PodSeconds: 10, PeakOverload: math.Inf(1)},
			`{"podSeconds":10,"underSeconds":0,"shortfall":0,"scaleEvents":0,"peakReplicas":0,"peakOverload":null}`},
		{"overflowed sums", Report{PodSeconds: math.Inf(1), UnderSeconds: math.NaN(), Shortfall: math.Inf(1), PeakOverload: math.NaN(), Series: []ReplayPoint{{Demand: 1}}},
			`{"podSeconds":null,"underSeconds":null,"shortfall":null,"scaleEvents":0,"peakReplicas":0,"series":[{"time":0,"demand":1,"replicas":0,"ready":0}],"peakOverload":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}
