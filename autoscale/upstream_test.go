package autoscale

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// The vectors in testdata/ carry the numbers of the upstream tests in
// kubernetes/kubernetes pkg/controller/podautoscaler (v1.34, and the rows
// v1.37 added): each row names the test it comes from. Pods are described
// the way upstream's fixtures build them: currentReplicas pods (or as many as podPhase
// lists), each with two containers requesting requests[i], ready and
// running unless podReadiness/podPhase say otherwise.

// testNow is the fixed "now" of the vectors; upstream uses time.Now().
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type calcFile struct {
	Config calcConfig `json:"config"`
	Cases  []calcCase `json:"cases"`
}

type calcConfig struct {
	CPUInitializationPeriod string `json:"cpuInitializationPeriod"`
	InitialReadinessDelay   string `json:"initialReadinessDelay"`
	MetricWindow            string `json:"metricWindow"`
}

type calcCase struct {
	Name            string      `json:"name"`
	Upstream        string      `json:"upstream"`
	CurrentReplicas int32       `json:"currentReplicas"`
	Tolerances      *[2]float64 `json:"tolerances"` // [scaleDown, scaleUp]
	PodReadiness    []bool      `json:"podReadiness"`
	PodPhase        []string    `json:"podPhase"`
	// PodStartTime is "hot" (started now, just turned ready) or "cool"
	// (started 3m ago) per pod; unset pods started long ago.
	PodStartTime []string   `json:"podStartTime"`
	PodDeletion  []bool     `json:"podDeletion"`
	Resource     *calcRes   `json:"resource"`
	Metric       *calcMet   `json:"metric"`
	Expect       calcExpect `json:"expect"`
}

type calcRes struct {
	Name     string    `json:"name"`
	Requests []string  `json:"requests"`
	Levels   [][]int64 `json:"levels"` // per pod, per container, milli
	// Container selects a ContainerResource metric.
	Container         string `json:"container"`
	TargetUtilization int32  `json:"targetUtilization"`
}

type calcMet struct {
	// Type is pods, object, objectPerPod, external or externalPerPod.
	Type         string  `json:"type"`
	Name         string  `json:"name"`
	Levels       []int64 `json:"levels"` // milli
	Target       int64   `json:"target"`
	PerPodTarget int64   `json:"perPodTarget"`
}

type calcExpect struct {
	Replicas    int32  `json:"replicas"`
	Utilization int32  `json:"utilization"`
	Value       int64  `json:"value"`
	Usage       int64  `json:"usage"`
	Error       string `json:"error"`
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q: %v", s, err)
	}
	return d
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// buildPods makes the pods of an upstream replica-calculator fixture.
func (tc *calcCase) buildPods(t *testing.T) []Pod {
	n := int(tc.CurrentReplicas)
	if len(tc.PodPhase) > n {
		n = len(tc.PodPhase)
	}
	var pods []Pod
	for i := 0; i < n; i++ {
		p := Pod{Name: fmt.Sprintf("test-pod-%d", i), Phase: corev1.PodRunning, Ready: true}
		if i < len(tc.PodReadiness) {
			p.Ready = tc.PodReadiness[i]
		}
		if i < len(tc.PodPhase) {
			p.Phase = corev1.PodPhase(tc.PodPhase[i])
		}
		if i < len(tc.PodDeletion) {
			p.Deleted = tc.PodDeletion[i]
		}
		start := time.Time{}
		if i < len(tc.PodStartTime) {
			switch tc.PodStartTime[i] {
			case "hot":
				// Upstream's hot pods started now and have no sample covering
				// a full window since turning ready.
				start = testNow
				p.ReadyTransitionTime = testNow
			case "cool":
				start = testNow.Add(-3 * time.Minute)
			default:
				t.Fatalf("podStartTime %q is not hot or cool", tc.PodStartTime[i])
			}
		}
		p.StartTime = &start
		var names = []string{"container1", "container2"}
		p.Containers = []Container{{Name: names[0]}, {Name: names[1]}}
		if r := tc.Resource; r != nil {
			res := corev1.ResourceName(r.Name)
			if i < len(r.Requests) {
				q := resource.MustParse(r.Requests[i])
				for c := range p.Containers {
					p.Containers[c].Requests = corev1.ResourceList{res: q}
				}
			}
			if i < len(r.Levels) {
				for c, v := range r.Levels[i] {
					p.Containers[c].Usage = corev1.ResourceList{res: *resource.NewMilliQuantity(v, resource.DecimalSI)}
				}
			}
		}
		if m := tc.Metric; m != nil && m.Type == "pods" && i < len(m.Levels) {
			p.Metrics = map[string]resource.Quantity{m.Name: *resource.NewMilliQuantity(m.Levels[i], resource.DecimalSI)}
		}
		pods = append(pods, p)
	}
	return pods
}

