package autoscale

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
)

// MaxCurvePoints bounds a replayed curve, and the points of the curve the
// autoscaler sees once metric resolution is applied: a week at one point
// a second is 604800, so a curve must be given at a coarser step.
const MaxCurvePoints = 100_000

// MaxDemand bounds a demand value, of a replayed curve or a simulated
// load: a trillion requests a second is past any service, and the
// quantities and sums made from a demand stay finite and exact below it.
const MaxDemand = 1e12

// Replay is a recorded demand curve run through one autoscaler spec with
// a model of its pods, to measure what the spec would have cost and how
// often it would have left demand unserved.
type Replay struct {
	// HPA or ScaledObject (exactly one) is the spec replayed.
	HPA          *autoscalingv2.HorizontalPodAutoscaler
	ScaledObject *ScaledObject
	// Curve is the demand: each point holds from its At until the next
	// point's, the last one until Duration. Ramps are not allowed: a
	// recorded curve is given at its resolution. Points start at 0.
	Curve []LoadPoint
	// Duration is how long the replay runs. If zero, the last point's time
	// plus the curve's last step (the gap before the last point).
	Duration time.Duration
	// PodCapacity is the demand one ready pod serves at 100% of its CPU
	// request (or, for a Pods or External metric, the per-pod value it
	// saturates at): ready capacity is ready pods times PodCapacity. If
	// zero, 1: demand is then in pods' worth.
	PodCapacity float64
	// PodStartup is the time from a pod's creation to its readiness. If
	// zero, 30s.
	PodStartup time.Duration
	// MetricDelay is how old the demand the autoscaler sees is: the scrape
	// and pipeline lag. Zero means none.
	MetricDelay time.Duration
	// MetricResolution is the period at which the metric is sampled (the
	// scrape or metrics-server resolution): the autoscaler sees the
	// demand at the last multiple of it. Zero means the curve's own.
	MetricResolution time.Duration
	// SyncPeriod is the HPA controller's sync period. If zero, 15s.
	SyncPeriod time.Duration
	// InitialReplicas is the replica count at time zero, all ready. If
	// zero, the spec's minimum (at least 1 for an HPA).
	InitialReplicas int32
	// CPURequest is each pod's CPU request. If zero, 1 CPU.
	CPURequest resource.Quantity
	// Config holds the controller settings; its zero value gives the
	// upstream defaults.
	Config Config
}

// Report is what one spec did over a replayed curve.
type Report struct {
	// PodSeconds is the cost: the integral of the replica count, pods
	// still starting included.
	PodSeconds float64 `json:"podSeconds"`
	// UnderSeconds is how long ready capacity was below demand.
	UnderSeconds float64 `json:"underSeconds"`
	// Shortfall is the integral of demand above ready capacity, in
	// demand-seconds (requests, for a demand in requests per second).
	Shortfall float64 `json:"shortfall"`
	// PeakOverload is the largest demand over ready capacity; +Inf when
	// there was demand with no ready pod (null in JSON).
	PeakOverload float64 `json:"-"`
	// ScaleEvents counts the changes of the replica count.
	ScaleEvents int `json:"scaleEvents"`
	// PeakReplicas is the largest replica count.
	PeakReplicas int32 `json:"peakReplicas"`
	// Series has one point per curve point, for a chart.
	Series []ReplayPoint `json:"series,omitempty"`
}

// MarshalJSON encodes an infinite PeakOverload as null, and so any
// figure that is not finite: JSON has no infinity, and encoding/json
// refuses the whole report for one. MaxDemand keeps a replay's sums
// finite; null keeps -o json working if one ever is not.
// The fields are Report's, in its order (a new one goes here too).
func (r Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		PodSeconds   *float64      `json:"podSeconds"`
		UnderSeconds *float64      `json:"underSeconds"`
		Shortfall    *float64      `json:"shortfall"`
		ScaleEvents  int           `json:"scaleEvents"`
		PeakReplicas int32         `json:"peakReplicas"`
		Series       []ReplayPoint `json:"series,omitempty"`
		PeakOverload *float64      `json:"peakOverload"`
	}{finite(r.PodSeconds), finite(r.UnderSeconds), finite(r.Shortfall), r.ScaleEvents, r.PeakReplicas, r.Series, finite(r.PeakOverload)})
}

