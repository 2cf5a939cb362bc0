package autoscale

import (
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
	// SyncPeriod is the HPA controller's sync period. If zero, 15s.
	SyncPeriod time.Duration
	// Duration is how long the simulation runs.
	Duration time.Duration
	// Load is the total load over time, in the same units as PodCapacity.
	Load []LoadPoint
	// PodCapacity is the load one pod serves at 100% of its CPU request.
	// If zero, 1: load is then counted in pods' worth.
	PodCapacity float64
	// CPURequest is each pod's CPU request. If zero, 1 CPU.
	CPURequest resource.Quantity
	// Config holds the controller settings.
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
	if s.ScaledObject != nil {
		if err := s.ScaledObject.Validate(); err != nil {
			return err
		}
		if int32Or(s.ScaledObject.Spec.MaxReplicaCount, 100) > maxSimReplicas {
			return fmt.Errorf("%w: a simulation allows at most %d replicas", ErrInvalidInput, maxSimReplicas)
		}
	} else if err := validateSpec(&s.HPA.Spec); err != nil {
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
	if s.PodStartup < 0 || s.SyncPeriod < 0 || s.PodCapacity < 0 || s.InitialReplicas < 0 {
		return fmt.Errorf("%w: podStartup, syncPeriod, podCapacity and initialReplicas must not be negative", ErrInvalidInput)
	}
	if s.SyncPeriod != 0 && s.SyncPeriod < time.Second {
		return fmt.Errorf("%w: syncPeriod must be at least 1s", ErrInvalidInput)
	}
	if s.CPURequest.Sign() < 0 {
		return fmt.Errorf("%w: cpuRequest must not be negative", ErrInvalidInput)
	}
	if len(s.Load) == 0 {
		return fmt.Errorf("%w: load needs at least one point", ErrInvalidInput)
	}
	for i, p := range s.Load {
		if p.Value < 0 || math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			return fmt.Errorf("%w: load[%d].value must be a finite number >= 0", ErrInvalidInput, i)
		}
		if i > 0 && p.At < s.Load[i-1].At {
			return fmt.Errorf("%w: load[%d].at is before load[%d].at", ErrInvalidInput, i, i-1)
		}
	}
	return nil
}

// LoadAt returns the load at t.
func (s *Scenario) LoadAt(t time.Duration) float64 {
	v := 0.0
	for i, p := range s.Load {
		if p.At > t {
			if p.Ramp && i > 0 {
				prev := s.Load[i-1]
				span := float64(p.At - prev.At)
				if span > 0 {
					return prev.Value + (p.Value-prev.Value)*float64(t-prev.At)/span
				}
			}
			return v
		}
		v = p.Value
	}
	return v
}

// maxSimReplicas bounds the pods a simulation keeps.
const maxSimReplicas = 1000

type simPod struct {
	name    string
	created time.Duration
}

