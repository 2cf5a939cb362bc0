package autoscale

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
)

// MaxTuneCandidates bounds a tuning search: the grid's size (the product
// of its axes' lengths) must not exceed it, so the work is at most this
// many replays.
const MaxTuneCandidates = 512

// TuneSpace is the grid of behavior settings a tuning search tries. An
// empty axis keeps the spec's own setting. The zero value searches
// DefaultTuneSpace.
type TuneSpace struct {
	// Targets are target utilisations in (0, 1]: a Utilization target
	// becomes that percentage, an AverageValue target that fraction of
	// the pod capacity. Value targets are kept.
	Targets []float64
	// ScaleUpWindows and ScaleDownWindows are stabilization windows.
	ScaleUpWindows, ScaleDownWindows []time.Duration
	// ScaleUpPolicies and ScaleDownPolicies are policy sets, each applied
	// with selectPolicy Max.
	ScaleUpPolicies, ScaleDownPolicies [][]autoscalingv2.HPAScalingPolicy
	// Tolerances are per-direction tolerance pairs (up, down).
	Tolerances [][2]float64
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

// size is the number of candidates, saturating above MaxTuneCandidates.
func (s TuneSpace) size() int {
	n := 1
	for _, l := range []int{len(s.Targets), len(s.ScaleUpWindows), len(s.ScaleDownWindows), len(s.ScaleUpPolicies), len(s.ScaleDownPolicies), len(s.Tolerances)} {
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
	return nil
}

// Setting is one point of the grid; a nil field keeps the spec's setting.
type Setting struct {
	Target                 *float64                         `json:"target,omitempty"`
	ScaleUpWindowSeconds   *int32                           `json:"scaleUpWindowSeconds,omitempty"`
	ScaleDownWindowSeconds *int32                           `json:"scaleDownWindowSeconds,omitempty"`
	ScaleUpPolicies        []autoscalingv2.HPAScalingPolicy `json:"scaleUpPolicies,omitempty"`
	ScaleDownPolicies      []autoscalingv2.HPAScalingPolicy `json:"scaleDownPolicies,omitempty"`
	Tolerance              *[2]float64                      `json:"tolerance,omitempty"`
}

// Candidate is one tried spec and its replay.
type Candidate struct {
	// Index is the candidate's place in the grid's order; the spec as
	// given has index -1.
	Index   int                                    `json:"index"`
	Setting Setting                                `json:"setting"`
	HPA     *autoscalingv2.HorizontalPodAutoscaler `json:"-"`
	Report  Report                                 `json:"report"`
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
// replay's HPA (a ScaledObject is not tuned) and returns the frontier and
// the recommended spec: the cheapest whose under-provisioned seconds are
// at most budget. The work is at most MaxTuneCandidates+1 replays; the
// order of candidates is fixed, so the result is deterministic.
func Tune(r Replay, space TuneSpace, budget time.Duration) (Tuning, error) {
	if r.HPA == nil {
		return Tuning{}, fmt.Errorf("%w: tuning needs an hpa; a ScaledObject is replayed, not tuned", ErrInvalidInput)
	}
	if budget < 0 {
		return Tuning{}, fmt.Errorf("%w: the under-provisioning budget must not be negative", ErrInvalidInput)
	}
	if space.size() == 1 && len(space.Targets) == 0 && len(space.ScaleUpWindows) == 0 && len(space.ScaleDownWindows) == 0 &&
		len(space.ScaleUpPolicies) == 0 && len(space.ScaleDownPolicies) == 0 && len(space.Tolerances) == 0 {
		space = DefaultTuneSpace()
	}
	if err := space.Validate(); err != nil {
		return Tuning{}, err
	}
	base, err := r.Run()
	if err != nil {
		return Tuning{}, err
	}
	out := Tuning{Baseline: Candidate{Index: -1, HPA: r.HPA, Report: base}}
	capacity := r.PodCapacity
	if capacity == 0 {
		capacity = 1
	}
	var all []Candidate
	for i, st := range space.settings() {
		c := r
		c.HPA = st.apply(r.HPA, capacity)
		rep, err := c.Run()
		if err != nil {
			return Tuning{}, fmt.Errorf("candidate %d: %w", i, err)
		}
		rep.Series = nil // the frontier's are replayed again by callers that chart them
		all = append(all, Candidate{Index: i, Setting: st, HPA: c.HPA, Report: rep})
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
	return out
}

// apply returns a copy of hpa with the setting's fields replacing its own.
func (st Setting) apply(hpa *autoscalingv2.HorizontalPodAutoscaler, capacity float64) *autoscalingv2.HorizontalPodAutoscaler {
	h := hpa.DeepCopy()
	if st.Target != nil {
		for i := range h.Spec.Metrics {
			setTarget(metricTarget(&h.Spec.Metrics[i]), *st.Target, capacity)
		}
	}
	if h.Spec.Behavior == nil {
		h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	}
	b := h.Spec.Behavior
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
	return h
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
// AverageValue target to u of the pod capacity; a Value target is total
// load, not a per-pod level, and is kept.
func setTarget(t *autoscalingv2.MetricTarget, u, capacity float64) {
	if t == nil {
		return
	}
	switch t.Type {
	case autoscalingv2.UtilizationMetricType:
		p := int32(math.Round(u * 100))
		t.AverageUtilization = &p
	case autoscalingv2.AverageValueMetricType:
		q := MetricValue(u * capacity)
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
