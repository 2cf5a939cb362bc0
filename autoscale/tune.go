package autoscale

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-dev/shoal/keda"
)

// MaxTuneCandidates bounds a tuning search: the grid's size (the product
// of its axes' lengths) must not exceed it, so the work is at most this
// many replays.
const MaxTuneCandidates = 512

// TuneSpace is the grid of behavior settings a tuning search tries. An
// empty axis keeps the spec's own setting. The zero value searches
// DefaultTuneSpace. For a ScaledObject the axes land where KEDA takes
// them from when it builds its HPA: the target in the trigger's
// metadata, the rest in advanced.horizontalPodAutoscalerConfig.behavior.
type TuneSpace struct {
	// Targets are target utilisations in (0, 1]: a Utilization target
	// becomes that percentage, a cpu AverageValue target that fraction of
	// the CPU request, any other AverageValue target that fraction of the
	// pod capacity. Value targets are kept. A ScaledObject's prometheus
	// trigger takes it as metadata.threshold (an AverageValue), a cpu
	// trigger as metadata.value.
	Targets []float64
	// ScaleUpWindows and ScaleDownWindows are stabilization windows.
	ScaleUpWindows, ScaleDownWindows []time.Duration
	// ScaleUpPolicies and ScaleDownPolicies are policy sets, each applied
	// with selectPolicy Max.
	ScaleUpPolicies, ScaleDownPolicies [][]autoscalingv2.HPAScalingPolicy
	// Tolerances are per-direction tolerance pairs (up, down).
	Tolerances [][2]float64
	// CooldownPeriods are a ScaledObject's cooldownPeriod: how long KEDA
	// waits after the last active poll before it scales to zero. They
	// matter only with minReplicaCount 0, and an HPA has none, so the
	// axis is refused elsewhere. Empty keeps the spec's.
	CooldownPeriods []time.Duration
}

// DefaultTuneSpace is the grid searched when none is given: 5 targets × 2
// scale-up windows × 3 scale-down windows × 2 × 2 policy sets × 2
// tolerance pairs = 240 candidates.
func DefaultTuneSpace() TuneSpace {
	return TuneSpace{
		Targets:          []float64{0.5, 0.6, 0.7, 0.8, 0.9},
		ScaleUpWindows:   []time.Duration{0, time.Minute},
		ScaleDownWindows: []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute},
		ScaleUpPolicies: [][]autoscalingv2.HPAScalingPolicy{
			{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}, {Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}},
			{{Type: autoscalingv2.PercentScalingPolicy, Value: 900, PeriodSeconds: 15}},
		},
		ScaleDownPolicies: [][]autoscalingv2.HPAScalingPolicy{
			{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
			{{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60}},
		},
		Tolerances: [][2]float64{{0.1, 0.1}, {0.05, 0.2}},
	}
}

// MaxTuneWork bounds a tuning's work, the sum of its replays' as
// MaxSimulationWork counts them: about 8 minutes on one core of a 2-core
// machine if every replay ran at its maximum replicas, most often far
// less. The default grid (241 replays) over a week of 15 s syncs holds up
// to 100 replicas.
const MaxTuneWork = 1.2e9

// size is the number of candidates, saturating above MaxTuneCandidates.
func (s TuneSpace) size() int {
	n := 1
	for _, l := range []int{len(s.Targets), len(s.ScaleUpWindows), len(s.ScaleDownWindows), len(s.ScaleUpPolicies), len(s.ScaleDownPolicies), len(s.Tolerances), len(s.CooldownPeriods)} {
		n *= max(l, 1)
		if n > MaxTuneCandidates {
			return MaxTuneCandidates + 1
		}
	}
	return n
}

