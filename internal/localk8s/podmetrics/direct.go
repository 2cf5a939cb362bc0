package podmetrics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// Direct computes pods' metrics from the scrapes its caller records,
// without a Prometheus server: the adapter rules' queries and KEDA's
// trigger queries are evaluated over the kept samples as Prometheus would
// evaluate them over the same scrapes, each series labelled with its
// pod's namespace and pod as a file_sd target would be. It is safe for
// concurrent use.
type Direct struct {
	rules     *Rules
	retention time.Duration
	now       func() time.Time

	mu   sync.Mutex
	pods map[podKey][]Sample
}

type podKey struct{ namespace, pod string }

// DirectConfig configures [NewDirect].
type DirectConfig struct {
	// Rules are the adapter rules; nil allows only Query and Load.
	Rules *Rules
	// Retention is how long samples are kept; it bounds the longest
	// range a query can use. If zero, 10m.
	Retention time.Duration
	// Now is the evaluation time of queries. If nil, time.Now.
	Now func() time.Time
}

// NewDirect returns an empty store.
func NewDirect(cfg DirectConfig) (*Direct, error) {
	if cfg.Rules != nil {
		if err := cfg.Rules.Validate(); err != nil {
			return nil, err
		}
	}
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("podmetrics: negative retention %s", cfg.Retention)
	}
	if cfg.Retention == 0 {
		cfg.Retention = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Direct{rules: cfg.Rules, retention: cfg.Retention, now: cfg.Now, pods: map[podKey][]Sample{}}, nil
}

// Record adds a scrape of a pod. A sample not later than the pod's
// latest is dropped; samples older than the retention go.
func (d *Direct) Record(namespace, pod string, s Sample) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := podKey{namespace, pod}
	h := d.pods[k]
	if n := len(h); n > 0 && !s.Time.After(h[n-1].Time) {
		return
	}
	h = append(h, s)
	cut := 0
	for cut < len(h)-1 && h[cut].Time.Before(s.Time.Add(-d.retention)) {
		cut++
	}
	d.pods[k] = append(h[:0:0], h[cut:]...)
}

// Forget drops a pod's samples, as Prometheus stops seeing a target that
// left service discovery.
func (d *Direct) Forget(namespace, pod string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pods, podKey{namespace, pod})
}

// Load returns a pod's load between its latest sample and the oldest one
// not older than window before it, and false with fewer than two such
// samples.
func (d *Direct) Load(namespace, pod string, window time.Duration) (Load, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.pods[podKey{namespace, pod}]
	if len(h) < 2 {
		return Load{}, false
	}
	cur := h[len(h)-1]
	i := sort.Search(len(h), func(i int) bool { return !h[i].Time.Before(cur.Time.Add(-window)) })
	if i >= len(h)-1 {
		return Load{}, false
	}
	return Rates(h[i], cur), true
}

// PodsMetric returns metric for each of the pods of namespace that has a
// value, evaluating the adapter rule's metricsQuery over the samples.
func (d *Direct) PodsMetric(ctx context.Context, namespace string, pods []string, metric string) (map[string]float64, error) {
	if d.rules == nil {
		return nil, fmt.Errorf("%w %q: no adapter rules configured", ErrNoRule, metric)
	}
	if len(pods) == 0 {
		return map[string]float64{}, nil
	}
	rule, series, err := d.rules.Find(metric, nil)
	if errors.Is(err, ErrNoRule) {
		rule, series, err = d.rules.Find(metric, d.seriesNames())
	}
	if err != nil {
		return nil, err
	}
	text, err := rule.Render(series, namespace, pods)
	if err != nil {
		return nil, err
	}
	els, err := d.Eval(ctx, text)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(els))
	for _, e := range els {
		if pod := e.Labels[rule.PodLabel()]; pod != "" {
			out[pod] = e.Value
		}
	}
	return out, nil
}

// Query evaluates a KEDA prometheus trigger's query with KEDA's rules: 0
// for an empty result, an error for more than one element.
func (d *Direct) Query(ctx context.Context, query string) (float64, error) {
	els, err := d.Eval(ctx, query)
	if err != nil {
		return 0, err
	}
	return single(query, els)
}

// Eval evaluates a query of the supported subset at Now.
func (d *Direct) Eval(ctx context.Context, query string) ([]Element, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	q, err := ParseQuery(query)
	if err != nil {
		return nil, err
	}
	names, all := queryNames(q.root)
	return q.Eval(d.series(names, all), d.now()), nil
}

// queryNames returns the metric names a query reads, or all=true when a
// selector has no literal name.
func queryNames(n node) (names map[string]bool, all bool) {
	names = map[string]bool{}
	var walk func(node)
	walk = func(n node) {
		switch n := n.(type) {
		case *aggNode:
			walk(n.inner)
		case *callNode:
			walk(n.arg)
		case *selectorNode:
			found := false
			for _, m := range n.matchers {
				if m.name == model.MetricNameLabel && m.op == "=" {
					names[m.value] = true
					found = true
				}
			}
			if !found {
				all = true
			}
		}
	}
	walk(n)
	return names, all
}

func (d *Direct) seriesNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for k, h := range d.pods {
		if len(h) == 0 {
			continue
		}
		for _, s := range h[len(h)-1].Series {
			if seen[s.Name] {
				continue
			}
			labels := targetLabels(k, s)
			for i := range d.rules.Rules {
				if d.rules.Rules[i].seriesMatches(labels) {
					seen[s.Name] = true
					out = append(out, s.Name)
					break
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// targetLabels are a scraped series' labels as Prometheus stores them
// for a target labelled namespace and pod: scraped labels of those names
// are kept as exported_namespace and exported_pod (honor_labels: false).
func targetLabels(k podKey, s Series) map[string]string {
	l := make(map[string]string, len(s.Labels)+3)
	for name, v := range s.Labels {
		if name == "namespace" || name == "pod" {
			name = "exported_" + name
		}
		l[name] = v
	}
	l[model.MetricNameLabel] = s.Name
	l["namespace"] = k.namespace
	l["pod"] = k.pod
	return l
}

// series turns the samples into per-series points. A series absent from
// its pod's latest sample is stale, as Prometheus marks it.
func (d *Direct) series(names map[string]bool, all bool) []StoredSeries {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []StoredSeries
	for k, h := range d.pods {
		index := map[string]int{}
		for si, sample := range h {
			for _, s := range sample.Series {
				if !all && !names[s.Name] {
					continue
				}
				labels := targetLabels(k, s)
				key := labelKey(labels)
				i, ok := index[key]
				if !ok {
					i = len(out)
					index[key] = i
					out = append(out, StoredSeries{Labels: labels})
				}
				out[i].Points = append(out[i].Points, Point{T: sample.Time, V: s.Value})
				out[i].Stale = si != len(h)-1
			}
		}
	}
	return out
}
