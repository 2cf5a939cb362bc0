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
)

// Scenario is a load curve run against an HPA or a KEDA ScaledObject.
type Scenario struct {
	// HPA or ScaledObject (exactly one) is the autoscaler under test.
	HPA          *autoscalingv2.HorizontalPodAutoscaler
	ScaledObject *ScaledObject
	// InitialReplicas is the replica count at time zero, all ready. If
	// zero, the autoscaler's minimum (at least 1 for an HPA).
	InitialReplicas int32
	// PodStartup is the time from a pod's creation to its readiness. If
	// zero, 30s.
	PodStartup time.Duration
	// PodStartups, when set, are the pods' own start-up times, in the
	// order the pods are made (the initial pods first), as measured in a
	// real run; a pod past the list takes PodStartup.
	PodStartups []time.Duration
	// SyncPeriod is the HPA controller's sync period. If zero, 15s.
	SyncPeriod time.Duration
	// SyncPhase is the time of the first sync, in [0, SyncPeriod): the
	// controller then syncs at SyncPhase + k*SyncPeriod. A real
	// controller's syncs fall at some offset from the start of a load
	// curve; zero puts them on multiples of the period.
	SyncPhase time.Duration
	// SyncTimes, when set, are the times the controller syncs, in
	// increasing order within [0, Duration], instead of SyncPhase +
	// k*SyncPeriod: a real controller resyncs an HPA a period after its
	// last sync ended, so its syncs drift by the work of each, and a
	// measured clock keeps them. KEDA still polls every polling interval
	// from zero.
	SyncTimes []time.Duration
	// ClockPhase is where time zero falls within a wall-clock second, in
	// [0, 1s). The API server keeps a pod's start time and its Ready
	// condition's transition time to the second, and the controller
	// counts a new pod's CPU sample only if its window starts after that
	// truncated transition; a real run's clock phase puts the truncation
	// where it fell. Zero puts time zero on a whole second.
	ClockPhase time.Duration
	// Metrics is how the metrics pipeline delays and smooths the load
	// before the autoscaler sees it; its zero value sees the load at once.
	Metrics MetricModel
	// Duration is how long the simulation runs.
	Duration time.Duration
	// Load is the total load over time, in the same units as PodCapacity.
	Load []LoadPoint
	// PodCapacity is the load one pod serves at 100% of its CPU request.
	// If zero, 1: load is then counted in pods' worth.
	PodCapacity float64
	// PodBaseline is the CPU a measured pod uses with no load, in Load's
	// units: its runtime, probes, scrapes and connections. It is added to
	// each pod's CPU usage, and not to its Pods metrics (requests in
	// flight are none at no load). Measured as an idle pod's CPU; zero
	// counts CPU for the load alone.
	PodBaseline float64
	// CPURequest is each pod's CPU request. If zero, 1 CPU.
	CPURequest resource.Quantity
	// Config holds the controller settings; its zero value gives the
	// upstream defaults.
	Config Config
}

// LoadPoint sets the load from At on. With Ramp, the load moves linearly
// from the previous point's value to Value between the two points;
// otherwise it steps to Value at At.
type LoadPoint struct {
	At    time.Duration
	Value float64
	Ramp  bool
}

// Sample is one row of a simulation's timeline, taken at each HPA sync.
type Sample struct {
	Time time.Duration `json:"time"`
	Load float64       `json:"load"`
	// Metric is the metric value the HPA saw (e.g. "85%" or "1500m").
	Metric string `json:"metric"`
	// Desired is the replica count after the decision.
	Desired int32 `json:"desired"`
	// Ready is the number of ready pods at the sync.
	Ready  int32  `json:"ready"`
	Reason string `json:"reason"`
}