// Validate checks the axes' values and the grid's size.
func (s TuneSpace) Validate() error {
	if n := s.size(); n > MaxTuneCandidates {
		return fmt.Errorf("%w: the tuning grid has more than %d candidates: give fewer values per axis", ErrInvalidInput, MaxTuneCandidates)
	}
	for i, v := range s.Targets {
		if !(v > 0 && v <= 1) {
			return fmt.Errorf("%w: targets[%d] = %g is not within (0, 1]", ErrInvalidInput, i, v)
		}
	}
	for i, w := range append(append([]time.Duration{}, s.ScaleUpWindows...), s.ScaleDownWindows...) {
		if w < 0 || w > time.Hour || w%time.Second != 0 {
			return fmt.Errorf("%w: stabilization window %d (%s) must be whole seconds within [0, 1h]", ErrInvalidInput, i, w)
		}
	}
	for i, set := range append(append([][]autoscalingv2.HPAScalingPolicy{}, s.ScaleUpPolicies...), s.ScaleDownPolicies...) {
		if len(set) == 0 {
			return fmt.Errorf("%w: policy set %d is empty", ErrInvalidInput, i)
		}
		for j, p := range set {
			if (p.Type != autoscalingv2.PodsScalingPolicy && p.Type != autoscalingv2.PercentScalingPolicy) || p.Value <= 0 || p.PeriodSeconds <= 0 || p.PeriodSeconds > 1800 {
				return fmt.Errorf("%w: policy set %d, policy %d: type must be Pods or Percent, value > 0, periodSeconds within (0, 1800]", ErrInvalidInput, i, j)
			}
		}
	}
	for i, t := range s.Tolerances {
		for _, v := range t {
			if !(v >= 0 && v < 1) {
				return fmt.Errorf("%w: tolerances[%d] = %v: each must be within [0, 1)", ErrInvalidInput, i, t)
			}
		}
	}
	for i, c := range s.CooldownPeriods {
		if c < 0 || c > 24*time.Hour || c%time.Second != 0 {
			return fmt.Errorf("%w: cooldown period %d (%s) must be whole seconds within [0, 24h]", ErrInvalidInput, i, c)
		}
	}
	return nil
}

func (s TuneSpace) empty() bool {
	return len(s.Targets) == 0 && len(s.ScaleUpWindows) == 0 && len(s.ScaleDownWindows) == 0 &&
		len(s.ScaleUpPolicies) == 0 && len(s.ScaleDownPolicies) == 0 && len(s.Tolerances) == 0 && len(s.CooldownPeriods) == 0
}

// Setting is one point of the grid; a nil field keeps the spec's setting.
type Setting struct {
	Target                 *float64                         `json:"target,omitempty"`
	ScaleUpWindowSeconds   *int32                           `json:"scaleUpWindowSeconds,omitempty"`
	ScaleDownWindowSeconds *int32                           `json:"scaleDownWindowSeconds,omitempty"`
	ScaleUpPolicies        []autoscalingv2.HPAScalingPolicy `json:"scaleUpPolicies,omitempty"`
	ScaleDownPolicies      []autoscalingv2.HPAScalingPolicy `json:"scaleDownPolicies,omitempty"`
	Tolerance              *[2]float64                      `json:"tolerance,omitempty"`
	CooldownSeconds        *int32                           `json:"cooldownSeconds,omitempty"`
}

// Candidate is one tried spec and its replay.
type Candidate struct {
	// Index is the candidate's place in the grid's order; the spec as
	// given has index -1.
	Index   int     `json:"index"`
	Setting Setting `json:"setting"`
	// HPA or ScaledObject, as the replay's, is the spec tried: the
	// replay's own with the setting's fields replaced.
	HPA          *autoscalingv2.HorizontalPodAutoscaler `json:"-"`
	ScaledObject *ScaledObject                          `json:"-"`
	Report       Report                                 `json:"report"`
}

// Tuning is a search's outcome.
type Tuning struct {
	// Baseline is the spec as given.
	Baseline Candidate `json:"baseline"`
	// Frontier is the cost / under-provisioning Pareto frontier over the
	// baseline and the grid, cheapest first: each has fewer
	// under-provisioned seconds than every cheaper candidate. Of
	// candidates with the same figures the first in grid order (the
	// baseline before the grid) stands for all.
	Frontier []Candidate `json:"frontier"`
	// Recommended is the cheapest candidate, the baseline included, whose
	// under-provisioned seconds are within the budget (ties: less
	// shortfall, fewer scale events, the baseline, grid order); if none
	// is, the one with the fewest. Index -1 means: keep the spec.
	Recommended Candidate `json:"recommended"`
	// WithinBudget says whether Recommended meets the budget.
	WithinBudget bool `json:"withinBudget"`
	// Tried is the number of candidates replayed, baseline excluded.
	Tried int `json:"tried"`
}

