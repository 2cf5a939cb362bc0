package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/loadgen"
)

// fairTolerance is how far a replica's share may be from its fair share
// 1/N, as a fraction of 1/N.
const fairTolerance = 0.15

// hpaRow is one reconciliation of the HPA: observed (from the API's
// snapshots) or predicted (by autoscale.Simulate).
type hpaRow struct {
	T       time.Duration `json:"t"` // from the start of the load
	Current int32         `json:"current,omitempty"`
	Desired int32         `json:"desired"`
	Metric  string        `json:"metric"`
	Reason  string        `json:"reason"`
}

// scaling sums up a sequence of HPA decisions around the step.
type scaling struct {
	Initial int32   `json:"initial"`
	Final   int32   `json:"final"`
	Path    []int32 `json:"path"` // desired counts in the order they were set
	// FirstUp and Reached are the times from the step to the first
	// scale-up and to the decision for Final; -1 when none happened.
	FirstUp time.Duration `json:"firstUp"`
	Reached time.Duration `json:"reached"`
	Rows    []hpaRow      `json:"rows"`
}

// window is one time window's spread over the replicas serving after the
// scale-up.
type window struct {
	Start    time.Duration      `json:"start"` // from the start of the load
	Requests int64              `json:"requests"`
	Shares   map[string]float64 `json:"shares"`
	// MaxDev is the largest |share - 1/N| / (1/N) over the replicas.
	MaxDev    float64 `json:"maxDev"`
	Fair      bool    `json:"fair"`
	Evaluated bool    `json:"evaluated"` // at or after SettleAt, within the step
}

// result is the analysis of one run.
type result struct {
	Name       string        `json:"name"`
	MaxConnAge time.Duration `json:"maxConnAge"` // negative: rebalancing off
	ClusterIP  string        `json:"clusterIP"`
	StepAt     time.Duration `json:"stepAt"`
	StepEnd    time.Duration `json:"stepEnd"`
	RateFrom   float64       `json:"rateFrom"`
	RateTo     float64       `json:"rateTo"`
	PodStartup time.Duration `json:"podStartup"`
	// SyncPhase is when, modulo the sync period, the controller synced
	// after the start of the load; the prediction syncs then too.
	SyncPhase   time.Duration `json:"syncPhase"`
	Observed    scaling       `json:"observed"`
	Predicted   scaling       `json:"predicted"`
	ScaleMatch  bool          `json:"scaleMatch"`
	Replicas    []string      `json:"replicas"`    // ready at the end of the step
	NewReplicas []string      `json:"newReplicas"` // those the HPA added
	// NewShare is the new replicas' share over the judged windows, and
	// NewFair what it would be if every replica had 1/N.
	NewShare    float64       `json:"newShare"`
	NewFair     float64       `json:"newFair"`
	AllReadyAt  time.Duration `json:"allReadyAt"` // -1 when never
	SettleAt    time.Duration `json:"settleAt"`   // AllReadyAt + 2 connection ages
	Windows     []window      `json:"windows"`
	Evaluated   int           `json:"evaluated"`
	FairWindows int           `json:"fairWindows"`
	WorstDev    float64       `json:"worstDev"`
	// Aggregate is each replica's share over all evaluated windows.
	Aggregate       map[string]float64 `json:"aggregate"`
	AggregateMaxDev float64            `json:"aggregateMaxDev"`
	// FirstFair is the time from AllReadyAt to the start of the first
	// window within tolerance; -1 when none.
	FirstFair time.Duration    `json:"firstFair"`
	Sent      int64            `json:"sent"`
	OK        int64            `json:"ok"`
	Errors    map[string]int64 `json:"errors"`
	P99       time.Duration    `json:"p99"`
}

// Spread reports whether every evaluated window was within tolerance.
func (r *result) Spread() bool { return r.Evaluated > 0 && r.FairWindows == r.Evaluated }

