//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// twinWarmup is how long the initial load runs before a curve starts, so
// that every pipeline has a steady reading of it.
const twinWarmup = 40 * time.Second

// heldChange is one change of the requests the driver held on a pod: Delta
// is +1 when a request was counted (its headers arrived), -1 when it
// ended.
type heldChange struct {
	At    time.Duration
	Pod   string
	Delta int
}

// twinRecord is everything one run of a curve under one autoscaler
// recorded, times relative to the curve's start (T0). It is saved as
// JSON, so that TestTwinReplay can run the twin again on it without the
// lab: the real controller's decisions are recorded once, the twin's model
// can change after.
type twinRecord struct {
	Curve, Autoscaler string
	T0                time.Time
	Steps             []loadStep
	// Initial is the desired replicas the HPA held at T0.
	Initial int32
	// Writes are the HPA status writes seen on the watch: time, desired
	// replicas, and the metric and conditions for the log.
	Writes []twinWrite
	Events []string
	// Pods are the namespace's pods, with when each was made, became
	// Ready and was deleted (as the watch saw it).
	Pods []twinPod
	// Held is the driver's log of the /wait requests it held on each pod
	// (the in-flight autoscalers).
	Held []heldChange `json:",omitempty"`
	// Scrapes are Prometheus' samples of each pod's
	// http_requests_in_flight: when each scrape was taken and what it
	// read (the in-flight autoscalers).
	Scrapes []podScrapes `json:",omitempty"`
	// CPU holds metrics-server's measurements of each pod, each once,
	// with the time the first poll of the metrics API saw it (the CPU
	// autoscaler).
	CPU []cpuSample `json:",omitempty"`
	// Idle is the CPU (millicores) metrics-server measured on the one pod
	// before any load: the runtime, probes and scrapes.
	Idle float64 `json:",omitempty"`
	// Started is when the driver first had a pod to send load to.
	Started time.Duration `json:",omitempty"`
	// Node is the node's CPU outside the lab, read every second from the
	// warm-up to the curve's end (see nodeMeter); absent from records
	// made before the twin read it.
	Node []nodeReading `json:",omitempty"`
}

type twinWrite struct {
	At         time.Duration
	Desired    int32
	Current    int32
	Metric     string
	Conditions string
}

// twinPod is one pod's life, as the watch saw it arrive. Ready and Deleted
// are nil when it did not happen within the record. Started and
// ReadySince are the API's own status.startTime and Ready condition's
// lastTransitionTime (whole seconds), which the controller's CPU rules
// read.
type twinPod struct {
	Name                string
	Created             time.Duration
	Ready, Deleted      *time.Duration `json:",omitempty"`
	Started, ReadySince *time.Duration `json:",omitempty"`
}

// podScrapes are one pod's scrapes, as parallel lists.
type podScrapes struct {
	Pod   string
	At    []time.Duration
	Value []float64
	// Failed are the times of the pod's failed scrapes (up 0), which
	// left no sample: Prometheus marked the pod's series stale then.
	Failed []time.Duration `json:",omitempty"`
	// FailedFor, parallel to Failed, is how long each failed scrape took
	// (scrape_duration_seconds): the stale markers are written as it
	// ends, a connection to a pod whose address has gone taking seconds
	// to fail.
	FailedFor []time.Duration `json:",omitempty"`
}

// cpuSample is one metrics-server measurement of one pod: the CPU
// (millicores) averaged over Window up to Measured, first seen through the
// metrics API at Seen.
type cpuSample struct {
	Pod                    string
	Measured, Window, Seen time.Duration
	Value                  float64
}

// curvePods are the pods in the order they were made, those deleted
// before the curve began left out: the twin numbers its own pods so. A
// pod made during the curve is taken as made at the sync nearest its
// creation (within half a period), the one that decided it, as the twin
// makes its pods: its start-up and first scrape then count from the
// decision, the ReplicaSet's lag included.
func (r *twinRecord) curvePods(syncs []time.Duration, period time.Duration) []twinPod {
	var out []twinPod
	for _, p := range r.Pods {
		if p.Created <= 0 && p.Deleted != nil && *p.Deleted <= 0 {
			continue
		}
		if p.Created >= 0 {
			i := sort.Search(len(syncs), func(i int) bool { return syncs[i] >= p.Created })
			for _, j := range []int{i - 1, i} {
				if j >= 0 && j < len(syncs) && absDur(syncs[j]-p.Created) < period/2 {
					p.Created = syncs[j]
					break
				}
			}
		}
		out = append(out, p)
	}
	// Pods made by one sync are alike to the twin, which removes the
	// newest first; the ReplicaSet chose among them by UID. The one it
	// removed first goes last, so that the twin removes the pod, and the
	// clocks, that the ReplicaSet did.
	deleted := func(p twinPod) time.Duration {
		if p.Deleted == nil {
			return math.MaxInt64
		}
		return *p.Deleted
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return deleted(out[i]) > deleted(out[j])
	})
	return out
}