// Tune replays the curve through every candidate of space applied to the
// replay's HPA or ScaledObject and returns the frontier and the
// recommended spec: the cheapest whose under-provisioned seconds are at
// most budget. The work is at most MaxTuneCandidates+1 replays; the order
// of candidates is fixed, so the result is deterministic.
//
// A ScaledObject is tuned as KEDA turns it into an HPA (see
// [ScaledObject.HPA]); its pollingInterval, minReplicaCount and
// maxReplicaCount are kept and replayed. It must have one trigger, of
// type prometheus or cpu, and no scalingModifiers (see
// [ScaledObject.Tunable]).
//
// Tune stops with ctx's error when ctx ends first. progress, if not nil,
// is called after each replay with the replays done and their total, the
// baseline's included.
func Tune(ctx context.Context, r Replay, space TuneSpace, budget time.Duration, progress func(done, total int)) (Tuning, error) {
	if (r.HPA == nil) == (r.ScaledObject == nil) {
		return Tuning{}, fmt.Errorf("%w: tuning needs exactly one of an hpa and a scaledObject", ErrInvalidInput)
	}
	if budget < 0 {
		return Tuning{}, fmt.Errorf("%w: the under-provisioning budget must not be negative", ErrInvalidInput)
	}
	if space.empty() {
		space = DefaultTuneSpace()
	}
	if err := space.Validate(); err != nil {
		return Tuning{}, err
	}
	if r.ScaledObject != nil {
		if err := r.ScaledObject.Tunable(); err != nil {
			return Tuning{}, err
		}
		if len(space.CooldownPeriods) > 0 && int32Or(r.ScaledObject.Spec.MinReplicaCount, 0) > 0 {
			return Tuning{}, fmt.Errorf("%w: cooldown periods are searched only for a scaledObject with spec.minReplicaCount 0 (it is %d): cooldownPeriod times the scale to zero, and this one never goes there",
				ErrInvalidInput, *r.ScaledObject.Spec.MinReplicaCount)
		}
	} else if len(space.CooldownPeriods) > 0 {
		return Tuning{}, fmt.Errorf("%w: cooldown periods are a scaledObject's cooldownPeriod; an hpa has none", ErrInvalidInput)
	}
	settings := space.settings()
	capacity := r.PodCapacity
	if capacity == 0 {
		capacity = 1
	}
	request := r.CPURequest
	if request.IsZero() {
		request = resource.MustParse("1")
	}
	// The work is counted on the valid replay (a metric resolution of a
	// nanosecond must be refused before its observed curve is made).
	if err := r.Validate(); err != nil {
		return Tuning{}, err
	}
	candidates := make([]Replay, len(settings))
	base := r.scenario()
	w, most := base.work(true).total(), base.work(true).total()
	for i, st := range settings {
		c := r
		if r.HPA != nil {
			c.HPA = st.apply(r.HPA, capacity, request)
		} else {
			c.ScaledObject = st.applyScaledObject(r.ScaledObject, capacity, request)
		}
		candidates[i] = c
		cw := base
		cw.HPA, cw.ScaledObject = c.HPA, c.ScaledObject
		w += cw.work(true).total()
		most = max(most, cw.work(true).total())
	}
	if w > MaxTuneWork {
		return Tuning{}, fmt.Errorf("%w: tuning replays %d specs of up to %.2g pod-syncs each, %.2g in all, more than %.2g (about %.0f minutes): give fewer values per axis or shorter windows, a longer sync period, fewer replicas or a shorter curve",
			ErrInvalidInput, len(settings)+1, most, w, MaxTuneWork, MaxTuneWork*podSyncSeconds/60)
	}
	report := func(done int) {
		if progress != nil {
			progress(done, len(settings)+1)
		}
	}
	baseReport, err := r.Run(ctx)
	if err != nil {
		return Tuning{}, err
	}
	report(1)
	out := Tuning{Baseline: Candidate{Index: -1, HPA: r.HPA, ScaledObject: r.ScaledObject, Report: baseReport}}
	var all []Candidate
	for i, st := range settings {
		c := candidates[i]
		rep, err := c.Run(ctx)
		if err != nil {
			return Tuning{}, fmt.Errorf("candidate %d: %w", i, err)
		}
		report(i + 2)
		rep.Series = nil // the frontier's are replayed again by callers that chart them
		all = append(all, Candidate{Index: i, Setting: st, HPA: c.HPA, ScaledObject: c.ScaledObject, Report: rep})
	}
	out.Tried = len(all)
	// The spec as given competes too: when nothing in the grid beats it,
	// the advice is to keep it.
	all = append([]Candidate{out.Baseline}, all...)
	out.Frontier = frontier(all)
	out.Recommended, out.WithinBudget = recommend(all, budget.Seconds())
	return out, nil
}