// Validate checks that the scenario can run.
func (s *Scenario) Validate() error {
	if (s.HPA == nil) == (s.ScaledObject == nil) {
		return fmt.Errorf("%w: a scenario needs exactly one of hpa and scaledObject", ErrInvalidInput)
	}
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if s.ScaledObject != nil {
		if err := s.ScaledObject.Validate(); err != nil {
			return err
		}
		if int32Or(s.ScaledObject.Spec.MaxReplicaCount, 100) > maxSimReplicas {
			return fmt.Errorf("%w: a simulation allows at most %d replicas", ErrInvalidInput, maxSimReplicas)
		}
	} else if err := validateSpec(&s.HPA.Spec); err != nil {
		return err
	} else if err := ValidateMetrics(&s.HPA.Spec); err != nil {
		return err
	} else if s.HPA.Spec.MaxReplicas > maxSimReplicas {
		return fmt.Errorf("%w: a simulation allows at most %d replicas", ErrInvalidInput, maxSimReplicas)
	}
	if s.InitialReplicas > maxSimReplicas {
		return fmt.Errorf("%w: a simulation allows at most %d replicas", ErrInvalidInput, maxSimReplicas)
	}
	if s.Duration <= 0 || s.Duration > 7*24*time.Hour {
		return fmt.Errorf("%w: duration must be within (0, 168h]", ErrInvalidInput)
	}
	if len(s.PodStartups) > maxSimReplicas*100 {
		return fmt.Errorf("%w: podStartups has %d times, more than %d", ErrInvalidInput, len(s.PodStartups), maxSimReplicas*100)
	}
	for i, d := range s.PodStartups {
		if d < 0 || d > maxMetricSpan {
			return fmt.Errorf("%w: podStartups[%d] %s must be within [0, %s]", ErrInvalidInput, i, d, maxMetricSpan)
		}
	}
	if !(s.PodBaseline >= 0) || math.IsInf(s.PodBaseline, 0) {
		return fmt.Errorf("%w: podBaseline %v is not a finite number of zero or more", ErrInvalidInput, s.PodBaseline)
	}
	if s.PodStartup < 0 || s.SyncPeriod < 0 || s.PodCapacity < 0 || s.InitialReplicas < 0 {
		return fmt.Errorf("%w: podStartup, syncPeriod, podCapacity and initialReplicas must not be negative", ErrInvalidInput)
	}
	if s.SyncPeriod != 0 && s.SyncPeriod < time.Second {
		return fmt.Errorf("%w: syncPeriod must be at least 1s", ErrInvalidInput)
	}
	if period := durationOr(s.SyncPeriod, 15*time.Second); s.SyncPhase < 0 || s.SyncPhase >= period {
		return fmt.Errorf("%w: syncPhase %s must be within [0, syncPeriod %s)", ErrInvalidInput, s.SyncPhase, period)
	}
	if s.ClockPhase < 0 || s.ClockPhase >= time.Second {
		return fmt.Errorf("%w: clockPhase %s must be within [0, 1s)", ErrInvalidInput, s.ClockPhase)
	}
	if s.SyncPhase%time.Millisecond != 0 {
		return fmt.Errorf("%w: syncPhase %s must be a whole number of milliseconds", ErrInvalidInput, s.SyncPhase)
	}
	if len(s.SyncTimes) > MaxCurvePoints {
		return fmt.Errorf("%w: syncTimes has %d times, more than %d", ErrInvalidInput, len(s.SyncTimes), MaxCurvePoints)
	}
	for i, st := range s.SyncTimes {
		if st < 0 || st > s.Duration || (i > 0 && st <= s.SyncTimes[i-1]) {
			return fmt.Errorf("%w: syncTimes[%d] %s must be within [0, duration] and after syncTimes[%d]", ErrInvalidInput, i, st, max(i-1, 0))
		}
	}
	if err := s.Metrics.validate(s.Duration); err != nil {
		return err
	}
	if s.CPURequest.Sign() < 0 {
		return fmt.Errorf("%w: cpuRequest must not be negative", ErrInvalidInput)
	}
	if len(s.Load) == 0 {
		return fmt.Errorf("%w: load needs at least one point", ErrInvalidInput)
	}
	for i, p := range s.Load {
		if !(p.Value >= 0 && p.Value <= MaxDemand) {
			return fmt.Errorf("%w: load[%d].value %g must be within [0, %g]", ErrInvalidInput, i, p.Value, MaxDemand)
		}
		if i > 0 && p.At < s.Load[i-1].At {
			return fmt.Errorf("%w: load[%d].at is before load[%d].at", ErrInvalidInput, i, i-1)
		}
	}
	return s.checkWork(false)
}

// checkWork refuses s when its work, as a replay's or as a simulation's,
// is past MaxSimulationWork.
func (s *Scenario) checkWork(replay bool) error {
	if w := s.work(replay); w.total() > MaxSimulationWork {
		return fmt.Errorf("%w: %s of syncs every %s over up to %d replicas is %.2g pod-syncs, more than %.2g (about %.0f s): %s",
			ErrInvalidInput, s.Duration, durationOr(s.SyncPeriod, 15*time.Second), s.maxReplicas(), w.total(), MaxSimulationWork, MaxSimulationWork*podSyncSeconds, w.hint())
	}
	return nil
}

// MaxSimulationWork bounds a simulation's or a replay's work, in
// pod-syncs (see [Scenario.work]). One took 0.41 µs on one core of a
// 2-core machine (a week of 15 s syncs over 1000 replicas, 4e7, took
// 17 s), so the bound is about 8 s there: a week of 15 s syncs over up to
// 490 replicas, or a day of them over 1000.
const MaxSimulationWork = 2e7