// stepUp returns the index of the step with the largest rise in rate.
func stepUp(steps []loadgen.Step) (int, error) {
	best, rise := -1, 0.0
	for i := 1; i < len(steps); i++ {
		if d := steps[i].Rate - steps[i-1].Rate; d > rise {
			best, rise = i, d
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("-rate %s has no step up in rate", stepsText(steps))
	}
	return best, nil
}

func stepsText(steps []loadgen.Step) string {
	s := ""
	for i, st := range steps {
		if i > 0 {
			s += ","
		}
		s += st.String()
	}
	return s
}

// analyze turns one run's recordings into its result.
func analyze(name string, rc runConfig, hpa *autoscalingv2.HorizontalPodAutoscaler, d *runData) (*result, error) {
	rep := d.Report
	idx, err := stepUp(rc.steps)
	if err != nil {
		return nil, err
	}
	r := &result{
		Name: name, MaxConnAge: rc.spec.MaxConnAge, ClusterIP: d.ClusterIP,
		RateFrom: rc.steps[idx-1].Rate, RateTo: rc.steps[idx].Rate,
		Sent: rep.Sent, OK: rep.OK, Errors: rep.Errors, P99: rep.Percentile(99),
		AllReadyAt: -1, FirstFair: -1,
	}
	for _, s := range rc.steps[:idx] {
		r.StepAt += s.Duration
	}
	r.StepEnd = r.StepAt + rc.steps[idx].Duration
	rel := func(t time.Time) time.Duration { return t.Sub(rep.Start) }

	// The HPA as observed: one row per reconciliation.
	var rows []hpaRow
	var lastSync time.Time
	for _, p := range d.Polls {
		if p.HPA == nil || p.HPA.LastSync.IsZero() || p.HPA.LastSync.Equal(lastSync) {
			continue
		}
		lastSync = p.HPA.LastSync
		rows = append(rows, hpaRow{T: rel(lastSync), Current: p.HPA.Current, Desired: p.HPA.Desired,
			Metric: p.HPA.Metrics, Reason: p.HPA.Reason})
	}
	r.Observed = summarize(rows, r.StepAt, r.StepEnd, rc.spec.MinReplicas)

	// Pod startup, creation to first seen ready, of the pods the HPA added.
	var startups []time.Duration
	for _, p := range d.Pods {
		if p.Created.After(rep.Start) && !p.ReadyAt.IsZero() {
			startups = append(startups, p.ReadyAt.Sub(p.Created))
		}
	}
	r.PodStartup = 2 * time.Second
	if len(startups) > 0 {
		slices.Sort(startups)
		r.PodStartup = max(startups[len(startups)/2].Round(time.Second), time.Second)
	}
	// The controller syncs on its own schedule; the prediction syncs at the
	// same moments of the load.
	var phase time.Duration
	for _, row := range rows {
		if row.T >= 0 {
			phase = row.T % rc.syncPeriod
			break
		}
	}
	r.SyncPhase = phase
	pred, err := predict(hpa, rc, r.PodStartup, phase)
	if err != nil {
		return nil, err
	}
	r.Predicted = summarize(pred, r.StepAt, r.StepEnd, rc.spec.MinReplicas)
	r.ScaleMatch = r.Observed.Final == r.Predicted.Final && r.Observed.Final > r.Observed.Initial

	// The replicas serving at the end of the step, and when they all were.
	for _, p := range d.Polls {
		if rel(p.At) <= r.StepEnd {
			r.Replicas = p.ReadyPods
		}
	}
	n := len(r.Replicas)
	for _, name := range r.Replicas {
		if p := d.Pods[name]; p != nil && p.Created.After(rep.Start) {
			r.NewReplicas = append(r.NewReplicas, name)
		}
	}
	if n > 0 {
		r.NewFair = float64(len(r.NewReplicas)) / float64(n)
	}
	for _, p := range d.Polls {
		if rel(p.At) >= r.StepAt && len(p.ReadyPods) >= n && n > 0 {
			r.AllReadyAt = rel(p.At)
			break
		}
	}
	age := rc.spec.MaxConnAge
	if age <= 0 {
		age = rc.settleAge
	}
	r.SettleAt = r.AllReadyAt + 2*age
	fairness(r, rep)
	return r, nil
}

// fairness computes each window's shares over r.Replicas and judges the
// windows that start at or after SettleAt and end within the step.
func fairness(r *result, rep *loadgen.Report) {
	n := len(r.Replicas)
	if n == 0 || r.AllReadyAt < 0 {
		return
	}
	fair := 1 / float64(n)
	agg := map[string]int64{}
	var aggTotal int64
	for _, w := range rep.Windows {
		if w.Start+rep.Window <= r.StepAt || w.Start+rep.Window > r.StepEnd {
			continue
		}
		var total int64
		for _, name := range r.Replicas {
			total += w.Replicas[name]
		}
		win := window{Start: w.Start, Requests: total, Shares: map[string]float64{}}
		if total > 0 {
			for _, name := range r.Replicas {
				s := float64(w.Replicas[name]) / float64(total)
				win.Shares[name] = s
				win.MaxDev = math.Max(win.MaxDev, math.Abs(s-fair)/fair)
			}
			win.Fair = win.MaxDev <= fairTolerance
		}
		if w.Start >= r.AllReadyAt && win.Fair && r.FirstFair < 0 {
			r.FirstFair = w.Start - r.AllReadyAt
		}
		if w.Start >= r.SettleAt && total > 0 {
			win.Evaluated = true
			r.Evaluated++
			if win.Fair {
				r.FairWindows++
			}
			r.WorstDev = math.Max(r.WorstDev, win.MaxDev)
			for _, name := range r.Replicas {
				agg[name] += w.Replicas[name]
				aggTotal += w.Replicas[name]
			}
		}
		r.Windows = append(r.Windows, win)
	}
	if aggTotal > 0 {
		r.Aggregate = map[string]float64{}
		for _, name := range r.Replicas {
			s := float64(agg[name]) / float64(aggTotal)
			r.Aggregate[name] = s
			r.AggregateMaxDev = math.Max(r.AggregateMaxDev, math.Abs(s-fair)/fair)
			if slices.Contains(r.NewReplicas, name) {
				r.NewShare += s
			}
		}
	}
}

// scrapeInterval is how often `shoal up` scrapes the pods' /metrics for
// the autoscalers.
const scrapeInterval = 2 * time.Second

// predict runs autoscale.Simulate on the HPA of the manifests with the
// run's load: the rate steps, each rise seen by the HPA as a ramp. rate()
// over a range is the increase between the first and the last scrape in
// it, so a step shows as a ramp over the span of those scrapes (the range
// less one scrape interval), starting when the first scrape after the step
// lands (half an interval later, on average).
//
// Simulate syncs at 0, sync, 2·sync, ...; the load is shifted by phase so
// that those are the moments the controller synced, and the rows are
// shifted back.
func predict(hpa *autoscalingv2.HorizontalPodAutoscaler, rc runConfig, startup, phase time.Duration) ([]hpaRow, error) {
	var load []autoscale.LoadPoint
	at := -phase
	var total time.Duration
	for _, s := range rc.steps {
		total += s.Duration
	}
	if rc.duration > 0 {
		total = min(total, rc.duration)
	}
	for i, s := range rc.steps {
		switch {
		case i == 0:
			load = append(load, autoscale.LoadPoint{At: 0, Value: s.Rate})
		case at <= 0:
			// The step came before the first sync.
			load[0].Value = s.Rate
		default:
			delay := min(scrapeInterval/2, s.Duration)
			ramp := min(rc.spec.RateWindow-scrapeInterval, s.Duration-delay)
			load = append(load,
				autoscale.LoadPoint{At: at + delay, Value: rc.steps[i-1].Rate},
				autoscale.LoadPoint{At: at + delay + ramp, Value: s.Rate, Ramp: true})
		}
		at += s.Duration
	}
	samples, err := autoscale.Simulate(context.Background(), autoscale.Scenario{
		HPA:             hpa,
		InitialReplicas: rc.spec.MinReplicas,
		PodStartup:      startup,
		SyncPeriod:      rc.syncPeriod,
		Duration:        total - phase,
		Load:            load,
	})
	if err != nil {
		return nil, fmt.Errorf("prediction: %w", err)
	}
	rows := make([]hpaRow, 0, len(samples))
	for _, s := range samples {
		rows = append(rows, hpaRow{T: s.Time + phase, Desired: s.Desired, Metric: s.Metric, Reason: s.Reason})
	}
	return rows, nil
}

// summarize reads the decisions around the step out of rows.
func summarize(rows []hpaRow, stepAt, stepEnd time.Duration, min int32) scaling {
	s := scaling{Initial: min, Final: min, FirstUp: -1, Reached: -1}
	for _, r := range rows {
		if r.T < stepAt {
			s.Initial, s.Final = r.Desired, r.Desired
		}
	}
	s.Path = []int32{s.Initial}
	var finalAt time.Duration = -1
	for _, r := range rows {
		if r.T < stepAt || r.T > stepEnd {
			continue
		}
		if r.Desired != s.Final {
			s.Path = append(s.Path, r.Desired)
			s.Final = r.Desired
			finalAt = r.T - stepAt
		}
		if s.FirstUp < 0 && r.Desired > s.Initial {
			s.FirstUp = r.T - stepAt
		}
	}
	if s.Final != s.Initial {
		s.Reached = finalAt
	}
	// Keep the rows from just before the step to a few syncs past the
	// final decision.
	for _, r := range rows {
		if r.T >= stepAt-3*time.Second && (s.Reached < 0 || r.T <= stepAt+s.Reached+10*time.Second) && r.T <= stepEnd {
			s.Rows = append(s.Rows, r)
		}
	}
	return s
}