// settings enumerates the grid in a fixed order, the last axis fastest.
func (s TuneSpace) settings() []Setting {
	out := []Setting{{}}
	expand := func(n int, set func(*Setting, int)) {
		if n == 0 {
			return
		}
		next := make([]Setting, 0, len(out)*n)
		for _, st := range out {
			for i := range n {
				c := st
				set(&c, i)
				next = append(next, c)
			}
		}
		out = next
	}
	expand(len(s.Targets), func(c *Setting, i int) { c.Target = &s.Targets[i] })
	seconds := func(d time.Duration) *int32 { v := int32(d / time.Second); return &v }
	expand(len(s.ScaleUpWindows), func(c *Setting, i int) { c.ScaleUpWindowSeconds = seconds(s.ScaleUpWindows[i]) })
	expand(len(s.ScaleDownWindows), func(c *Setting, i int) { c.ScaleDownWindowSeconds = seconds(s.ScaleDownWindows[i]) })
	expand(len(s.ScaleUpPolicies), func(c *Setting, i int) { c.ScaleUpPolicies = s.ScaleUpPolicies[i] })
	expand(len(s.ScaleDownPolicies), func(c *Setting, i int) { c.ScaleDownPolicies = s.ScaleDownPolicies[i] })
	expand(len(s.Tolerances), func(c *Setting, i int) { c.Tolerance = &s.Tolerances[i] })
	expand(len(s.CooldownPeriods), func(c *Setting, i int) { c.CooldownSeconds = seconds(s.CooldownPeriods[i]) })
	return out
}

// apply returns a copy of hpa with the setting's fields replacing its own.
func (st Setting) apply(hpa *autoscalingv2.HorizontalPodAutoscaler, capacity float64, request resource.Quantity) *autoscalingv2.HorizontalPodAutoscaler {
	h := hpa.DeepCopy()
	if st.Target != nil {
		for i := range h.Spec.Metrics {
			m := &h.Spec.Metrics[i]
			setTarget(metricTarget(m), *st.Target, perPod(m, capacity, request))
		}
	}
	h.Spec.Behavior = st.applyBehavior(h.Spec.Behavior)
	return h
}

// applyScaledObject returns a copy of so with the setting's fields
// replacing its own, where KEDA reads them: the target in the (single,
// see Tunable) trigger's metadata, the behavior in
// advanced.horizontalPodAutoscalerConfig.behavior, the cooldown in
// cooldownPeriod.
func (st Setting) applyScaledObject(so *ScaledObject, capacity float64, request resource.Quantity) *ScaledObject {
	out := so.deepCopy()
	s := &out.Spec
	if st.Target != nil {
		for i := range s.Triggers {
			t := &s.Triggers[i]
			switch {
			case t.Type == string(corev1.ResourceCPU) && autoscalingv2.MetricTargetType(cpuMetricType(t)) == autoscalingv2.UtilizationMetricType:
				t.Metadata["value"] = strconv.Itoa(int(math.Round(*st.Target * 100)))
			case t.Type == string(corev1.ResourceCPU):
				t.Metadata["value"] = resource.NewMilliQuantity(saturate(math.Round(*st.Target*float64(request.MilliValue()))), resource.DecimalSI).String()
			case autoscalingv2.MetricTargetType(t.MetricType) != autoscalingv2.ValueMetricType:
				// KEDA's metrics adapter reports in thousandths.
				t.Metadata["threshold"] = strconv.FormatFloat(math.Round(*st.Target*capacity*1000)/1000, 'f', -1, 64)
			}
		}
	}
	if st.CooldownSeconds != nil {
		c := *st.CooldownSeconds
		s.CooldownPeriod = &c
	}
	if s.Advanced == nil {
		s.Advanced = &keda.AdvancedConfig{}
	}
	if s.Advanced.HorizontalPodAutoscalerConfig == nil {
		s.Advanced.HorizontalPodAutoscalerConfig = &keda.HPAConfig{}
	}
	cfg := s.Advanced.HorizontalPodAutoscalerConfig
	cfg.Behavior = st.applyBehavior(cfg.Behavior)
	return out
}

// cpuMetricType is a cpu trigger's metricType, or the deprecated
// metadata.type standing in for it.
func cpuMetricType(t *ScaleTrigger) string {
	if t.MetricType != "" {
		return t.MetricType
	}
	return t.Metadata["type"]
}

// perPod is the AverageValue a pod of m reads at full use: its CPU
// request for a cpu Resource metric, the pod capacity otherwise.
func perPod(m *autoscalingv2.MetricSpec, capacity float64, request resource.Quantity) float64 {
	if (m.Resource != nil && m.Resource.Name == corev1.ResourceCPU) || (m.ContainerResource != nil && m.ContainerResource.Name == corev1.ResourceCPU) {
		return request.AsApproximateFloat64()
	}
	return capacity
}

