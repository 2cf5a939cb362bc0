package autoscale

import (
	"fmt"
	"math"
	"time"
)

// MetricModel is how a metrics pipeline turns the load into the value an
// autoscaler reads. metrics-server reports each pod's CPU as the average
// over the window between two kubelet scrapes, one resolution apart;
// Prometheus samples a gauge at each scrape and prometheus-adapter or
// KEDA read the latest sample. At sync time t the autoscaler therefore
// sees the load measured at
//
//	at = Phase + floor((t - Delay - Phase) / Resolution) * Resolution
//
// (at = t - Delay without a resolution), averaged over [at-Window, at].
// The zero value sees the load at t, as it is.
type MetricModel struct {
	// Delay is the lag from a measurement to the autoscaler reading it:
	// the scrape, the pipeline's own caches, the query.
	Delay time.Duration
	// Resolution is the period of the measurements (metrics-server's
	// --metric-resolution, Prometheus' scrape interval). Zero means
	// continuous.
	Resolution time.Duration
	// Phase is the time of one measurement, in [0, Resolution).
	Phase time.Duration
	// Window is the span a measurement averages over: metrics-server's
	// window for CPU (its resolution), zero for a gauge. A pod made less
	// than a window before a measurement has no sample in it.
	Window time.Duration
	// Discovery is how long after a pod is made the pipeline measures it
	// for the first time at the earliest: for Prometheus, finding the new
	// target and starting its scrapes. Zero: from its creation on.
	Discovery time.Duration
	// Stale is how long after its last measurement a removed pod's
	// reading still counts in a per-pod sum (see Pods): Prometheus stops
	// scraping a target that went away and writes staleness markers for
	// its series just over two scrape intervals after its last scrape
	// (2.1 intervals), so a query sees the old value until then. Zero: a
	// removed pod is measured again at its next scrape, reading nothing.
	Stale time.Duration
	// Pods, when set, are the pods' own measurement clocks, in the order
	// the pods are made (the initial pods first): Prometheus scrapes every
	// target at its own offset in the interval. A pod past the list uses
	// Phase and Discovery. Each pod then reads the load at its own
	// measurement, shared by the pods that served it then, and the metric
	// is taken to be a per-pod series: an Object or External metric
	// (KEDA's sum over the pods) is the sum of the pods' latest
	// measurements, counting a deleted pod's until its next measurement
	// after the deletion.
	Pods []PodClock
}

// PodClock is when the pipeline measures one pod: at Phase in every
// Resolution, from Discovery after the pod is made on; or, with Samples,
// exactly when a real pipeline measured it.
type PodClock struct {
	Phase, Discovery time.Duration
	// Samples, when set, are the pod's measurements as a real run's
	// pipeline took them, in the order they became readable: each
	// averages over Window up to At and is read from Seen on. They replace
	// Phase, Discovery, and the model's Delay and Window for this pod: a
	// twin of a recorded run reads each pod's CPU over the very window
	// metrics-server measured.
	Samples []MetricSample
	// Removed, if positive, is when the real pod was removed: at a scale
	// down the twin removes, among the ready pods, those removed in the
	// run first (earliest first), as the ReplicaSet chose them (by
	// readiness and at random among equals), then the newest.
	Removed time.Duration
}

// MetricSample is one measurement of a pod: over Window up to At, readable
// from Seen on. At and Seen may be before zero.
type MetricSample struct {
	At, Window, Seen time.Duration
	// Value, if set, is what the real pipeline measured, in the load's
	// units: the pod then reads it instead of its share of the load, and
	// its CPU takes no PodBaseline. A twin whose every sample carries its
	// value tests the controller alone, on the very readings the real one
	// had; without values it tests the pipeline's model as well.
	Value *float64
	// Failed marks a scrape that failed (Prometheus' up was 0): the pod's
	// process had gone, and Prometheus marked its series stale at once,
	// so the pod reads nothing from At until its next sample. A failed
	// sample carries no Value.
	Failed bool
}

// maxPodClocks bounds MetricModel.Pods.
const maxPodClocks = 10000

// maxMetricSpan bounds the model's durations.
const maxMetricSpan = time.Hour