// podSyncSeconds is the time of one pod-sync as measured for
// MaxSimulationWork.
const podSyncSeconds = 0.41e-6

// simWork is a simulation's work in pod-syncs, by what it is spent on.
type simWork struct {
	// pods is the syncs times the most replicas: each sync reads every
	// pod, a pod-sync each.
	pods float64
	// syncs is each sync's own part, about 4 pod-syncs.
	syncs float64
	// history is the recommendations and scale events each sync scans
	// (those of the longest stabilization window or policy period; a
	// week of 1 s syncs under a one-hour window took 45 s with 15 pods),
	// about 1/16 pod-sync each.
	history float64
	// steps is the steps of the clock (a KEDA poll or a sync phase off
	// the sync period makes it finer than the syncs): a KEDA poll about
	// one pod-sync, a simulation's step 1/128 (a week of 1 ms steps took
	// 1.5 s), a replay's, which integrates the ready pods between steps,
	// 1/16 and 1/128 more per pod (a week of 1 ms steps over 1 pod took
	// 12 s; of 1 s polls over 1000 pods and next to no syncs, 2.2 s).
	steps float64
}

func (w simWork) total() float64 { return w.pods + w.syncs + w.history + w.steps }

// hint says what to change to make w smaller, by its largest part.
func (w simWork) hint() string {
	switch {
	case w.history > w.pods && w.history >= w.steps:
		return "give a longer sync period, shorter stabilization windows and policy periods (or config downscaleStabilizationWindow) or a shorter span"
	case w.steps > w.pods:
		return "the clock steps by the greatest common divisor of the sync period, the polling interval and the sync phase: make them multiples of a longer step (a 15s sync period and a 30s polling interval step by 15s), or give a shorter span"
	}
	return "give a longer sync period, fewer replicas or a shorter span"
}

// work is s's work as MaxSimulationWork counts it, for a validated s, run
// as a replay or as a simulation.
func (s *Scenario) work(replay bool) simWork {
	period := durationOr(s.SyncPeriod, 15*time.Second)
	window := s.historyWindow()
	syncs := float64(s.Duration/period) + 1
	kept := min(syncs, float64(window/period)+1)
	steps := float64(s.Duration/s.tick()) + 1
	if len(s.SyncTimes) > 0 {
		syncs, kept, steps = float64(len(s.SyncTimes)), float64(densest(s.SyncTimes, window)), 0
	}
	polls := 0.0
	if s.ScaledObject != nil {
		polls = float64(s.Duration/s.ScaledObject.PollingInterval()) + 1
	}
	pods := float64(s.maxReplicas())
	perStep := 1.0 / 128
	if replay {
		perStep = 1.0/16 + pods/128
	}
	return simWork{pods: syncs * pods, syncs: 4 * syncs, history: syncs * kept / 16, steps: polls + steps*perStep}
}

// tick is the step of s's clock: the sync period, or with a polling
// interval or a sync phase the largest step that lands on all of them.
func (s *Scenario) tick() time.Duration {
	tick := durationOr(s.SyncPeriod, 15*time.Second)
	if so := s.ScaledObject; so != nil {
		tick = time.Duration(gcd(int64(tick/time.Millisecond), int64(so.PollingInterval()/time.Millisecond))) * time.Millisecond
	}
	if s.SyncPhase > 0 {
		tick = time.Duration(gcd(int64(tick/time.Millisecond), int64(s.SyncPhase/time.Millisecond))) * time.Millisecond
	}
	return tick
}

// historyWindow is the longest a decision's history reaches back: the
// stabilization windows (the controller's downscale window standing in
// for an unset one) and the scaling policies' periods.
func (s *Scenario) historyWindow() time.Duration {
	w := durationOr(s.Config.DownscaleStabilizationWindow, 5*time.Minute)
	var b *autoscalingv2.HorizontalPodAutoscalerBehavior
	switch {
	case s.HPA != nil:
		b = s.HPA.Spec.Behavior
	case s.ScaledObject.Spec.Advanced != nil && s.ScaledObject.Spec.Advanced.HorizontalPodAutoscalerConfig != nil:
		b = s.ScaledObject.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior
	}
	if b == nil {
		return w
	}
	for _, r := range []*autoscalingv2.HPAScalingRules{b.ScaleUp, b.ScaleDown} {
		if r == nil {
			continue
		}
		if r.StabilizationWindowSeconds != nil {
			w = max(w, time.Duration(*r.StabilizationWindowSeconds)*time.Second)
		}
		for _, p := range r.Policies {
			w = max(w, time.Duration(p.PeriodSeconds)*time.Second)
		}
	}
	return w
}