func TestUpstreamReplicaCalculator(t *testing.T) {
	var f calcFile
	loadYAML(t, "testdata/replica_calculator.yaml", &f)
	cfg := Config{
		CPUInitializationPeriod: mustDuration(t, f.Config.CPUInitializationPeriod),
		InitialReadinessDelay:   mustDuration(t, f.Config.InitialReadinessDelay),
		MetricWindow:            mustDuration(t, f.Config.MetricWindow),
	}.withDefaults()
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, tc := range f.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			if tc.Upstream == "" {
				t.Fatal("row does not name its upstream test")
			}
			in := &Input{Now: testNow, Pods: tc.buildPods(t)}
			c := &calculator{cfg: cfg, in: in, tol: tolerances{0.1, 0.1}, pods: in.Pods}
			if tc.Tolerances != nil {
				c.tol = tolerances{scaleDown: tc.Tolerances[0], scaleUp: tc.Tolerances[1]}
			}
			var (
				replicas int32
				util     int32
				value    int64
				err      error
			)
			switch {
			case tc.Resource != nil:
				replicas, util, value, err = c.resourceReplicas(tc.CurrentReplicas, tc.Resource.TargetUtilization, corev1.ResourceName(tc.Resource.Name), tc.Resource.Container)
			case tc.Metric != nil:
				m := tc.Metric
				var total int64
				for _, v := range m.Levels {
					total = satAdd(total, v)
				}
				switch m.Type {
				case "pods":
					samples := c.podMetricSamples(m.Name)
					replicas, value, err = c.plainReplicas(samples, tc.CurrentReplicas, m.Target, "")
				case "object", "external":
					value = total
					replicas, err = c.usageRatioReplicas(tc.CurrentReplicas, float64(total)/float64(m.Target))
				case "objectPerPod", "externalPerPod":
					replicas, value = c.perPodReplicas(tc.CurrentReplicas, total, m.PerPodTarget)
				default:
					t.Fatalf("unknown metric type %q", m.Type)
				}
			default:
				t.Fatal("row has neither resource nor metric")
			}
			if tc.Expect.Error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.Expect.Error) {
					t.Fatalf("error = %v, want one containing %q", err, tc.Expect.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if replicas != tc.Expect.Replicas {
				t.Errorf("replicas = %d, want %d", replicas, tc.Expect.Replicas)
			}
			if tc.Resource != nil {
				if util != tc.Expect.Utilization || value != tc.Expect.Value {
					t.Errorf("utilization, raw value = %d, %d; want %d, %d", util, value, tc.Expect.Utilization, tc.Expect.Value)
				}
			} else if value != tc.Expect.Usage {
				t.Errorf("usage = %d, want %d", value, tc.Expect.Usage)
			}
		})
	}
}