// Simulate runs the scenario from time zero, deciding at every sync
// period (and, for a ScaledObject, activating at every polling interval),
// and returns one Sample per sync.
func Simulate(s Scenario) ([]Sample, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	startup := s.PodStartup
	if startup == 0 {
		startup = 30 * time.Second
	}
	sync := s.SyncPeriod
	if sync == 0 {
		sync = 15 * time.Second
	}
	capacity := s.PodCapacity
	if capacity == 0 {
		capacity = 1
	}
	request := s.CPURequest
	if request.IsZero() {
		request = resource.MustParse("1")
	}
	hpa := s.HPA
	var poll time.Duration
	if s.ScaledObject != nil {
		var err error
		if hpa, err = s.ScaledObject.HPA(); err != nil {
			return nil, err
		}
		poll = s.ScaledObject.PollingInterval()
	}
	replicas := s.InitialReplicas
	if replicas == 0 {
		replicas = max(int32Or(hpa.Spec.MinReplicas, 1), 1)
		if s.ScaledObject != nil {
			replicas = int32Or(s.ScaledObject.Spec.MinReplicaCount, 0)
		}
	}
	epoch := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pods []simPod
	nextID := 0
	resize := func(now time.Duration, n int32) {
		for int32(len(pods)) < n {
			created := now
			if now == 0 {
				// Initial pods are long since ready.
				created = -time.Hour
			}
			pods = append(pods, simPod{name: "pod-" + strconv.Itoa(nextID), created: created})
			nextID++
		}
		if int32(len(pods)) > n {
			// A ReplicaSet removes not-yet-ready pods first, then the newest.
			sort.SliceStable(pods, func(i, j int) bool {
				ri, rj := pods[i].created+startup <= now, pods[j].created+startup <= now
				if ri != rj {
					return ri
				}
				return pods[i].created < pods[j].created
			})
			pods = pods[:n]
		}
	}
	resize(0, replicas)

	var recs []Recommendation
	var events []ScaleEvent
	var lastActive *time.Time
	tick := sync
	if poll > 0 {
		tick = time.Duration(gcd(int64(sync/time.Second), int64(poll/time.Second))) * time.Second
	}
	var out []Sample
	for t := time.Duration(0); t <= s.Duration; t += tick {
		now := epoch.Add(t)
		load := s.LoadAt(t)
		if s.ScaledObject != nil && t%poll == 0 {
			values := make([]float64, len(s.ScaledObject.Spec.Triggers))
			for i := range values {
				values[i] = load
			}
			a, err := s.ScaledObject.Activate(now, replicas, values, lastActive)
			if err != nil {
				return nil, err
			}
			lastActive = a.LastActiveTime
			if a.Replicas >= 0 && a.Replicas != replicas {
				replicas = a.Replicas
				resize(t, replicas)
			}
		}
		if t%sync != 0 {
			continue
		}
		in := Input{HPA: hpa, Now: now, CurrentReplicas: replicas, Recommendations: recs, ScaleEvents: events,
			ObjectMetrics: map[string]resource.Quantity{}, ExternalMetrics: map[string]resource.Quantity{}}
		ready := int32(0)
		for _, p := range pods {
			if p.created+startup <= t {
				ready++
			}
		}
		share := 0.0
		if ready > 0 {
			share = load / float64(ready)
		}
		for _, m := range hpa.Spec.Metrics {
			switch {
			case m.Object != nil:
				in.ObjectMetrics[m.Object.Metric.Name] = MetricValue(load)
			case m.External != nil:
				in.ExternalMetrics[m.External.Metric.Name] = MetricValue(load)
			}
		}
		for _, p := range pods {
			start := epoch.Add(p.created)
			readyAt := epoch.Add(p.created + startup)
			isReady := p.created+startup <= t
			sp := Pod{Name: p.name, Phase: corev1.PodRunning, Ready: isReady, StartTime: &start,
				Requests: corev1.ResourceList{corev1.ResourceCPU: request}}
			if isReady {
				sp.ReadyTransitionTime = readyAt
				// A pod has samples once it serves; its share of the load
				// becomes CPU in proportion to its capacity.
				usage := int64(share / capacity * float64(request.MilliValue()))
				sp.Usage = corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(usage, resource.DecimalSI)}
				sp.Metrics = map[string]resource.Quantity{}
				for _, m := range hpa.Spec.Metrics {
					if m.Pods != nil {
						sp.Metrics[m.Pods.Metric.Name] = MetricValue(share)
					}
				}
			} else {
				sp.ReadyTransitionTime = start
			}
			in.Pods = append(in.Pods, sp)
		}
		row := Sample{Time: t, Load: load, Ready: ready}
		if replicas == 0 {
			row.Desired, row.Reason, row.Metric = 0, "ScaledToZero", fmt.Sprintf("%g", load)
			out = append(out, row)
			continue
		}
		d, err := Recommend(s.Config, in)
		if err != nil {
			return nil, err
		}
		recs, events = d.Recommendations, d.ScaleEvents
		row.Desired, row.Reason, row.Metric = d.DesiredReplicas, d.Reason, metricText(d.CurrentMetrics)
		if d.DesiredReplicas != replicas {
			replicas = d.DesiredReplicas
			resize(t, replicas)
		}
		out = append(out, row)
	}
	return out, nil
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
