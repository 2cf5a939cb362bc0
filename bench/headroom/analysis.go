package main

import (
	"math"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/loadgen"
)

// shape is a load curve, and the moment in it the autoscalers answer.
type shape struct {
	Name  string
	Steps []loadgen.Step
}

// length is the shape's total duration.
func (s shape) length() time.Duration {
	var d time.Duration
	for _, st := range s.Steps {
		d += st.Duration
	}
	return d
}

// rise is when the shape's largest increase of rate begins; 0 when the
// rate never rises.
func (s shape) rise() time.Duration {
	var at, t time.Duration
	best := 0.0
	for i, st := range s.Steps {
		if i > 0 && st.Rate-s.Steps[i-1].Rate > best {
			best, at = st.Rate-s.Steps[i-1].Rate, t
		}
		t += st.Duration
	}
	return at
}

// objective is what a window of requests must meet.
type objective struct {
	P99       time.Duration // the window's 99th percentile latency at most
	MaxFailed float64       // the share of its requests that failed at most
}

// result is one run's figures.
type result struct {
	Variant string `json:"variant"`
	Metric  string `json:"metric"`
	Shape   string `json:"shape"`
	// OverSeconds is the time, in whole windows, the objective was missed.
	OverSeconds float64 `json:"overSeconds"`
	// OverAfterRise is the same from the rise on.
	OverAfterRise float64       `json:"overAfterRise"`
	Requests      int           `json:"requests"`
	Failed        int           `json:"failed"`
	P99           time.Duration `json:"p99"`
	// ScaleUp is how long after the rise the autoscaler first asked for
	// more pods than it had before it; ReadyUp, when that many were
	// ready. Negative: never within the run.
	ScaleUp    time.Duration `json:"scaleUp"`
	ReadyUp    time.Duration `json:"readyUp"`
	PeakPods   int           `json:"peakPods"`
	PodSeconds float64       `json:"podSeconds"`
	// Timeline is the run window by window, for reading what happened.
	Timeline []second `json:"timeline"`
}

// second is one window of a run: the requests sent in it and the
// Deployment and autoscaler at its end.
type second struct {
	At      float64 `json:"at"` // seconds from the start of the load
	Sent    int     `json:"sent"`
	Failed  int     `json:"failed"`
	P99ms   float64 `json:"p99ms"`
	Pods    int     `json:"pods"`
	Ready   int     `json:"ready"`
	Desired int32   `json:"desired"`
	Metric  string  `json:"metric"`
}

// analyze turns a run's records into its figures.
func analyze(v variant, metric string, sh shape, window time.Duration, obj objective, d *runData) *result {
	r := &result{Variant: v.Name, Metric: metric, Shape: sh.Name}
	var all []time.Duration
	riseWindow := int(sh.rise() / window)
	n := int(sh.length() / window)
	for i := 0; i < n && i < len(d.Windows); i++ {
		w := d.Windows[i]
		r.Requests += w.total
		r.Failed += w.failed
		all = append(all, w.latencies...)
		tl := second{At: (time.Duration(i) * window).Seconds(), Sent: w.total, Failed: w.failed,
			P99ms: float64(percentile(w.latencies, 99).Microseconds()) / 1000}
		if p, ok := pollAt(d.Polls, d.Start.Add(time.Duration(i+1)*window)); ok {
			tl.Pods, tl.Ready, tl.Desired, tl.Metric = p.Pods, p.Ready, p.Desired, p.Metric
		}
		r.Timeline = append(r.Timeline, tl)
		if !meets(w, obj) {
			r.OverSeconds += window.Seconds()
			if i >= riseWindow {
				r.OverAfterRise += window.Seconds()
			}
		}
	}
	r.P99 = percentile(all, 99)
	rise := d.Start.Add(sh.rise())
	end := d.Start.Add(sh.length())
	r.ScaleUp, r.ReadyUp = -1, -1
	var before, readyBefore int32 = -1, 0
	for i, p := range d.Polls {
		if p.At.After(end) {
			break
		}
		if i > 0 {
			from := d.Polls[i-1].At
			if from.Before(d.Start) {
				from = d.Start
			}
			if p.At.After(from) {
				r.PodSeconds += float64(d.Polls[i-1].Pods) * p.At.Sub(from).Seconds()
			}
		}
		r.PeakPods = max(r.PeakPods, p.Pods)
		if p.At.Before(rise) {
			before, readyBefore = p.Desired, int32(p.Ready)
			continue
		}
		if before < 0 {
			before, readyBefore = p.Desired, int32(p.Ready)
		}
		if r.ScaleUp < 0 && p.Desired > before {
			r.ScaleUp = p.At.Sub(rise)
		}
		if r.ReadyUp < 0 && r.ScaleUp >= 0 && int32(p.Ready) > readyBefore {
			r.ReadyUp = p.At.Sub(rise)
		}
	}
	return r
}

// meets says whether a window met the objective; a window without
// requests has nothing to miss.
func meets(w windowSamples, obj objective) bool {
	if w.total == 0 {
		return true
	}
	if float64(w.failed)/float64(w.total) > obj.MaxFailed {
		return false
	}
	return percentile(w.latencies, 99) <= obj.P99
}

// percentile is the nearest-rank q-th percentile of ds (0 when empty).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// pollAt is the last poll at or before t.
func pollAt(polls []poll, t time.Time) (poll, bool) {
	i, found := slices.BinarySearchFunc(polls, t, func(p poll, t time.Time) int { return p.At.Compare(t) })
	if found {
		return polls[i], true
	}
	if i == 0 {
		return poll{}, false
	}
	return polls[i-1], true
}
