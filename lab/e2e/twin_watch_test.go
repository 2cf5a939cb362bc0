//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// What the twin records of a run on the lab: the HPA's status writes, the
// pods' lives, metrics-server's measurements and Prometheus' samples.

// measureIdleCPU waits for metrics-server's first measurement of the
// namespace's one pod whose window starts after since, with no load on
// it, and returns its CPU in millicores.
func measureIdleCPU(ctx context.Context, l *lab, ns string, since time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var idle float64
	err := poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		items, err := podMetrics(ctx, l, ns)
		if err != nil {
			return false, err
		}
		for _, it := range items {
			if it.Timestamp.Add(-it.Window).After(since) {
				idle = it.Value
				return true, nil
			}
		}
		return false, nil
	})
	return idle, err
}

// watchHPA records every status write of the HPA named name until ctx
// ends, timed on arrival relative to t0.
func watchHPA(ctx context.Context, l *lab, ns, name string, t0 time.Time) ([]twinWrite, error) {
	var out []twinWrite
	var last string
	for ctx.Err() == nil {
		w, err := l.client.AutoscalingV2().HorizontalPodAutoscalers(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return out, err
		}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			h, ok := ev.Object.(*autoscalingv2.HorizontalPodAutoscaler)
			if !ok {
				continue
			}
			if h.Status.DesiredReplicas == 0 {
				continue // made, not yet synced: minReplicas is 1
			}
			st, _ := json.Marshal(h.Status)
			if string(st) == last {
				continue // a spec or metadata write
			}
			last = string(st)
			out = append(out, twinWrite{At: time.Since(t0), Desired: h.Status.DesiredReplicas, Current: h.Status.CurrentReplicas,
				Metric: statusMetric(h.Status.CurrentMetrics), Conditions: conditionText(h.Status.Conditions)})
		}
		w.Stop()
	}
	return out, nil
}

func statusMetric(ms []autoscalingv2.MetricStatus) string {
	var parts []string
	for _, m := range ms {
		var v autoscalingv2.MetricValueStatus
		switch {
		case m.Resource != nil:
			v = m.Resource.Current
		case m.Pods != nil:
			v = m.Pods.Current
		case m.External != nil:
			v = m.External.Current
		}
		switch {
		case v.AverageUtilization != nil:
			parts = append(parts, fmt.Sprintf("%d%%", *v.AverageUtilization))
		case v.AverageValue != nil:
			parts = append(parts, v.AverageValue.String())
		case v.Value != nil:
			parts = append(parts, v.Value.String())
		}
	}
	return strings.Join(parts, ",")
}

func conditionText(cs []autoscalingv2.HorizontalPodAutoscalerCondition) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	return strings.Join(parts, " ")
}

// watchPods records, on arrival, when each pod was first seen, first seen
// Ready and first seen deleted, relative to t0: the API's timestamps have
// whole seconds only. A pod listed rather than made while watching keeps
// its creation timestamp.
func watchPods(ctx context.Context, l *lab, ns string, t0 time.Time) ([]twinPod, error) {
	pods := map[string]*twinPod{}
	var order []string
	at := func(d time.Duration) *time.Duration { return &d }
	for ctx.Err() == nil {
		w, err := l.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return nil, err
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			now := time.Now()
			tp, seen := pods[p.Name]
			if !seen {
				tp = &twinPod{Name: p.Name, Created: now.Sub(t0)}
				if ev.Type != watch.Added || now.Sub(p.CreationTimestamp.Time) > 2*time.Second {
					tp.Created = p.CreationTimestamp.Sub(t0) // listed, not made now
				}
				pods[p.Name] = tp
				order = append(order, p.Name)
			}
			if p.Status.StartTime != nil && tp.Started == nil {
				tp.Started = at(p.Status.StartTime.Sub(t0))
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && tp.Ready == nil {
					tp.Ready = at(now.Sub(t0))
					tp.ReadySince = at(c.LastTransitionTime.Sub(t0))
				}
			}
			if (p.DeletionTimestamp != nil || ev.Type == watch.Deleted) && tp.Deleted == nil {
				tp.Deleted = at(now.Sub(t0))
			}
		}
		w.Stop()
	}
	out := make([]twinPod, 0, len(order))
	for _, name := range order {
		out = append(out, *pods[name])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
	return out, nil
}

// podMetric is one pod's item of the metrics API.
type podMetric struct {
	Pod       string
	Timestamp time.Time
	Window    time.Duration
	Value     float64 // millicores
}

