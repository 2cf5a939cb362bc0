//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// The twin experiment (twin_test.go) sets the decisions of the lab's real
// HPA controller against those of Shoal's simulator on the same load
// curve. This file holds its pure parts: the curves, the real controller's
// decisions at its syncs, the metric pipeline's measured lag, and the
// comparison itself.

// loadStep holds the load at Value from At until the next step.
type loadStep struct {
	At    time.Duration
	Value float64
}

// twinCurve is one load shape, in pods' worth: 1 is the load one pod
// serves at the autoscaler's target.
type twinCurve struct {
	Name     string
	Duration time.Duration
	Steps    []loadStep
}

// curveStep is the resolution of the ramps: the load changes at most every
// 5 s, so that the driver and the twin hold exactly the same curve.
const curveStep = 5 * time.Second

// ramp returns steps from a to b (exclusive) every curveStep over [from, to).
func ramp(from, to time.Duration, a, b float64) []loadStep {
	var out []loadStep
	for t := from; t < to; t += curveStep {
		out = append(out, loadStep{At: t, Value: a + (b-a)*float64(t-from)/float64(to-from)})
	}
	return out
}

// twinCurves are the experiment's four shapes, each short enough for both
// directions to show with a 30 s scale-down window. They start below one
// pod's worth, so that the noise of a real pipeline does not scale the
// single starting pod before the curve begins.
func twinCurves() []twinCurve {
	s := time.Second
	cat := func(parts ...[]loadStep) []loadStep {
		var out []loadStep
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	var saw []loadStep
	for i := 0; i < 3; i++ {
		saw = append(saw, ramp(time.Duration(i)*50*s, time.Duration(i+1)*50*s, 0.75, 4)...)
	}
	return []twinCurve{
		{Name: "step", Duration: 180 * s, Steps: []loadStep{{0, 0.75}, {20 * s, 3.5}, {100 * s, 0.5}}},
		{Name: "spike", Duration: 150 * s, Steps: []loadStep{{0, 0.75}, {30 * s, 4}, {45 * s, 0.75}}},
		{Name: "ramp", Duration: 180 * s, Steps: cat([]loadStep{{0, 0.5}}, ramp(20*s, 100*s, 0.5, 3.5), ramp(100*s, 160*s, 3.5, 0.5), []loadStep{{160 * s, 0.5}})},
		{Name: "sawtooth", Duration: 180 * s, Steps: cat(saw, []loadStep{{150 * s, 0.75}})},
	}
}

// scaled returns the curve in an autoscaler's units: unit per pod's worth,
// rounded to a multiple of quantum (a whole number of concurrent requests,
// say), with repeated values merged.
func (c twinCurve) scaled(unit, quantum float64) []loadStep {
	var out []loadStep
	for _, st := range c.Steps {
		v := st.Value * unit
		if quantum > 0 {
			v = math.Round(v/quantum) * quantum
		}
		if len(out) > 0 && out[len(out)-1].Value == v {
			continue
		}
		out = append(out, loadStep{At: st.At, Value: v})
	}
	return out
}

// valueAt returns the load of steps at t (the first step's before it).
func valueAt(steps []loadStep, t time.Duration) float64 {
	i := sort.Search(len(steps), func(i int) bool { return steps[i].At > t })
	if i == 0 {
		return steps[0].Value
	}
	return steps[i-1].Value
}

// decision is one HPA sync: when, relative to the curve's start, and the
// replicas it wanted.
type decision struct {
	At       time.Duration
	Replicas int32
}

// syncPhase estimates the controller's sync phase in [0, period) from the
// times it wrote the HPA's status: each write happens in a sync, a few
// milliseconds after it starts. The circular mean keeps writes on either
// side of a multiple of the period together.
func syncPhase(writes []time.Duration, period time.Duration) (time.Duration, error) {
	if len(writes) == 0 {
		return 0, fmt.Errorf("twin: no status writes to find the sync phase from")
	}
	var x, y float64
	for _, w := range writes {
		a := 2 * math.Pi * float64(w%period) / float64(period)
		x, y = x+math.Cos(a), y+math.Sin(a)
	}
	a := math.Atan2(y, x)
	if a < 0 {
		a += 2 * math.Pi
	}
	ph := time.Duration(a / (2 * math.Pi) * float64(period)).Round(time.Millisecond)
	return ph % period, nil
}

// syncClock estimates the controller's sync times from its status writes:
// it resyncs an HPA a period after the last sync ended, so the syncs drift
// later than a fixed nominal period by the work of each. A least-squares
// line through the writes, each numbered by the nominal syncs since the
// first, gives the phase (in [0, period) relative to zero) and the real
// period, to the millisecond.
func syncClock(writes []time.Duration, nominal time.Duration) (phase, period time.Duration, err error) {
	if len(writes) < 2 {
		return 0, 0, fmt.Errorf("twin: %d status writes, too few to find the sync clock from", len(writes))
	}
	period = nominal
	var a float64
	for iter := 0; iter < 3; iter++ {
		var n, sk, st, skk, skt float64
		for _, w := range writes {
			k := math.Round(float64(w-writes[0]) / float64(period))
			x := float64(w)
			n, sk, st, skk, skt = n+1, sk+k, st+x, skk+k*k, skt+k*x
		}
		den := n*skk - sk*sk
		if den == 0 {
			a = st / n
			break
		}
		b := (n*skt - sk*st) / den
		a = (st - b*sk) / n
		if b < float64(nominal)*0.9 || b > float64(nominal)*1.1 {
			break
		}
		period = time.Duration(b).Round(time.Millisecond)
	}
	ph := time.Duration(a).Round(time.Millisecond) % period
	if ph < 0 {
		ph += period
	}
	return ph, period, nil
}

// syncTimes estimates the time of every sync in [0, end] from the status
// writes: each write is stamped on arrival, a few milliseconds into its
// sync, and the fitted clock (phase, period) numbers them; the syncs
// between two writes are spread evenly between them, and those before the
// first or after the last follow the fitted period from it. A run's syncs
// drift by the work of each, unevenly, which a single line through all
// the writes misses by up to a few hundred milliseconds.
func syncTimes(writes []time.Duration, phase, period, end time.Duration) []time.Duration {
	anchor := map[int64]time.Duration{}
	var ks []int64
	for _, w := range writes {
		k := int64(math.Round(float64(w-phase) / float64(period)))
		if _, ok := anchor[k]; !ok {
			anchor[k] = w
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	at := func(k int64) time.Duration {
		i := sort.Search(len(ks), func(i int) bool { return ks[i] >= k })
		switch {
		case len(ks) == 0:
			return phase + time.Duration(k)*period
		case i < len(ks) && ks[i] == k:
			return anchor[k]
		case i == 0:
			return anchor[ks[0]] - time.Duration(ks[0]-k)*period
		case i == len(ks):
			return anchor[ks[i-1]] + time.Duration(k-ks[i-1])*period
		}
		a, b := ks[i-1], ks[i]
		return anchor[a] + time.Duration(float64(anchor[b]-anchor[a])*float64(k-a)/float64(b-a))
	}
	var out []time.Duration
	for k := int64(-1); ; k++ {
		t := at(k).Round(time.Millisecond)
		if t > end {
			break
		}
		if t >= 0 && (len(out) == 0 || t > out[len(out)-1]) {
			out = append(out, t)
		}
	}
	return out
}

// atSyncTimes turns the status writes (each carrying desiredReplicas)
// into one decision per sync time: the controller writes its status only
// when something changed, so a sync without a write kept the last value.
// A write belongs to the sync nearest it, so it counts from half a period
// before its own time. Before the first write the HPA holds initial.
func atSyncTimes(writes []decision, initial int32, times []time.Duration, period time.Duration) []decision {
	var out []decision
	cur, i := initial, 0
	for _, t := range times {
		for i < len(writes) && writes[i].At <= t+period/2 {
			cur = writes[i].Replicas
			i++
		}
		out = append(out, decision{At: t, Replicas: cur})
	}
	return out
}

// comparison is how a twin's decisions matched the real controller's.
type comparison struct {
	// Decisions counts the real syncs compared; Equal those where the
	// twin wanted the same replicas at the same sync, WithinOne those
	// where it did one sync earlier or later, Worse the rest.
	Decisions, Equal, WithinOne, Worse int
	// Changes counts the real syncs that changed the replica count, and
	// ChangesEqual / ChangesWithinOne those the twin made at the same
	// sync / within one.
	Changes, ChangesEqual, ChangesWithinOne int
	// WorseLast is 1 when the real run's last sync is among Worse: with
	// no sync after it in the record, a twin one sync late there cannot
	// be told from one further off.
	WorseLast int
	// Misses lists the first worse decisions, for the log.
	Misses []string
}

// EqualShare is the fraction of decisions equal at the same sync.
func (c comparison) EqualShare() float64 {
	if c.Decisions == 0 {
		return 0
	}
	return float64(c.Equal) / float64(c.Decisions)
}

// compareDecisions sets each real decision against the twin's sync
// nearest in time (which must be within half a period: a twin with
// another period or phase does not compare) and its neighbours. A real
// change of the replica count matches when the twin changed to the same
// count at that sync (or, within one, at a neighbouring one).
func compareDecisions(real, twin []decision, period time.Duration) comparison {
	var c comparison
	changedTo := func(j int, r int32) bool {
		return j > 0 && j < len(twin) && twin[j].Replicas == r && twin[j-1].Replicas != r
	}
	for k, r := range real {
		c.Decisions++
		changed := k > 0 && real[k-1].Replicas != r.Replicas
		if changed {
			c.Changes++
		}
		j := sort.Search(len(twin), func(j int) bool { return twin[j].At >= r.At })
		if j == len(twin) || (j > 0 && r.At-twin[j-1].At < twin[j].At-r.At) {
			j--
		}
		if j < 0 || absDur(twin[j].At-r.At) >= period/2 {
			c.Worse++
			c.miss(fmt.Sprintf("at %v: real %d, no twin sync", r.At, r.Replicas))
			continue
		}
		switch {
		case twin[j].Replicas == r.Replicas:
			c.Equal++
		case (j > 0 && twin[j-1].Replicas == r.Replicas) || (j+1 < len(twin) && twin[j+1].Replicas == r.Replicas):
			c.WithinOne++
		default:
			c.Worse++
			if k == len(real)-1 {
				c.WorseLast = 1
			}
			c.miss(fmt.Sprintf("at %v: real %d, twin %d", r.At, r.Replicas, twin[j].Replicas))
		}
		switch {
		case !changed:
		case changedTo(j, r.Replicas):
			c.ChangesEqual++
		case changedTo(j-1, r.Replicas) || changedTo(j+1, r.Replicas):
			c.ChangesWithinOne++
		}
	}
	return c
}

func (c *comparison) miss(s string) {
	if len(c.Misses) < 8 {
		c.Misses = append(c.Misses, s)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// metricModel mirrors autoscale.MetricModel (the lab is its own module and
// does not import the toolkit; the twin receives the model through the
// scenario file of `shoal hpa simulate`): the value read at t is the load
// measured at phase + floor((t-delay-phase)/resolution)*resolution,
// averaged over the window before it. Pods, when set, are the pods' own
// clocks in the order they were made (Prometheus scrapes each target at
// its own offset); a pod is first measured at least its Discovery after
// it was made.
type metricModel struct {
	Delay, Resolution, Phase, Window time.Duration
	Discovery, Stale                 time.Duration
	Pods                             []podClock
	// Measured passes each recorded sample's value to the twin, which
	// then reads what the real pipeline read instead of its model of it.
	Measured bool
}

// podClock mirrors autoscale.PodClock: a pod's phase and first scrape,
// or the samples the pipeline took of it.
type podClock struct {
	Phase, Discovery time.Duration
	Samples          []metricSample
	Removed          time.Duration // when the real pod was deleted; 0: not
}

// metricSample mirrors autoscale.MetricSample; Value is what the pipeline
// measured (millicores, or requests in flight).
type metricSample struct {
	At, Window, Seen time.Duration
	Value            float64
	// Failed marks a failed scrape: the pod reads nothing from At on.
	Failed bool
}

// cpuClocks gives each pod (curvePods) the samples metrics-server took of
// it, readable from when a poll first saw each, less half the poll
// interval (when, on average, it appeared) and plus work (the controller
// reads the metric that long before the status write that pins its
// sync).
// A pod without samples takes phase.
func cpuClocks(pods []twinPod, samples []cpuSample, phase, poll, work time.Duration) []podClock {
	byPod := map[string][]cpuSample{}
	for _, s := range samples {
		byPod[s.Pod] = append(byPod[s.Pod], s)
	}
	var out []podClock
	for _, p := range pods {
		ss := byPod[p.Name]
		sort.Slice(ss, func(i, j int) bool { return ss[i].Seen < ss[j].Seen })
		c := podClock{Phase: phase}
		if p.Deleted != nil && *p.Deleted > 0 {
			c.Removed = *p.Deleted
		}
		for _, s := range ss {
			c.Samples = append(c.Samples, metricSample{At: s.Measured, Window: s.Window, Seen: s.Seen - poll/2 + work, Value: s.Value})
		}
		out = append(out, c)
	}
	return out
}

// sample is one reading of a metric pipeline's total, as the autoscaler
// would have read it at At.
type sample struct {
	At    time.Duration
	Value float64
}

// scrapeModel measures Prometheus' pipeline for the pods of a record: each
// pod's scrapes as Prometheus stamped them (the twin's pod made at the
// same time is measured at the very same times), the scrape interval
// (resolution, if too few samples), each pod's scrape phase (the circular mean of its sample times modulo the
// scrape interval) and, for a pod made during the run, how long after its
// creation it was first scraped (less half an interval, so that the twin's
// pod, made at the same time, is first measured at the same scrape). The
// pods are in the order they were made, those deleted before the curve
// began left out, as the twin numbers its own. Pods the twin makes beyond
// them take the medians. The delay is zero: the controller reads the
// latest sample when it syncs. A deleted pod's last sample stays in a sum
// until Prometheus marks it stale.
func scrapeModel(pods []twinPod, scrapes []podScrapes, resolution time.Duration) (metricModel, error) {
	byPod := map[string]podScrapes{}
	for _, ps := range scrapes {
		if len(ps.At) > 0 {
			byPod[ps.Pod] = ps
		}
	}
	// The scrape interval, measured: the median gap between a pod's
	// samples, when there are enough of them.
	var gaps []time.Duration
	for _, ps := range byPod {
		for i := 1; i < len(ps.At); i++ {
			gaps = append(gaps, ps.At[i]-ps.At[i-1])
		}
	}
	if len(gaps) >= 10 {
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		resolution = gaps[len(gaps)/2].Round(10 * time.Millisecond)
	}
	// Prometheus writes staleness markers for a target that went away
	// 2.1 scrape intervals after its last scrape (scrapeLoop's
	// endOfRunStaleness); until then its last sample counts in a sum.
	m := metricModel{Resolution: resolution, Stale: resolution * 21 / 10}
	var phases, discoveries []time.Duration
	var clocks []*podClock
	for _, p := range pods {
		if p.Created <= 0 && p.Deleted != nil && *p.Deleted <= 0 {
			continue
		}
		c := &podClock{Phase: -1, Discovery: -1}
		if p.Deleted != nil && *p.Deleted > 0 {
			c.Removed = *p.Deleted
		}
		clocks = append(clocks, c)
		ps, ok := byPod[p.Name]
		if !ok {
			continue
		}
		for k, at := range ps.At {
			c.Samples = append(c.Samples, metricSample{At: at, Seen: at, Value: ps.Value[k]})
		}
		for k, at := range ps.Failed {
			// Its stale markers count from when the scrape ended.
			seen := at
			if k < len(ps.FailedFor) {
				seen += ps.FailedFor[k]
			}
			c.Samples = append(c.Samples, metricSample{At: at, Seen: seen, Failed: true})
		}
		sort.SliceStable(c.Samples, func(i, j int) bool { return c.Samples[i].Seen < c.Samples[j].Seen })
		ph, err := syncPhase(ps.At, resolution)
		if err != nil {
			return m, err
		}
		c.Phase = ph
		phases = append(phases, ps.At...)
		if p.Created > -twinWarmup {
			c.Discovery = max(ps.At[0]-p.Created-resolution/2, 0).Round(time.Millisecond)
			discoveries = append(discoveries, c.Discovery)
		} else {
			c.Discovery = 0
		}
	}
	if len(phases) == 0 {
		return m, fmt.Errorf("twin: no scrapes of the pods")
	}
	ph, err := syncPhase(phases, resolution)
	if err != nil {
		return m, err
	}
	m.Phase = ph
	if len(discoveries) > 0 {
		sort.Slice(discoveries, func(i, j int) bool { return discoveries[i] < discoveries[j] })
		m.Discovery = discoveries[len(discoveries)/2]
	}
	for _, c := range clocks {
		if c.Phase < 0 {
			c.Phase = m.Phase
		}
		if c.Discovery < 0 {
			c.Discovery = m.Discovery
		}
		m.Pods = append(m.Pods, *c)
	}
	return m, nil
}

// readingsCurve is the readings as a load curve: the twin on recorded
// metrics reads it with no lag.
func readingsCurve(readings []sample) []loadStep {
	var out []loadStep
	for _, r := range readings {
		at := max(r.At, 0)
		if len(out) > 0 && out[len(out)-1].Value == r.Value {
			continue
		}
		if len(out) > 0 && out[len(out)-1].At >= at {
			out[len(out)-1].Value = r.Value
			continue
		}
		out = append(out, loadStep{At: at, Value: r.Value})
	}
	if len(out) > 0 {
		out[0].At = 0
	}
	return out
}