// finite returns &v, or nil when v is infinite or NaN.
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}

// ReplayPoint is the state at one curve point.
type ReplayPoint struct {
	Time     time.Duration `json:"time"`
	Demand   float64       `json:"demand"`
	Replicas int32         `json:"replicas"`
	Ready    int32         `json:"ready"`
}

// Validate checks that the replay can run.
func (r *Replay) Validate() error {
	if len(r.Curve) == 0 {
		return fmt.Errorf("%w: the curve has no points", ErrInvalidInput)
	}
	if len(r.Curve) > MaxCurvePoints {
		return fmt.Errorf("%w: the curve has %d points, more than %d: give it at a coarser step", ErrInvalidInput, len(r.Curve), MaxCurvePoints)
	}
	if r.Curve[0].At != 0 {
		return fmt.Errorf("%w: curve[0].at is %s, not 0", ErrInvalidInput, r.Curve[0].At)
	}
	for i, p := range r.Curve {
		if p.Ramp {
			return fmt.Errorf("%w: curve[%d] is a ramp; a replayed curve holds each point", ErrInvalidInput, i)
		}
		if !(p.Value >= 0 && p.Value <= MaxDemand) {
			return fmt.Errorf("%w: curve[%d].value %g must be within [0, %g]", ErrInvalidInput, i, p.Value, MaxDemand)
		}
		if i > 0 && p.At <= r.Curve[i-1].At {
			return fmt.Errorf("%w: curve[%d].at is not after curve[%d].at", ErrInvalidInput, i, i-1)
		}
	}
	if r.Duration < 0 || r.MetricDelay < 0 || r.MetricResolution < 0 {
		return fmt.Errorf("%w: duration, metricDelay and metricResolution must not be negative", ErrInvalidInput)
	}
	if r.Duration == 0 && len(r.Curve) < 2 {
		return fmt.Errorf("%w: a curve of one point needs a duration", ErrInvalidInput)
	}
	if d := r.duration(); d <= r.Curve[len(r.Curve)-1].At {
		return fmt.Errorf("%w: duration %s ends before the curve's last point at %s", ErrInvalidInput, d, r.Curve[len(r.Curve)-1].At)
	}
	if r.MetricResolution > 0 && r.duration()/r.MetricResolution > MaxCurvePoints {
		return fmt.Errorf("%w: metricResolution %s makes more than %d metric points over %s", ErrInvalidInput, r.MetricResolution, MaxCurvePoints, r.duration())
	}
	if r.MetricDelay > r.duration() {
		return fmt.Errorf("%w: metricDelay %s is longer than the replay (%s)", ErrInvalidInput, r.MetricDelay, r.duration())
	}
	s := r.scenario()
	if err := s.Validate(); err != nil {
		return err
	}
	return s.checkWork(true)
}

func (r *Replay) duration() time.Duration {
	if r.Duration > 0 {
		return r.Duration
	}
	n := len(r.Curve)
	if n < 2 {
		return 0
	}
	return r.Curve[n-1].At + (r.Curve[n-1].At - r.Curve[n-2].At)
}

// demandAt returns the curve's value at t, by binary search.
func (r *Replay) demandAt(t time.Duration) float64 {
	s := Scenario{Load: r.Curve}
	return s.LoadAt(t)
}