// densest is the most of the sorted times within any span of window.
func densest(times []time.Duration, window time.Duration) int {
	most, from := 0, 0
	for i, t := range times {
		for t-times[from] > window {
			from++
		}
		most = max(most, i-from+1)
	}
	return most
}

func (s *Scenario) maxReplicas() int32 {
	if s.ScaledObject != nil {
		return int32Or(s.ScaledObject.Spec.MaxReplicaCount, 100)
	}
	return s.HPA.Spec.MaxReplicas
}

// LoadAt returns the load at t. The points are sorted by time (Validate
// checks it), so a binary search finds the first one after t: replayed
// curves have many thousands of points.
func (s *Scenario) LoadAt(t time.Duration) float64 {
	i := sort.Search(len(s.Load), func(i int) bool { return s.Load[i].At > t })
	if i < len(s.Load) && s.Load[i].Ramp && i > 0 {
		prev, p := s.Load[i-1], s.Load[i]
		if span := float64(p.At - prev.At); span > 0 {
			return prev.Value + (p.Value-prev.Value)*float64(t-prev.At)/span
		}
	}
	if i == 0 {
		return 0
	}
	return s.Load[i-1].Value
}

// maxSimReplicas bounds the pods a simulation keeps.
const maxSimReplicas = 1000

// withDefaults returns the validated scenario s with its zero fields
// replaced by their defaults.
func (s Scenario) withDefaults() Scenario {
	if s.PodStartup == 0 {
		s.PodStartup = 30 * time.Second
	}
	if s.SyncPeriod == 0 {
		s.SyncPeriod = 15 * time.Second
	}
	if s.PodCapacity == 0 {
		s.PodCapacity = 1
	}
	if s.CPURequest.IsZero() {
		s.CPURequest = resource.MustParse("1")
	}
	if s.InitialReplicas == 0 {
		if s.ScaledObject != nil {
			s.InitialReplicas = int32Or(s.ScaledObject.Spec.MinReplicaCount, 0)
		} else {
			s.InitialReplicas = max(int32Or(s.HPA.Spec.MinReplicas, 1), 1)
		}
	}
	return s
}