// satAdd adds as upstream's external metric sum does: capped at MaxInt64.
func satAdd(a, b int64) int64 {
	if b > 0 && a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

type rulesSpec struct {
	Pods          int32  `json:"pods"`
	PodsPeriod    int32  `json:"podsPeriod"`
	Percent       int32  `json:"percent"`
	PercentPeriod int32  `json:"percentPeriod"`
	Window        int32  `json:"window"`
	SelectPolicy  string `json:"selectPolicy"`
}

// rules mirrors upstream's generateScalingRules.
func (r *rulesSpec) rules() *autoscalingv2.HPAScalingRules {
	if r == nil {
		return nil
	}
	w := r.Window
	p := autoscalingv2.MaxChangePolicySelect
	if r.SelectPolicy != "" {
		p = autoscalingv2.ScalingPolicySelect(r.SelectPolicy)
	}
	out := &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &w, SelectPolicy: &p}
	if r.Pods != 0 {
		out.Policies = append(out.Policies, autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: r.Pods, PeriodSeconds: r.PodsPeriod})
	}
	if r.Percent != 0 {
		out.Policies = append(out.Policies, autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: r.Percent, PeriodSeconds: r.PercentPeriod})
	}
	return out
}

// spread places events as upstream's generateEventsUniformDistribution:
// evenly over the last periodSeconds, each in the middle of its segment.
func spread(changes []int32, periodSeconds int, up bool) []ScaleEvent {
	out := make([]ScaleEvent, len(changes))
	seg := float64(periodSeconds) / float64(len(changes))
	for i, c := range changes {
		ago := time.Duration(float64(periodSeconds) - seg*float64(i+1) + seg/2)
		e := ScaleEvent{Time: testNow.Add(-time.Second * ago), From: 100, To: 100 + c}
		if !up {
			e.To = 100 - c
		}
		out[i] = e
	}
	return out
}

type eventsSpec struct {
	Changes []int32 `json:"changes"`
	Period  int     `json:"period"`
}

type rateCase struct {
	Name       string      `json:"name"`
	Upstream   string      `json:"upstream"`
	NoBehavior bool        `json:"noBehavior"`
	Current    int32       `json:"current"`
	Desired    int32       `json:"desired"`
	Min        int32       `json:"min"`
	Max        int32       `json:"max"`
	ScaleUp    *rulesSpec  `json:"scaleUp"`
	ScaleDown  *rulesSpec  `json:"scaleDown"`
	UpEvents   *eventsSpec `json:"upEvents"`
	DownEvents *eventsSpec `json:"downEvents"`
	// LimitOnly checks only the scale-up or scale-down limit ("up", "down").
	LimitOnly string `json:"limitOnly"`
	Expect    struct {
		Replicas  int32  `json:"replicas"`
		Condition string `json:"condition"`
	} `json:"expect"`
}

type recSpec struct {
	Replicas int32  `json:"replicas"`
	Ago      string `json:"ago"`
}

type stabilizeCase struct {
	Name            string    `json:"name"`
	Upstream        string    `json:"upstream"`
	Recommendations []recSpec `json:"recommendations"`
	Current         int32     `json:"current"`
	Desired         int32     `json:"desired"`
	// UpWindow and DownWindow (seconds) select the behavior path; without
	// Behavior the 5m downscale window applies.
	Behavior   bool  `json:"behavior"`
	UpWindow   int32 `json:"upWindow"`
	DownWindow int32 `json:"downWindow"`
	Expect     struct {
		Replicas        int32   `json:"replicas"`
		Recommendations []int32 `json:"recommendations"`
	} `json:"expect"`
}

type storeCase struct {
	Name     string     `json:"name"`
	Upstream string     `json:"upstream"`
	Change   int32      `json:"change"`
	Rules    *rulesSpec `json:"rules"`
	Previous []struct {
		Change int32 `json:"change"`
		Ago    int   `json:"ago"`
	} `json:"previous"`
	Expect struct {
		ChangeInLast60s int32   `json:"changeInLast60s"`
		Changes         []int32 `json:"changes"`
	} `json:"expect"`
}

type horizontalFile struct {
	Rate      []rateCase      `json:"rate"`
	Stabilize []stabilizeCase `json:"stabilize"`
	Store     []storeCase     `json:"store"`
}