// podStartups are the start-up times of pods (curvePods), in that order:
// a pod that never became Ready within the record takes fallback, the
// pods there before the warm-up zero.
func podStartups(pods []twinPod, fallback time.Duration) []time.Duration {
	var out []time.Duration
	for _, p := range pods {
		switch {
		case p.Created <= -twinWarmup:
			out = append(out, 0)
		case p.Ready == nil:
			out = append(out, fallback)
		default:
			out = append(out, (*p.Ready - p.Created).Round(time.Millisecond))
		}
	}
	return out
}

// inFlightTotal is what sum(http_requests_in_flight) read at t: each pod's
// latest sample at or before t, while it is fresh (a pod whose next scrape
// did not come within stale of its last is gone).
func inFlightTotal(scrapes []podScrapes, t, stale time.Duration) (float64, bool) {
	var sum float64
	seen := false
	for _, ps := range scrapes {
		i := sort.Search(len(ps.At), func(i int) bool { return ps.At[i] > t }) - 1
		if i < 0 || t-ps.At[i] > stale {
			continue
		}
		sum += ps.Value[i]
		seen = true
	}
	return sum, seen
}

// inFlightReadings samples inFlightTotal every step over [from, to].
func inFlightReadings(scrapes []podScrapes, from, to, step, stale time.Duration) []sample {
	var out []sample
	for t := from; t <= to; t += step {
		if v, ok := inFlightTotal(scrapes, t, stale); ok {
			out = append(out, sample{At: t, Value: v})
		}
	}
	return out
}

// cpuReading is the metrics API's total for the namespace at one time:
// the pods' CPU, and the newest measurement's time and window.
type cpuReading struct {
	At, Measured, Window time.Duration
	Value                float64
}

// cpuReadings turns the per-pod measurements into the totals a poll of
// the metrics API would have read every step over [from, to]: each pod's
// newest measurement seen by then.
func cpuReadings(samples []cpuSample, from, to, step time.Duration) []cpuReading {
	byPod := map[string][]cpuSample{}
	for _, s := range samples {
		byPod[s.Pod] = append(byPod[s.Pod], s)
	}
	for _, ss := range byPod {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Seen < ss[j].Seen })
	}
	var out []cpuReading
	for t := from; t <= to; t += step {
		r := cpuReading{At: t, Measured: math.MinInt64}
		for _, ss := range byPod {
			i := sort.Search(len(ss), func(i int) bool { return ss[i].Seen > t }) - 1
			if i < 0 {
				continue
			}
			r.Value += ss[i].Value
			if ss[i].Measured > r.Measured {
				r.Measured, r.Window = ss[i].Measured, ss[i].Window
			}
		}
		if r.Measured != math.MinInt64 {
			out = append(out, r)
		}
	}
	return out
}

// cpuGain is the median ratio of the pods' CPU to the driven level over
// metrics-server's measurements: each measurement's total over the pods
// against the curve's mean over the same window. A window counts once it
// begins 10 s into the warm-up, after the driver first had a pod to send
// to, and when every pod that served in it was measured: the burns are
// shared among the pods that serve, so their total is the driven load
// whatever the split. The runtime, probes, scrapes and connections cost
// CPU beyond the burn; the modelled curve is scaled by the ratio.
//
// Every such window counts, not only those of a steady level: the
// per-burn cost is the node's and the image's, not the curve's, and a
// curve with few steady windows (a ramp) or steady only at its lowest
// level would otherwise set the gain from a handful of noisy readings.
func (r *twinRecord) cpuGain() float64 {
	var d []float64
	for _, w := range r.cpuWindows() {
		if level := meanLevel(r.Steps, max(w.From, -twinWarmup), w.At); level > 0 {
			d = append(d, w.Sum/level)
		}
	}
	if len(d) == 0 {
		return 1
	}
	sort.Float64s(d)
	return math.Round(d[len(d)/2]*100) / 100
}