// Simulate runs the scenario from time zero, deciding at every sync
// period (and, for a ScaledObject, activating at every polling interval),
// and returns one Sample per sync. A week of syncs over hundreds of pods
// takes seconds: it stops with ctx's error when ctx ends first.
func Simulate(ctx context.Context, s Scenario) ([]Sample, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	sim, err := newSimulator(s.withDefaults())
	if err != nil {
		return nil, err
	}
	if len(s.SyncTimes) > 0 {
		return sim.runAt(ctx, s.SyncTimes, s.Duration)
	}
	var out []Sample
	for t, n := time.Duration(0), 0; t <= s.Duration; t, n = t+sim.tick, n+1 {
		if n%checkEvery == 0 {
			if err := stopped(ctx, t, s.Duration); err != nil {
				return nil, err
			}
		}
		if sim.poll > 0 && t%sim.poll == 0 {
			if err := sim.activate(t); err != nil {
				return nil, err
			}
		}
		if !sim.isSync(t) {
			continue
		}
		row, err := sim.sync(t)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

// runAt runs the simulation with the HPA syncing at the given times and,
// for a ScaledObject, KEDA activating every polling interval from zero
// (before a sync at the same time), up to end.
func (sim *simulator) runAt(ctx context.Context, syncs []time.Duration, end time.Duration) ([]Sample, error) {
	var out []Sample
	nextPoll := time.Duration(0)
	for i, t := range syncs {
		if i%checkEvery == 0 {
			if err := stopped(ctx, t, end); err != nil {
				return nil, err
			}
		}
		for sim.poll > 0 && nextPoll <= t && nextPoll <= end {
			if err := sim.activate(nextPoll); err != nil {
				return nil, err
			}
			nextPoll += sim.poll
		}
		row, err := sim.sync(t)
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

// checkEvery is how many steps of a simulation run between looks at its
// context: a look costs a lock, a step as little as an addition.
const checkEvery = 64

// stopped returns ctx's error, saying how far a simulation of end got by
// t, once ctx has ended.
func stopped(ctx context.Context, t, end time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("autoscale: stopped at %s of %s: %w", t, end, err)
	}
	return nil
}

// simEpoch is the wall-clock time of a simulation's time zero. It is fixed
// so that the same scenario always gives the same timeline.
var simEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// simulator is one simulation's state from one tick to the next: the
// target's replicas and pods, and the histories the controllers carry
// between decisions.
type simulator struct {
	s Scenario // defaulted
	// hpa decides above zero replicas: the scenario's, or the one KEDA
	// builds for its ScaledObject.
	hpa *autoscalingv2.HorizontalPodAutoscaler
	// poll is the ScaledObject's polling interval, 0 without one.
	poll time.Duration
	// promSeconds is set for a ScaledObject: its Prometheus trigger
	// evaluates the query at a whole second (see queryBound).
	promSeconds bool
	// tick is the step of the clock: the sync period, or with a polling
	// interval or a sync phase the largest step that lands on all of them.
	tick time.Duration
	// requests is every pod's resource requests.
	requests corev1.ResourceList
	// podBuf and usageBuf are the last sync's pods and usage maps, for
	// the next to reuse.
	podBuf   []Pod
	usageBuf []corev1.ResourceList

	replicas int32
	pods     []simPod
	nextID   int
	// gone are the pods removed within the metric pipeline's lookback:
	// a measurement taken before a removal still counts them among the
	// pods that shared the load, and a per-pod sum still holds their
	// last readings.
	gone []simPod

	// The HPA controller's and KEDA's histories, as the last call
	// returned them.
	recs       []Recommendation
	events     []ScaleEvent
	conds      []autoscalingv2.HorizontalPodAutoscalerCondition
	lastActive *time.Time
}

// simPod is one pod of the simulated target.
type simPod struct {
	name    string
	id      int // the order it was made in, from 0
	created time.Duration
	readyAt time.Duration // created plus the scenario's pod start-up
	deleted time.Duration // when it was removed; only in simulator.gone
}

func (p simPod) ready(t time.Duration) bool { return p.readyAt <= t }

// isSync reports whether the HPA controller syncs at t.
func (sim *simulator) isSync(t time.Duration) bool {
	return t >= sim.s.SyncPhase && (t-sim.s.SyncPhase)%sim.s.SyncPeriod == 0
}

// newSimulator sets up the defaulted scenario s at time zero.
func newSimulator(s Scenario) (*simulator, error) {
	sim := &simulator{s: s, hpa: s.HPA, requests: corev1.ResourceList{corev1.ResourceCPU: s.CPURequest}}
	if so := s.ScaledObject; so != nil {
		var err error
		if sim.hpa, err = so.HPA(); err != nil {
			return nil, err
		}
		sim.poll = so.PollingInterval()
		sim.promSeconds = true
	}
	sim.tick = s.tick()
	sim.scale(0, s.InitialReplicas)
	return sim, nil
}

// activate runs KEDA's activation at t, a polling tick, with every
// trigger seeing the scenario's load.
func (sim *simulator) activate(t time.Duration) error {
	values := make([]float64, len(sim.s.ScaledObject.Spec.Triggers))
	_, seen := sim.observe(t, sim.queryBound(t))
	if sim.perPod() {
		seen = sim.podSum(t, sim.queryBound(t))
	}
	for i := range values {
		values[i] = seen
	}
	a, err := sim.s.ScaledObject.Activate(simEpoch.Add(t), sim.replicas, values, sim.lastActive)
	if err != nil {
		return err
	}
	sim.lastActive = a.LastActiveTime
	if a.Replicas >= 0 {
		sim.scale(t, a.Replicas)
	}
	return nil
}

// sync runs one HPA sync at t and returns its row of the timeline. At
// zero replicas a ScaledObject's HPA does not decide (KEDA's activation
// owns the way back up); a plain HPA does, and scales back up from zero
// when it put the target there itself (HPAScaleToZero).
func (sim *simulator) sync(t time.Duration) (Sample, error) {
	load := sim.s.LoadAt(t)
	row := Sample{Time: t, Load: load, Ready: sim.readyPods(t)}
	if sim.replicas == 0 && sim.s.ScaledObject != nil {
		row.Desired, row.Reason, row.Metric = 0, "ScaledToZero", fmt.Sprintf("%g", load)
		return row, nil
	}
	d, err := Recommend(sim.s.Config, sim.input(t, load))
	if err != nil {
		return Sample{}, err
	}
	sim.record(t, d)
	row.Desired, row.Reason, row.Metric = d.DesiredReplicas, d.Reason, metricText(d.CurrentMetrics)
	return row, nil
}

func (sim *simulator) readyPods(t time.Duration) int32 {
	n := int32(0)
	for _, p := range sim.pods {
		if p.ready(t) {
			n++
		}
	}
	return n
}

// input is what the HPA sees at t: the load as the metrics pipeline
// reports it (see MetricModel), shared evenly by the pods that served it
// when it was measured, and reported whole by Object and External
// metrics (with per-pod phases, as the sum of the pods' readings).
func (sim *simulator) input(t time.Duration, _ float64) Input {
	hpa := sim.hpa
	if len(sim.conds) > 0 {
		// The controller reads its own last conditions from the status.
		h := *hpa
		h.Status.Conditions = sim.conds
		hpa = &h
	}
	// The pods' list and usage maps are reused from sync to sync: a
	// decision keeps none of its input.
	in := Input{HPA: hpa, Now: simEpoch.Add(t), CurrentReplicas: sim.replicas, Pods: sim.podBuf[:0],
		Recommendations: sim.recs, ScaleEvents: sim.events,
		ObjectMetrics: map[string]resource.Quantity{}, ExternalMetrics: map[string]resource.Quantity{}}
	at, seen := sim.s.Metrics.observe(&sim.s, t)
	whole := seen
	if sim.promSeconds {
		_, whole = sim.observe(t, sim.queryBound(t))
	}
	if sim.perPod() {
		whole = sim.podSum(t, sim.queryBound(t))
	}
	for _, m := range sim.hpa.Spec.Metrics {
		switch {
		case m.Object != nil:
			in.ObjectMetrics[m.Object.Metric.Name] = MetricValue(whole)
		case m.External != nil:
			in.ExternalMetrics[m.External.Metric.Name] = MetricValue(whole)
		}
	}
	// Without per-pod clocks every pod was measured over the same window:
	// its share is the same for all, counted once rather than per pod.
	w := sim.s.Metrics.Window
	var share float64
	if !sim.perPod() {
		share = sim.shareAt(at, seen, w)
	}
	for _, p := range sim.pods {
		r := podReading{at: at, window: w, share: share, ok: sim.measured(p, at, w)}
		// The pod served its share for the part of the window it was
		// ready.
		switch {
		case p.readyAt > at:
			r.share = 0
		case p.readyAt > at-w:
			r.share *= float64(at-p.readyAt) / float64(w)
		}
		if sim.perPod() {
			r = sim.podReading(p, t, t)
		}
		in.Pods = append(in.Pods, sim.pod(p, t, r, len(in.Pods)))
	}
	sim.podBuf = in.Pods
	return in
}

// perPod reports whether the pods are measured each on its own clock.
func (sim *simulator) perPod() bool { return len(sim.s.Metrics.Pods) > 0 }

// podReading is what the pipeline reports of one pod at a sync.
type podReading struct {
	// at and window are when the sample was taken and what it averages
	// over; share is the pod's share of the load then, for the part of
	// the window it served.
	at, window time.Duration
	share      float64
	// ok is false when the pod has no sample yet.
	ok bool
	// sampled marks a window measured in a real run, reported with the
	// sample; measured, one whose value came with it, in share.
	sampled, measured bool
}

// shareAt is one pod's share of seen, the load measured over window up to
// at: the load was shared by the pods serving then, and those serving at
// the window's middle stand for them.
func (sim *simulator) shareAt(at time.Duration, seen float64, window time.Duration) float64 {
	if n := sim.servingPods(at - window/2); n > 0 {
		return seen / float64(n)
	}
	return 0
}

// podReading is p's latest sample at t on its own clock (its recorded
// samples, or its phase and discovery), taken no later than bound.
func (sim *simulator) podReading(p simPod, t, bound time.Duration) podReading {
	m := sim.s.Metrics
	c := m.podClock(p.id)
	var r podReading
	if len(c.Samples) > 0 {
		i := sort.Search(len(c.Samples), func(i int) bool { return c.Samples[i].Seen > t }) - 1
		for i >= 0 && c.Samples[i].At > bound {
			i--
		}
		if i < 0 || c.Samples[i].Failed {
			// A failed scrape left the pod's series stale: no reading.
			return r
		}
		r.at, r.window, r.sampled = c.Samples[i].At, c.Samples[i].Window, true
		// A real pod's first window can start before the sync that made
		// the twin's pod (its container's start, or the ReplicaSet's
		// lag): the sample is a fact once the pod exists.
		r.ok = r.at >= p.created
		if v := c.Samples[i].Value; v != nil && r.ok {
			r.share, r.measured = *v, true
			return r
		}
	} else {
		r.at, r.window = min(m.podMeasuredAt(p.id, t), m.podTakenBy(p.id, bound)), m.Window
		r.ok = sim.measured(p, r.at, r.window)
	}
	if r.ok {
		r.share = sim.servedShare(p, r.at-r.window, r.at)
	}
	return r
}

// servedShare is p's share of the load averaged over [from, to]: at each
// moment p, if it was serving, took the load divided by the pods serving
// then. The integral runs over the pieces between the curve's points and
// the pods' readiness and removal, exact for steps and ramps.
func (sim *simulator) servedShare(p simPod, from, to time.Duration) float64 {
	serves := func(q simPod, gone bool, t time.Duration) bool { return q.ready(t) && (!gone || q.deleted > t) }
	pGone := false
	for _, q := range sim.gone {
		if q.id == p.id {
			p, pGone = q, true
		}
	}
	at := func(t time.Duration) float64 {
		if !serves(p, pGone, t) {
			return 0
		}
		if n := sim.servingPods(t); n > 0 {
			return sim.s.LoadAt(max(t, 0)) / float64(n)
		}
		return 0
	}
	if to <= from {
		return at(to)
	}
	cuts := []time.Duration{from, to}
	for _, lp := range sim.s.Load {
		if lp.At > from && lp.At < to {
			cuts = append(cuts, lp.At)
		}
	}
	for _, q := range sim.pods {
		cuts = append(cuts, q.readyAt)
	}
	for _, q := range sim.gone {
		cuts = append(cuts, q.readyAt, q.deleted)
	}
	if from < 0 && to > 0 {
		cuts = append(cuts, 0)
	}
	sort.Slice(cuts, func(i, j int) bool { return cuts[i] < cuts[j] })
	var sum float64
	for i := 1; i < len(cuts); i++ {
		a, b := max(cuts[i-1], from), min(cuts[i], to)
		if b <= a {
			continue
		}
		sum += at(a+(b-a)/2) * float64(b-a)
	}
	return sum / float64(to-from)
}

// measured reports whether the pipeline has a sample of p taken at at
// over window: a whole window after p was made, and no earlier than its
// discovery.
func (sim *simulator) measured(p simPod, at, window time.Duration) bool {
	return at-window >= p.created && at >= p.created+sim.s.Metrics.podClock(p.id).Discovery
}

// podSum is the sum of the pods' latest readings at t, each pod measured
// on its own clock: a pod removed since its last measurement still
// counts, one measured after its removal reads nothing.
func (sim *simulator) podSum(t, bound time.Duration) float64 {
	var sum float64
	m := sim.s.Metrics
	add := func(p simPod, gone bool) {
		r := sim.podReading(p, t, bound)
		if gone {
			// A recorded sample taken after the pod's removal is a real
			// scrape of the terminating pod: it reads what the pod still
			// served, nothing, and stands until it goes stale.
			if r.at >= p.deleted && !r.sampled {
				if m.Stale <= 0 {
					return // measured again since, reading nothing
				}
				// A modelled clock does not know whether the pipeline
				// measured the pod after its removal: its last reading
				// before it holds until it goes stale.
				r = sim.podReading(p, p.deleted+m.Delay-time.Nanosecond, bound)
				if r.at >= p.deleted {
					return
				}
			}
			if m.Stale > 0 && t-m.Delay >= r.at+m.Stale {
				return
			}
		}
		if r.ok {
			sum += r.share
		}
	}
	for _, p := range sim.pods {
		add(p, false)
	}
	for _, p := range sim.gone {
		add(p, true)
	}
	return sum
}

// servingPods counts the pods ready at t and not removed by then, the
// removed ones included.
func (sim *simulator) servingPods(t time.Duration) int32 {
	n := sim.readyPods(t)
	for _, p := range sim.gone {
		if p.ready(t) && p.deleted > t {
			n++
		}
	}
	return n
}

// queryBound is the latest sample time a metric read at t can see. KEDA's
// Prometheus trigger asks for its query at the current time written in
// RFC 3339, to the whole second (pkg/scalers/prometheus_scaler.go), so
// the query is evaluated at the start of t's wall-clock second and a
// scrape taken later in that second is not in its answer. Other
// pipelines read at t.
func (sim *simulator) queryBound(t time.Duration) time.Duration {
	if !sim.promSeconds {
		return t
	}
	return sim.apiTime(t).Sub(simEpoch)
}

// observe is MetricModel.observe for a read at t that sees no sample
// taken after bound.
func (sim *simulator) observe(t, bound time.Duration) (time.Duration, float64) {
	m := sim.s.Metrics
	at := min(m.measuredAt(t), m.takenBy(bound))
	return at, averageLoad(&sim.s, at-m.Window, at)
}

// apiTime is the wall-clock time of t as the API server keeps it in a
// pod's status: to the second, counted from a time zero ClockPhase into
// its second.
func (sim *simulator) apiTime(t time.Duration) time.Time {
	return simEpoch.Add(sim.s.ClockPhase + t).Truncate(time.Second).Add(-sim.s.ClockPhase)
}

// pod is p at t as the metrics pipeline sees it, given its latest
// reading r; it is the i-th pod of the sync's input.
func (sim *simulator) pod(p simPod, t time.Duration, r podReading, i int) Pod {
	request := sim.s.CPURequest
	start := sim.apiTime(p.created)
	// Every pod requests the same: one list serves them all (the
	// decision only reads it).
	sp := Pod{Name: p.name, Phase: corev1.PodRunning, Ready: p.ready(t), StartTime: &start, Requests: sim.requests}
	if !sp.Ready {
		sp.ReadyTransitionTime = start
		return sp
	}
	sp.ReadyTransitionTime = sim.apiTime(p.readyAt)
	// A pod has samples once the pipeline has measured a whole window
	// since it was made; its share of the load becomes CPU in proportion
	// to its capacity, for the part of the window it was ready.
	if !r.ok {
		return sp
	}
	if r.at != t {
		mt := simEpoch.Add(r.at)
		sp.MetricTime = &mt
	}
	if r.sampled {
		sp.MetricWindow = r.window
	}
	share, cpu := r.share, r.share
	if !r.measured {
		cpu += sim.s.PodBaseline
	}
	// metrics-server reports nanocores; the controller reads them in
	// millicores rounded up, as Quantity.MilliValue does.
	usage := saturate(cpu / sim.s.PodCapacity * float64(request.MilliValue()) * 1e6)
	for len(sim.usageBuf) <= i {
		sim.usageBuf = append(sim.usageBuf, corev1.ResourceList{})
	}
	sp.Usage = sim.usageBuf[i]
	sp.Usage[corev1.ResourceCPU] = *resource.NewScaledQuantity(usage, resource.Nano)
	for _, m := range sim.hpa.Spec.Metrics {
		if m.Pods != nil {
			if sp.Metrics == nil {
				sp.Metrics = map[string]resource.Quantity{}
			}
			sp.Metrics[m.Pods.Metric.Name] = MetricValue(share)
		}
	}
	return sp
}

// record keeps the histories d returns for the next sync and scales the
// target to d's replica count.
func (sim *simulator) record(t time.Duration, d Decision) {
	sim.recs, sim.events, sim.conds = d.Recommendations, d.ScaleEvents, d.Conditions
	sim.scale(t, d.DesiredReplicas)
}

// scale sets the target's replica count at t, adding or removing pods.
func (sim *simulator) scale(t time.Duration, n int32) {
	sim.replicas = n
	for int32(len(sim.pods)) < n {
		created := t
		if t == 0 {
			// Pods made at time zero, the initial ones and any added by a
			// decision at time zero, are taken as long since ready.
			created = -time.Hour
		}
		startup := sim.s.PodStartup
		if sim.nextID < len(sim.s.PodStartups) {
			startup = sim.s.PodStartups[sim.nextID]
		}
		sim.pods = append(sim.pods, simPod{name: "pod-" + strconv.Itoa(sim.nextID), id: sim.nextID, created: created, readyAt: created + startup})
		sim.nextID++
	}
	if int32(len(sim.pods)) > n {
		// A ReplicaSet removes not-yet-ready pods first, then the newest.
		removed := func(p simPod) time.Duration {
			if r := sim.s.Metrics.podClock(p.id).Removed; r > 0 {
				return r
			}
			return math.MaxInt64
		}
		sort.SliceStable(sim.pods, func(i, j int) bool {
			ri, rj := sim.pods[i].ready(t), sim.pods[j].ready(t)
			if ri != rj {
				return ri
			}
			// Kept first: the pods removed latest in a recorded run.
			if di, dj := removed(sim.pods[i]), removed(sim.pods[j]); di != dj {
				return di > dj
			}
			return sim.pods[i].created < sim.pods[j].created
		})
		for _, p := range sim.pods[n:] {
			p.deleted = t
			sim.gone = append(sim.gone, p)
		}
		sim.pods = sim.pods[:n]
	}
	// Forget the pods no measurement still reaches.
	m := sim.s.Metrics
	lookback := m.Delay + m.Resolution + m.Window + m.Stale
	keep := sim.gone[:0]
	for _, p := range sim.gone {
		if p.deleted >= t-lookback {
			keep = append(keep, p)
		}
	}
	sim.gone = keep
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	if a == 0 {
		return 1
	}
	return a
}

// metricText renders the first metric status compactly.
func metricText(statuses []autoscalingv2.MetricStatus) string {
	if len(statuses) == 0 {
		return "-"
	}
	var v autoscalingv2.MetricValueStatus
	switch st := statuses[0]; {
	case st.Resource != nil:
		v = st.Resource.Current
	case st.ContainerResource != nil:
		v = st.ContainerResource.Current
	case st.Pods != nil:
		v = st.Pods.Current
	case st.Object != nil:
		v = st.Object.Current
	case st.External != nil:
		v = st.External.Current
	default:
		return "-"
	}
	switch {
	case v.AverageUtilization != nil:
		return fmt.Sprintf("%d%%", *v.AverageUtilization)
	case v.AverageValue != nil:
		return v.AverageValue.String()
	case v.Value != nil:
		return v.Value.String()
	}
	return "-"
}

func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