// podMetrics reads the metrics API's PodMetrics of the namespace.
func podMetrics(ctx context.Context, l *lab, ns string) ([]podMetric, error) {
	raw, err := l.client.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the metrics API: %w", err)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Timestamp  time.Time `json:"timestamp"`
			Window     string    `json:"window"`
			Containers []struct {
				Usage map[string]string `json:"usage"`
			} `json:"containers"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("decode PodMetricsList: %w", err)
	}
	var out []podMetric
	for _, it := range list.Items {
		m := podMetric{Pod: it.Metadata.Name, Timestamp: it.Timestamp}
		m.Window, _ = time.ParseDuration(it.Window)
		for _, c := range it.Containers {
			m.Value += milliCPU(c.Usage["cpu"])
		}
		out = append(out, m)
	}
	return out, nil
}

// twinCPUPoll is how often the twin reads the metrics API.
const twinCPUPoll = 100 * time.Millisecond

// pollPodCPU reads the metrics API every twinCPUPoll, as the HPA
// controller would read it then, and keeps each pod's measurements once,
// with the time a poll first saw each.
func pollPodCPU(ctx context.Context, l *lab, ns string, t0 time.Time) []cpuSample {
	var out []cpuSample
	seen := map[string]bool{}
	tick := time.NewTicker(twinCPUPoll)
	defer tick.Stop()
	for {
		items, err := podMetrics(ctx, l, ns)
		now := time.Since(t0)
		if err == nil {
			for _, it := range items {
				key := it.Pod + "@" + it.Timestamp.String()
				if seen[key] {
					continue
				}
				seen[key] = true
				out = append(out, cpuSample{Pod: it.Pod, Measured: it.Timestamp.Sub(t0), Window: it.Window, Seen: now.Round(time.Millisecond), Value: math.Round(it.Value*1000) / 1000})
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// promScrapes reads every sample Prometheus took of each pod's
// http_requests_in_flight in the namespace, from the warm-up to end: a
// range vector keeps each scrape's own time. A scrape that failed (up
// 0: the pod's process had gone while it was still a target) has no
// sample; its time is kept in Failed, and how long it took in
// FailedFor.
func promScrapes(ctx context.Context, ns string, t0, end time.Time) ([]podScrapes, error) {
	inFlight, err := promRange(ctx, fmt.Sprintf(`http_requests_in_flight{namespace=%q}`, ns), t0, end)
	if err != nil {
		return nil, err
	}
	up, err := promRange(ctx, fmt.Sprintf(`up{namespace=%q}`, ns), t0, end)
	if err != nil {
		return nil, err
	}
	took, err := promRange(ctx, fmt.Sprintf(`scrape_duration_seconds{namespace=%q}`, ns), t0, end)
	if err != nil {
		return nil, err
	}
	var out []podScrapes
	for pod, samples := range inFlight {
		ps := podScrapes{Pod: pod}
		for _, s := range samples {
			ps.At, ps.Value = append(ps.At, s.at), append(ps.Value, s.value)
		}
		tookAt := map[time.Duration]time.Duration{}
		for _, s := range took[pod] {
			tookAt[s.at] = time.Duration(s.value * float64(time.Second)).Round(time.Millisecond)
		}
		for _, s := range up[pod] {
			if s.value != 0 {
				continue
			}
			ps.Failed, ps.FailedFor = append(ps.Failed, s.at), append(ps.FailedFor, tookAt[s.at])
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out, nil
}

// promSample is one raw sample of a series, its time from the curve's
// start.
type promSample struct {
	at    time.Duration
	value float64
}

// promRange reads every raw sample of selector's series from the warm-up
// to end, by pod.
func promRange(ctx context.Context, selector string, t0, end time.Time) (map[string][]promSample, error) {
	span := end.Sub(t0) + twinWarmup + 10*time.Second
	q := url.Values{}
	q.Set("query", fmt.Sprintf(`%s[%ds]`, selector, int(span.Seconds())))
	q.Set("time", strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64))
	req, err := http.NewRequestWithContext(ctx, "GET", "http://10.199.0.1:19090/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query Prometheus for %s: %w", selector, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode the query for %s: %w", selector, err)
	}
	if body.Status != "success" || len(body.Data.Result) == 0 {
		return nil, fmt.Errorf("query %s: status %s, %d series, error %q", selector, body.Status, len(body.Data.Result), body.Error)
	}
	out := map[string][]promSample{}
	for _, r := range body.Data.Result {
		pod := r.Metric["pod"]
		for _, v := range r.Values {
			ts, _ := v[0].(float64)
			s, _ := v[1].(string)
			val, err := strconv.ParseFloat(s, 64)
			if err != nil {
				continue
			}
			out[pod] = append(out[pod], promSample{at: time.UnixMilli(int64(math.Round(ts * 1000))).Sub(t0), value: val})
		}
	}
	return out, nil
}

// milliCPU parses the metrics API's CPU quantities: "12345678n", "12m",
// "1".
func milliCPU(q string) float64 {
	scale := 1000.0
	switch {
	case strings.HasSuffix(q, "n"):
		q, scale = strings.TrimSuffix(q, "n"), 1e-6
	case strings.HasSuffix(q, "u"):
		q, scale = strings.TrimSuffix(q, "u"), 1e-3
	case strings.HasSuffix(q, "m"):
		q, scale = strings.TrimSuffix(q, "m"), 1
	}
	v, err := strconv.ParseFloat(q, 64)
	if err != nil {
		return 0
	}
	return v * scale
}