// cpuWindow is one metrics-server measurement of every pod that served
// in it: the pods' CPU summed over [From, At].
type cpuWindow struct {
	From, At time.Duration
	Sum      float64
}

// cpuWindows are the measurements cpuGain counts: those that begin 10 s
// into the warm-up, after the driver first had a pod to send to, and in
// which every pod that served was measured.
func (r *twinRecord) cpuWindows() []cpuWindow {
	started := r.Started
	if started == 0 {
		// A record from before the driver logged its start: the pod watch
		// saw the first Ready no sooner than the driver did.
		started = -twinWarmup
		for _, p := range r.Pods {
			if p.Ready != nil {
				started = max(started, *p.Ready)
				break
			}
		}
	}
	byTime := map[time.Duration][]cpuSample{}
	for _, s := range r.CPU {
		byTime[s.Measured] = append(byTime[s.Measured], s)
	}
	var out []cpuWindow
	for at, ss := range byTime {
		from := at - ss[0].Window
		if from < max(started, -twinWarmup+10*time.Second) {
			continue
		}
		measured := map[string]bool{}
		var sum float64
		for _, s := range ss {
			measured[s.Pod] = true
			sum += s.Value
		}
		all := true
		for _, p := range r.Pods {
			served := p.Ready != nil && *p.Ready <= at && (p.Deleted == nil || *p.Deleted > from)
			if served && !measured[p.Name] {
				all = false
			}
		}
		if all {
			out = append(out, cpuWindow{From: from, At: at, Sum: sum})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// meanLevel is the time-weighted mean of steps over [from, to] (the first
// step's value before it).
func meanLevel(steps []loadStep, from, to time.Duration) float64 {
	if to <= from || len(steps) == 0 {
		return 0
	}
	return levelSeconds(steps, from, to) / (to - from).Seconds()
}

// levelSeconds is the integral of steps over [from, to), in level-seconds
// (the first step's value before it).
func levelSeconds(steps []loadStep, from, to time.Duration) float64 {
	var area float64
	for t := from; t < to; {
		next := to
		if i := sort.Search(len(steps), func(i int) bool { return steps[i].At > t }); i < len(steps) && steps[i].At < to {
			next = steps[i].At
		}
		area += valueAt(steps, t) * (next - t).Seconds()
		t = next
	}
	return area
}

// gainSteps scales every step by gain.
func gainSteps(steps []loadStep, gain float64) []loadStep {
	out := make([]loadStep, len(steps))
	for i, st := range steps {
		out[i] = loadStep{At: st.At, Value: math.Round(st.Value * gain)}
	}
	return out
}

// cpuModel measures metrics-server's pipeline from the readings: each
// measurement's time and window come with it, and its delay is from that
// time to the first poll that saw it (medians; the phase is the circular
// mean of the measurement times modulo the resolution). The curve it
// returns is the recorded one: each measurement's value over its window.
func cpuModel(rs []cpuReading, resolution time.Duration) (metricModel, []loadStep, error) {
	var delays, windows, times []time.Duration
	var out []loadStep
	last := time.Duration(math.MinInt64)
	for _, r := range rs {
		if r.Measured == last || r.Measured == math.MinInt64 {
			continue
		}
		last = r.Measured
		delays, windows, times = append(delays, r.At-r.Measured), append(windows, r.Window), append(times, r.Measured)
		at := max(r.Measured-r.Window, 0)
		if len(out) > 0 && out[len(out)-1].At >= at {
			out[len(out)-1].Value = r.Value // an earlier window clamped to zero
			continue
		}
		out = append(out, loadStep{At: at, Value: r.Value})
	}
	if len(times) == 0 {
		return metricModel{}, nil, fmt.Errorf("twin: no CPU readings from the metrics API")
	}
	median := func(ds []time.Duration) time.Duration {
		ds = append([]time.Duration(nil), ds...)
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	phase, err := syncPhase(times, resolution)
	if err != nil {
		return metricModel{}, nil, err
	}
	return metricModel{Delay: median(delays).Round(10 * time.Millisecond), Resolution: resolution, Phase: phase.Round(10*time.Millisecond) % resolution,
		Window: median(windows).Round(10 * time.Millisecond)}, out, nil
}