func TestUpstreamHorizontalRules(t *testing.T) {
	var f horizontalFile
	loadYAML(t, "testdata/horizontal_rules.yaml", &f)
	for _, tc := range f.Rate {
		t.Run("rate/"+tc.Name, func(t *testing.T) {
			if tc.Upstream == "" {
				t.Fatal("row does not name its upstream test")
			}
			var got int32
			var cond string
			var up, down []ScaleEvent
			if tc.UpEvents != nil {
				up = spread(tc.UpEvents.Changes, tc.UpEvents.Period, true)
			}
			if tc.DownEvents != nil {
				down = spread(tc.DownEvents.Changes, tc.DownEvents.Period, false)
			}
			switch {
			case tc.NoBehavior:
				got, cond, _ = convertDesiredReplicasWithRules(tc.Current, tc.Desired, tc.Min, tc.Max)
			case tc.LimitOnly == "up":
				got = scaleUpLimitWithRules(testNow, tc.Current, up, down, ScaleUpRules(tc.ScaleUp.rules()))
			case tc.LimitOnly == "down":
				got = scaleDownLimitWithRules(testNow, tc.Current, up, down, ScaleDownRules(tc.ScaleDown.rules()))
			default:
				got, cond, _ = convertDesiredReplicasWithBehaviorRate(testNow, rateArgs{
					up: ScaleUpRules(tc.ScaleUp.rules()), down: ScaleDownRules(tc.ScaleDown.rules()),
					minReplicas: tc.Min, maxReplicas: tc.Max, current: tc.Current, desired: tc.Desired,
					upEvents: up, downEvents: down,
				})
			}
			if got != tc.Expect.Replicas || cond != tc.Expect.Condition {
				t.Errorf("got %d %q, want %d %q", got, cond, tc.Expect.Replicas, tc.Expect.Condition)
			}
		})
	}
	for _, tc := range f.Stabilize {
		t.Run("stabilize/"+tc.Name, func(t *testing.T) {
			if tc.Upstream == "" {
				t.Fatal("row does not name its upstream test")
			}
			r := &reconciler{cfg: Config{}.withDefaults(), in: &Input{Now: testNow}, recommendations: []Recommendation{}}
			for _, rec := range tc.Recommendations {
				r.recommendations = append(r.recommendations, Recommendation{Time: testNow.Add(-mustDuration(t, rec.Ago)), Replicas: rec.Replicas})
			}
			var got int32
			if tc.Behavior {
				got, _, _ = r.stabilizeWithBehaviors(tc.Current, tc.Desired,
					&autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &tc.UpWindow},
					&autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &tc.DownWindow})
			} else {
				got = r.stabilize(tc.Desired)
			}
			if got != tc.Expect.Replicas {
				t.Errorf("stabilized = %d, want %d", got, tc.Expect.Replicas)
			}
			if tc.Expect.Recommendations != nil {
				var reps []int32
				for _, rec := range r.recommendations {
					reps = append(reps, rec.Replicas)
				}
				if fmt.Sprint(reps) != fmt.Sprint(tc.Expect.Recommendations) {
					t.Errorf("recommendations = %v, want %v", reps, tc.Expect.Recommendations)
				}
				for _, rec := range r.recommendations {
					if rec.Time.Before(testNow.Add(-time.Hour*2)) && rec.Replicas == tc.Desired {
						t.Errorf("new recommendation not stamped with now")
					}
				}
			}
		})
	}
	for _, tc := range f.Store {
		for _, dir := range []string{"up", "down"} {
			t.Run("store/"+dir+"/"+tc.Name, func(t *testing.T) {
				if tc.Upstream == "" {
					t.Fatal("row does not name its upstream test")
				}
				var prev []ScaleEvent
				for _, p := range tc.Previous {
					e := ScaleEvent{Time: testNow.Add(-time.Duration(p.Ago) * time.Second), From: 50, To: 50 + p.Change}
					if dir == "down" {
						e.To = 50 - p.Change
					}
					prev = append(prev, e)
				}
				if got := replicasChangePerPeriod(testNow, 60, prev); got != tc.Expect.ChangeInLast60s {
					t.Errorf("change in last 60s = %d, want %d", got, tc.Expect.ChangeInLast60s)
				}
				hpa := &autoscalingv2.HorizontalPodAutoscaler{}
				if rules := tc.Rules.rules(); rules != nil {
					hpa.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules, ScaleDown: rules}
				}
				r := &reconciler{in: &Input{Now: testNow}, hpa: hpa}
				if dir == "up" {
					r.upEvents = prev
					r.storeScaleEvent(10, 10+tc.Change)
					prev = r.upEvents
				} else {
					r.downEvents = prev
					r.storeScaleEvent(10, 10-tc.Change)
					prev = r.downEvents
				}
				var changes []int32
				for _, e := range prev {
					changes = append(changes, abs32(e.To-e.From))
				}
				if fmt.Sprint(changes) != fmt.Sprint(tc.Expect.Changes) {
					t.Errorf("stored changes = %v, want %v", changes, tc.Expect.Changes)
				}
			})
		}
	}
}