// applyBehavior returns a copy of b (nil for none) with the setting's
// windows, policies and tolerances in it. The tuned HPA always has both
// directions' rules, so the spec a user applies says what was replayed.
func (st Setting) applyBehavior(behavior *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	b := behavior.DeepCopy()
	if b == nil {
		b = &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	}
	if b.ScaleUp == nil {
		b.ScaleUp = &autoscalingv2.HPAScalingRules{}
	}
	if b.ScaleDown == nil {
		b.ScaleDown = &autoscalingv2.HPAScalingRules{}
	}
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	for _, d := range []struct {
		rules    *autoscalingv2.HPAScalingRules
		window   *int32
		policies []autoscalingv2.HPAScalingPolicy
		tol      int
	}{{b.ScaleUp, st.ScaleUpWindowSeconds, st.ScaleUpPolicies, 0}, {b.ScaleDown, st.ScaleDownWindowSeconds, st.ScaleDownPolicies, 1}} {
		if d.window != nil {
			w := *d.window
			d.rules.StabilizationWindowSeconds = &w
		}
		if d.policies != nil {
			d.rules.Policies = append([]autoscalingv2.HPAScalingPolicy(nil), d.policies...)
			d.rules.SelectPolicy = &maxPolicy
		}
		if st.Tolerance != nil {
			q := resource.MustParse(strconv.FormatFloat(st.Tolerance[d.tol], 'f', -1, 64))
			d.rules.Tolerance = &q
		}
	}
	return b
}

func metricTarget(m *autoscalingv2.MetricSpec) *autoscalingv2.MetricTarget {
	switch {
	case m.Resource != nil:
		return &m.Resource.Target
	case m.ContainerResource != nil:
		return &m.ContainerResource.Target
	case m.Pods != nil:
		return &m.Pods.Target
	case m.Object != nil:
		return &m.Object.Target
	case m.External != nil:
		return &m.External.Target
	}
	return nil
}

// setTarget sets a Utilization target to u as a percentage and an
// AverageValue target to u of what a pod reads at full use; a Value
// target is total load, not a per-pod level, and is kept.
func setTarget(t *autoscalingv2.MetricTarget, u, full float64) {
	if t == nil {
		return
	}
	switch t.Type {
	case autoscalingv2.UtilizationMetricType:
		p := int32(math.Round(u * 100))
		t.AverageUtilization = &p
	case autoscalingv2.AverageValueMetricType:
		q := MetricValue(u * full)
		t.AverageValue = &q
	}
}

// frontier returns the Pareto-optimal candidates over (pod-seconds,
// under-provisioned seconds), cheapest first.
func frontier(all []Candidate) []Candidate {
	sorted := append([]Candidate(nil), all...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Report, sorted[j].Report
		if a.PodSeconds != b.PodSeconds {
			return a.PodSeconds < b.PodSeconds
		}
		if a.UnderSeconds != b.UnderSeconds {
			return a.UnderSeconds < b.UnderSeconds
		}
		return sorted[i].Index < sorted[j].Index
	})
	var out []Candidate
	best := math.Inf(1)
	for _, c := range sorted {
		if c.Report.UnderSeconds < best {
			out = append(out, c)
			best = c.Report.UnderSeconds
		}
	}
	return out
}

// recommend applies the rule: the cheapest within budget, ties broken by
// less shortfall, fewer scale events, then grid order; with none within
// budget, the fewest under-provisioned seconds, then the cheapest.
func recommend(all []Candidate, budget float64) (Candidate, bool) {
	var best *Candidate
	for i := range all {
		c := &all[i]
		if c.Report.UnderSeconds > budget {
			continue
		}
		if best == nil || less(c.Report, best.Report) {
			best = c
		}
	}
	if best != nil {
		return *best, true
	}
	for i := range all {
		c := &all[i]
		if best == nil || c.Report.UnderSeconds < best.Report.UnderSeconds ||
			(c.Report.UnderSeconds == best.Report.UnderSeconds && less(c.Report, best.Report)) {
			best = c
		}
	}
	if best == nil {
		return Candidate{}, false
	}
	return *best, false
}

// less orders reports by cost, then shortfall, then scale events; equal
// reports keep the grid order because callers scan in it.
func less(a, b Report) bool {
	if a.PodSeconds != b.PodSeconds {
		return a.PodSeconds < b.PodSeconds
	}
	if a.Shortfall != b.Shortfall {
		return a.Shortfall < b.Shortfall
	}
	return a.ScaleEvents < b.ScaleEvents
}