// observed is the curve the autoscaler sees: the demand at the last
// multiple of the metric resolution, MetricDelay late. Before the first
// sample arrives it sees the curve's first value, as if the load had been
// steady before the replay.
func (r *Replay) observed() []LoadPoint {
	end := r.duration()
	if r.MetricResolution == 0 {
		out := make([]LoadPoint, 0, len(r.Curve))
		for _, p := range r.Curve {
			at := p.At + r.MetricDelay
			if p.At == 0 {
				at = 0
			}
			if at <= end {
				out = append(out, LoadPoint{At: at, Value: p.Value})
			}
		}
		return out
	}
	var out []LoadPoint
	for t := time.Duration(0); t+r.MetricDelay <= end; t += r.MetricResolution {
		v := r.demandAt(t)
		if len(out) > 0 && out[len(out)-1].Value == v {
			continue
		}
		at := t + r.MetricDelay
		if t == 0 {
			at = 0
		}
		out = append(out, LoadPoint{At: at, Value: v})
	}
	return out
}

// scenario is the simulation the replay runs: the spec over the observed
// curve. Simulate's machinery decides; the replay measures the pods it
// keeps against the real curve.
func (r *Replay) scenario() Scenario {
	return Scenario{HPA: r.HPA, ScaledObject: r.ScaledObject, InitialReplicas: r.InitialReplicas,
		PodStartup: r.PodStartup, SyncPeriod: r.SyncPeriod, Duration: r.duration(), Load: r.observed(),
		PodCapacity: r.PodCapacity, CPURequest: r.CPURequest, Config: r.Config}
}

// Run replays the curve through the spec: the autoscaler decides at every
// sync period (and KEDA activates at every polling interval) on the
// observed curve, as Simulate does, and between decisions the replay
// integrates the pods kept and the ready capacity against the demand.
// The work is one decision per sync plus one step per curve point or pod
// turning ready; it stops with ctx's error when ctx ends first.
func (r Replay) Run(ctx context.Context) (Report, error) {
	if err := r.Validate(); err != nil {
		return Report{}, err
	}
	s := r.scenario().withDefaults()
	sim, err := newSimulator(s)
	if err != nil {
		return Report{}, err
	}
	end := s.Duration
	capacity := s.PodCapacity
	rep := Report{Series: make([]ReplayPoint, 0, len(r.Curve)), PeakReplicas: sim.replicas}
	nextCurve := 0 // index of the next curve point to record
	prevReplicas := sim.replicas
	for t, n := time.Duration(0), 0; t < end; n++ {
		if n%checkEvery == 0 {
			if err := stopped(ctx, t, end); err != nil {
				return Report{}, err
			}
		}
		if t%sim.tick == 0 {
			if sim.poll > 0 && t%sim.poll == 0 {
				if err := sim.activate(t); err != nil {
					return Report{}, err
				}
			}
			if sim.isSync(t) {
				if _, err := sim.sync(t); err != nil {
					return Report{}, err
				}
			}
		}
		if sim.replicas != prevReplicas {
			rep.ScaleEvents++
			prevReplicas = sim.replicas
		}
		rep.PeakReplicas = max(rep.PeakReplicas, sim.replicas)
		ready := sim.readyPods(t)
		demand := r.demandAt(t)
		for nextCurve < len(r.Curve) && r.Curve[nextCurve].At <= t {
			rep.Series = append(rep.Series, ReplayPoint{Time: r.Curve[nextCurve].At, Demand: r.Curve[nextCurve].Value, Replicas: sim.replicas, Ready: ready})
			nextCurve++
		}
		// Until the next boundary (a sync or poll, a curve point, a pod
		// turning ready, the end) nothing changes.
		next := min((t/sim.tick+1)*sim.tick, end)
		if nextCurve < len(r.Curve) {
			next = min(next, r.Curve[nextCurve].At)
		}
		for _, p := range sim.pods {
			if p.readyAt > t {
				next = min(next, p.readyAt)
			}
		}
		dt := (next - t).Seconds()
		rep.PodSeconds += float64(len(sim.pods)) * dt
		supply := float64(ready) * capacity
		if demand > supply {
			rep.UnderSeconds += dt
			rep.Shortfall += (demand - supply) * dt
		}
		if demand > 0 {
			rep.PeakOverload = math.Max(rep.PeakOverload, demand/supply)
		}
		t = next
	}
	return rep, nil
}