// TestUpstreamScaleToZero ports the v1.37 controller cases of scaling to
// and from zero (HPAScaleToZero, beta and on by default since v1.37) from
// upstream's horizontal_test.go: each row names its test and table row,
// and runs once per gate setting the row lists. The conditions are
// compared in order, as upstream compares the HPA's status.
func TestUpstreamScaleToZero(t *testing.T) {
	q := resource.MustParse
	objectValue := func(target string) autoscalingv2.MetricSpec {
		v := q(target)
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
			DescribedObject: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "some-deployment"},
			Metric:          autoscalingv2.MetricIdentifier{Name: "qps"},
			Target:          autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &v}}}
	}
	externalValue := func(target string) autoscalingv2.MetricSpec {
		v := q(target)
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "qps"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: &v}}}
	}
	cpu := func(target int32) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}
	}
	invalid := autoscalingv2.MetricSpec{Type: "CheddarCheese"}
	const (
		disabledAtZero = "AbleToScale/True/SucceededGetScale ScalingActive/False/ScalingDisabled"
		statusOK       = "AbleToScale/True/SucceededRescale ScalingActive/True/ValidMetricFound ScalingLimited/False/DesiredWithinRange"
		notZeroThenOK  = "ScaledToZero/False/NotScaledToZero " + statusOK
	)
	type run struct {
		gate    bool // HPAScaleToZero
		want    int32
		rescale bool
		conds   string
	}
	tests := []struct {
		name, upstream string
		min, current   int32
		metrics        []autoscalingv2.MetricSpec
		cpuLevels      []int64            // per pod, milli-CPU of a 1-CPU request
		value          *resource.Quantity // the object or external metric
		scaledToZero   bool               // the HPA's status carries ScaledToZero=True
		runs           []run
	}{
		{name: "from zero without condition", upstream: "TestScaleToZeroBehavior/from zero without condition",
			min: 0, current: 0, metrics: []autoscalingv2.MetricSpec{objectValue("15")}, value: ptr(q("20")),
			runs: []run{{gate: true, conds: disabledAtZero}, {gate: false, conds: disabledAtZero}}},
		{name: "minReplicas raised while scaled to zero", upstream: "TestScaleToZeroBehavior/minReplicas increased with ScaledToZero condition",
			min: 2, current: 0, metrics: []autoscalingv2.MetricSpec{objectValue("15")}, value: ptr(q("10")), scaledToZero: true,
			runs: []run{
				{gate: true, want: 2, rescale: true, conds: "ScaledToZero/False/NotScaledToZero AbleToScale/True/SucceededRescale ScalingActive/True/ValidMetricFound ScalingLimited/True/TooFewReplicas"},
				{gate: false, conds: disabledAtZero},
			}},
		{name: "stale ScaledToZero on a normal rescale", upstream: "TestScaleToZeroBehavior/stale ScaledToZero condition cleared (enabled) / removed (disabled) on normal rescale",
			min: 1, current: 3, metrics: []autoscalingv2.MetricSpec{cpu(30)}, cpuLevels: []int64{300, 500, 700}, scaledToZero: true,
			runs: []run{{gate: true, want: 5, rescale: true, conds: notZeroThenOK}, {gate: false, want: 5, rescale: true, conds: statusOK}}},
		{name: "manual scale to zero disables the HPA", upstream: "TestScaleToZeroBehavior/manual scale to zero disables HPA",
			min: 1, current: 0, metrics: []autoscalingv2.MetricSpec{cpu(50)},
			runs: []run{{gate: true, conds: disabledAtZero}, {gate: false, conds: disabledAtZero}}},
		{name: "no ScaledToZero when the gate is off", upstream: "TestScaleToZeroBehavior/no ScaledToZero condition when HPAScaleToZero disabled",
			min: 1, current: 3, metrics: []autoscalingv2.MetricSpec{cpu(30)}, cpuLevels: []int64{300, 500, 700},
			runs: []run{{gate: false, want: 5, rescale: true, conds: statusOK}, {gate: true, want: 5, rescale: true, conds: statusOK + " ScaledToZero/False/NotScaledToZero"}}},
		{name: "scale up from zero", upstream: "TestScaleUpCMObject/scale up from zero with HPAScaleToZero enabled|disabled",
			min: 0, current: 0, metrics: []autoscalingv2.MetricSpec{objectValue("15")}, value: ptr(q("20")), scaledToZero: true,
			runs: []run{{gate: true, want: 2, rescale: true, conds: notZeroThenOK}, {gate: false, conds: disabledAtZero}}},
		{name: "scale up from zero ignores tolerance", upstream: "TestScaleUpCMObject/scale up from zero ignores tolerance with HPAScaleToZero enabled|disabled",
			min: 0, current: 0, metrics: []autoscalingv2.MetricSpec{objectValue("1")}, value: ptr(q("1")), scaledToZero: true,
			runs: []run{{gate: true, want: 1, rescale: true, conds: notZeroThenOK}, {gate: false, conds: disabledAtZero}}},
		{name: "from zero with CPU and an invalid metric", upstream: "TestScaleWithOneInvalidMetric/from zero with invalid metric, HPAScaleToZero enabled|disabled",
			min: 0, current: 0, metrics: []autoscalingv2.MetricSpec{cpu(30), invalid}, cpuLevels: []int64{300, 400, 500},
			runs: []run{{gate: true, conds: disabledAtZero}, {gate: false, conds: disabledAtZero}}},
		{name: "scale down to zero on an object metric", upstream: "TestScaleDownCM/scale down to zero object metric with HPAScaleToZero enabled|disabled",
			min: 0, current: 5, metrics: []autoscalingv2.MetricSpec{objectValue("20")}, value: ptr(q("0")),
			runs: []run{{gate: true, want: 0, rescale: true, conds: statusOK + " ScaledToZero/True/ScaledToZero"}, {gate: false, want: 0, rescale: true, conds: statusOK}}},
		{name: "scale down to zero on an external metric", upstream: "TestScaleDownCM/scale down to zero external metric with HPAScaleToZero enabled|disabled",
			min: 0, current: 5, metrics: []autoscalingv2.MetricSpec{externalValue("14400m")}, value: ptr(q("0")),
			runs: []run{{gate: true, want: 0, rescale: true, conds: statusOK + " ScaledToZero/True/ScaledToZero"}, {gate: false, want: 0, rescale: true, conds: statusOK}}},
		{name: "CPU down to zero is not ScaledToZero", upstream: "TestReplicaLimits/scale down to zero when min replicas is zero",
			min: 0, current: 3, metrics: []autoscalingv2.MetricSpec{cpu(90)}, cpuLevels: []int64{0, 0, 0},
			runs: []run{{gate: true, want: 0, rescale: true, conds: statusOK + " ScaledToZero/False/NotScaledToZero"}}},
		{name: "no scaling at zero replicas", upstream: "TestReplicaLimits/no scaling when spec replicas is zero",
			min: 3, current: 0, metrics: []autoscalingv2.MetricSpec{cpu(90)},
			runs: []run{{gate: true, conds: disabledAtZero}}},
		{name: "below min", upstream: "TestReplicaLimits/scale up to min when below min replicas",
			min: 3, current: 2, metrics: []autoscalingv2.MetricSpec{cpu(90)},
			runs: []run{{gate: true, want: 3, rescale: true, conds: "AbleToScale/True/SucceededRescale ScaledToZero/False/NotScaledToZero"}}},
		{name: "above max", upstream: "TestReplicaLimits/scale down to max when above max replicas",
			min: 3, current: 10, metrics: []autoscalingv2.MetricSpec{cpu(90)},
			runs: []run{{gate: true, want: 6, rescale: true, conds: "AbleToScale/True/SucceededRescale ScaledToZero/False/NotScaledToZero"}}},
	}
	for _, tc := range tests {
		for _, rn := range tc.runs {
			t.Run(fmt.Sprintf("%s/HPAScaleToZero=%v", tc.name, rn.gate), func(t *testing.T) {
				hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &tc.min, MaxReplicas: 6, Metrics: tc.metrics}}
				if tc.scaledToZero {
					hpa.Status.Conditions = []autoscalingv2.HorizontalPodAutoscalerCondition{{Type: autoscalingv2.ScaledToZero, Status: corev1.ConditionTrue, Reason: "ScaledToZero"}}
				}
				in := Input{HPA: hpa, Now: testNow, CurrentReplicas: tc.current, Recommendations: []Recommendation{},
					ObjectMetrics: map[string]resource.Quantity{}, ExternalMetrics: map[string]resource.Quantity{}}
				if tc.value != nil {
					in.ObjectMetrics["qps"], in.ExternalMetrics["qps"] = *tc.value, *tc.value
				}
				start := testNow.Add(-time.Hour)
				levels := tc.cpuLevels
				if levels == nil {
					levels = make([]int64, tc.current)
				}
				for i, l := range levels {
					in.Pods = append(in.Pods, Pod{Name: fmt.Sprintf("test-pod-%d", i), Ready: true, StartTime: &start,
						Requests: corev1.ResourceList{corev1.ResourceCPU: q("1")},
						Usage:    corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(l, resource.DecimalSI)}})
				}
				cfg := Config{FeatureGates: map[string]bool{GateScaleToZero: rn.gate}}
				d, err := Recommend(cfg, in)
				if err != nil {
					t.Fatal(err)
				}
				var conds []string
				for _, c := range d.Conditions {
					conds = append(conds, fmt.Sprintf("%s/%s/%s", c.Type, c.Status, c.Reason))
				}
				if d.DesiredReplicas != rn.want || d.Rescale != rn.rescale || strings.Join(conds, " ") != rn.conds {
					t.Errorf("%s:\n got %d rescale=%v [%s]\nwant %d rescale=%v [%s]", tc.upstream, d.DesiredReplicas, d.Rescale, strings.Join(conds, " "), rn.want, rn.rescale, rn.conds)
				}
			})
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestUpstreamRequestsNonExistentContainer ports v1.37's
// TestCalculatePodRequestsFromContainers_NonExistentContainer: asking for
// a container the pod does not have is an error naming both, not a
// request of zero.
func TestUpstreamRequestsNonExistentContainer(t *testing.T) {
	pods := []Pod{{Name: "test-pod", Containers: []Container{{Name: "container1",
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}
	c := &calculator{in: &Input{Now: testNow, Pods: pods}, pods: pods}
	got, err := c.requests(corev1.ResourceCPU, "non-existent-container")
	const want = "container non-existent-container not found in Pod test-pod"
	if err == nil || err.Error() != want || got != nil {
		t.Fatalf("requests() = %v, %v; want nil, %q", got, err, want)
	}
	got, err = c.requests(corev1.ResourceCPU, "container1")
	if err != nil || got["test-pod"] != 100 {
		t.Fatalf("requests(container1) = %v, %v; want 100m", got, err)
	}
}