func (m MetricModel) validate(duration time.Duration) error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"delay", m.Delay}, {"resolution", m.Resolution}, {"phase", m.Phase}, {"window", m.Window}, {"discovery", m.Discovery}, {"stale", m.Stale}} {
		if f.d < 0 || f.d > maxMetricSpan {
			return fmt.Errorf("%w: metrics.%s %s must be within [0, %s]", ErrInvalidInput, f.name, f.d, maxMetricSpan)
		}
	}
	if m.Phase > 0 && m.Phase >= m.Resolution {
		return fmt.Errorf("%w: metrics.phase %s must be below metrics.resolution %s", ErrInvalidInput, m.Phase, m.Resolution)
	}
	samples := 0
	if len(m.Pods) > maxPodClocks {
		return fmt.Errorf("%w: metrics.pods has %d clocks, more than %d", ErrInvalidInput, len(m.Pods), maxPodClocks)
	}
	for i, p := range m.Pods {
		if p.Phase < 0 || (len(p.Samples) == 0 && p.Phase >= m.Resolution) {
			return fmt.Errorf("%w: metrics.pods[%d].phase %s must be within [0, metrics.resolution %s)", ErrInvalidInput, i, p.Phase, m.Resolution)
		}
		if p.Discovery < 0 || p.Discovery > maxMetricSpan {
			return fmt.Errorf("%w: metrics.pods[%d].discovery %s must be within [0, %s]", ErrInvalidInput, i, p.Discovery, maxMetricSpan)
		}
		if p.Removed < 0 {
			return fmt.Errorf("%w: metrics.pods[%d].removed %s must not be negative", ErrInvalidInput, i, p.Removed)
		}
		samples += len(p.Samples)
		for j, smp := range p.Samples {
			if smp.Window < 0 || smp.Window > maxMetricSpan || smp.At < -maxMetricSpan || smp.At > duration+maxMetricSpan {
				return fmt.Errorf("%w: metrics.pods[%d].samples[%d] must have a window within [0, %s] and a time within an hour of the run", ErrInvalidInput, i, j, maxMetricSpan)
			}
			if smp.Failed && smp.Value != nil {
				return fmt.Errorf("%w: metrics.pods[%d].samples[%d] is failed and has a value: a failed scrape measured nothing", ErrInvalidInput, i, j)
			}
			if v := smp.Value; v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0) {
				return fmt.Errorf("%w: metrics.pods[%d].samples[%d].value %v must be a finite number, not negative", ErrInvalidInput, i, j, *v)
			}
			if j > 0 && smp.Seen < p.Samples[j-1].Seen {
				return fmt.Errorf("%w: metrics.pods[%d].samples[%d] is seen before the sample before it", ErrInvalidInput, i, j)
			}
		}
	}
	if samples > MaxCurvePoints {
		return fmt.Errorf("%w: metrics.pods hold %d samples, more than %d", ErrInvalidInput, samples, MaxCurvePoints)
	}
	if m.Resolution > 0 && duration/m.Resolution > MaxCurvePoints {
		return fmt.Errorf("%w: metrics.resolution %s makes more than %d measurements over %s", ErrInvalidInput, m.Resolution, MaxCurvePoints, duration)
	}
	return nil
}

// measuredAt returns the time of the measurement the autoscaler reads at
// t. It may be before zero, when the load is taken as its value at zero.
func (m MetricModel) measuredAt(t time.Duration) time.Duration {
	at := t - m.Delay
	if m.Resolution <= 0 {
		return at
	}
	k := (at - m.Phase) / m.Resolution
	if at-m.Phase < 0 && (at-m.Phase)%m.Resolution != 0 {
		k-- // floor, not truncation, before the phase
	}
	return m.Phase + k*m.Resolution
}

// takenBy is the time of the latest sample taken no later than t, however
// late it is readable.
func (m MetricModel) takenBy(t time.Duration) time.Duration {
	m.Delay = 0
	return m.measuredAt(t)
}

// podTakenBy is takenBy for the pod made id-th, at its own phase.
func (m MetricModel) podTakenBy(id int, t time.Duration) time.Duration {
	m.Phase = m.podClock(id).Phase
	return m.takenBy(t)
}

// podClock is the clock of the pod made id-th.
func (m MetricModel) podClock(id int) PodClock {
	if id < len(m.Pods) {
		return m.Pods[id]
	}
	return PodClock{Phase: m.Phase, Discovery: m.Discovery}
}

// podMeasuredAt is measuredAt for the pod made id-th, at its own phase.
func (m MetricModel) podMeasuredAt(id int, t time.Duration) time.Duration {
	m.Phase = m.podClock(id).Phase
	return m.measuredAt(t)
}

// observe returns when the value read at t was measured, and the value:
// the scenario's load averaged over the window ending then.
func (m MetricModel) observe(s *Scenario, t time.Duration) (time.Duration, float64) {
	at := m.measuredAt(t)
	return at, averageLoad(s, at-m.Window, at)
}

// averageLoad is the mean of the scenario's load over [from, to], the load
// before zero taken as its value at zero. The integral runs over the
// curve's pieces, exact for steps and ramps.
func averageLoad(s *Scenario, from, to time.Duration) float64 {
	from, to = max(from, 0), max(to, 0)
	if to <= from {
		return s.LoadAt(to)
	}
	// Break points: the curve's points inside (from, to).
	cuts := []time.Duration{from}
	for _, p := range s.Load {
		if p.At > from && p.At < to {
			cuts = append(cuts, p.At)
		}
	}
	cuts = append(cuts, to)
	var sum float64
	for i := 1; i < len(cuts); i++ {
		a, b := cuts[i-1], cuts[i]
		// Within one piece the load is constant or linear: the mean is
		// the midpoint's value; the ends may sit on a step, so take the
		// value just inside.
		mid := a + (b-a)/2
		sum += s.LoadAt(mid) * float64(b-a)
	}
	return sum / float64(to-from)
}
