package podmetrics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

// ErrInvalidQuery is wrapped when a query is not valid PromQL, or is of a
// kind a metric cannot come from (a range vector or a string).
var ErrInvalidQuery = errors.New("podmetrics: invalid query")

// Direct computes pods' metrics from the scrapes its caller records,
// without a Prometheus server: the adapter rules' queries and KEDA's
// trigger queries run on Prometheus' own PromQL engine over the kept
// samples, each series labelled with its pod's namespace and pod as a
// file_sd target would be. It is safe for concurrent use.
type Direct struct {
	rules   *Rules
	now     func() time.Time
	engine  *promql.Engine
	timeout time.Duration
	st      *store
}

var _ storage.Queryable = (*Direct)(nil)

// DirectConfig configures [NewDirect]. Its zero value is valid: every
// bound has a default, chosen so the store of a shoal up with a few dozen
// pods stays within MaxBytes whatever the pods expose.
type DirectConfig struct {
	// Rules are the adapter rules; nil allows only Query and Eval.
	Rules *Rules
	// Retention is how long samples are kept; it bounds the longest
	// range a query can use. If zero, 10m.
	Retention time.Duration
	// ScrapeInterval is how often the caller records each pod. With
	// Retention it sizes each series' ring of samples
	// (Retention/ScrapeInterval + 2); recording more often keeps a
	// shorter window. If zero, 2s.
	ScrapeInterval time.Duration
	// MaxBytes bounds the memory of the kept series: each is charged its
	// labels and its full ring when it first appears, and a scrape whose
	// new series do not fit is refused with [ErrLimit]. If zero, 64 MiB.
	MaxBytes int
	// SampleLimit is the most series one scrape may hold, as Prometheus'
	// sample_limit. If zero, 10000.
	SampleLimit int
	// LabelLimit is the most labels a series may have, the namespace,
	// pod and __name__ labels included. If zero, 64.
	LabelLimit int
	// LabelValueLengthLimit is the longest label name or value (and
	// series name) a scrape may hold, in bytes. If zero, 2048.
	LabelValueLengthLimit int
	// QueryTimeout bounds one query's evaluation. If zero, 10s.
	QueryTimeout time.Duration
	// MaxQuerySamples is the most samples one query may hold in memory
	// at once, as Prometheus' --query.max-samples. If zero, 1000000.
	MaxQuerySamples int
	// LookbackDelta is how far back an instant selector looks for a
	// sample, as Prometheus' --query.lookback-delta. If zero, 5m.
	LookbackDelta time.Duration
	// Now is the evaluation time of queries, and the time a forgotten
	// pod's series are marked stale. If nil, time.Now.
	Now func() time.Time
}

// NewDirect returns an empty store with its query engine.
func NewDirect(cfg DirectConfig) (*Direct, error) {
	if cfg.Rules != nil {
		if err := cfg.Rules.Validate(); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"retention", int64(cfg.Retention)}, {"scrape interval", int64(cfg.ScrapeInterval)},
		{"max bytes", int64(cfg.MaxBytes)}, {"sample limit", int64(cfg.SampleLimit)},
		{"label limit", int64(cfg.LabelLimit)}, {"label value length limit", int64(cfg.LabelValueLengthLimit)},
		{"query timeout", int64(cfg.QueryTimeout)}, {"max query samples", int64(cfg.MaxQuerySamples)},
		{"lookback delta", int64(cfg.LookbackDelta)},
	} {
		if f.v < 0 {
			return nil, fmt.Errorf("podmetrics: negative %s %d", f.name, f.v)
		}
	}
	cfg.Retention = cmpOr(cfg.Retention, defaultRetention)
	cfg.ScrapeInterval = cmpOr(cfg.ScrapeInterval, defaultScrapeInterval)
	cfg.MaxBytes = cmpOr(cfg.MaxBytes, defaultMaxBytes)
	cfg.SampleLimit = cmpOr(cfg.SampleLimit, defaultSampleLimit)
	cfg.LabelLimit = cmpOr(cfg.LabelLimit, defaultLabelLimit)
	cfg.LabelValueLengthLimit = cmpOr(cfg.LabelValueLengthLimit, defaultLabelValueLen)
	cfg.QueryTimeout = cmpOr(cfg.QueryTimeout, 10*time.Second)
	cfg.MaxQuerySamples = cmpOr(cfg.MaxQuerySamples, 1_000_000)
	cfg.LookbackDelta = cmpOr(cfg.LookbackDelta, lookback)
	if cfg.Retention/cfg.ScrapeInterval > 1<<20 {
		return nil, fmt.Errorf("podmetrics: retention %s at a %s scrape interval keeps over %d samples a series", cfg.Retention, cfg.ScrapeInterval, 1<<20)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:    cfg.MaxQuerySamples,
		Timeout:       cfg.QueryTimeout,
		LookbackDelta: cfg.LookbackDelta,
		// Prometheus' defaults since 2.33, and its default
		// evaluation_interval as the step of a subquery without one.
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})
	return &Direct{rules: cfg.Rules, now: cfg.Now, engine: engine, timeout: cfg.QueryTimeout, st: newStore(cfg)}, nil
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Record adds a scrape of a pod, taken at s.Time. A scrape not later than
// the pod's latest is dropped. A series the pod reported before and not
// in s is marked stale, as Prometheus marks it. A scrape over one of the
// bounds is refused with an error wrapping [ErrLimit], and the pod's
// series are marked stale, as when Prometheus fails a scrape.
func (d *Direct) Record(namespace, pod string, s Sample) error {
	return d.st.record(podKey{namespace, pod}, s.Time.UnixMilli(), s.Series)
}

// Forget marks a pod's series stale, as Prometheus does for a target that
// left service discovery; the samples age out with the retention.
func (d *Direct) Forget(namespace, pod string) {
	d.st.forget(podKey{namespace, pod}, d.now().UnixMilli())
}

// Usage reports how many series the store keeps and the bytes they are
// charged against MaxBytes.
func (d *Direct) Usage() (series, bytes int) { return d.st.usage() }

// Querier reads the kept samples between mint and maxt (milliseconds), so
// a Direct is a storage.Queryable for Prometheus' own code.
func (d *Direct) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{st: d.st, mint: mint, maxt: maxt}, nil
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
		rule, series, err = d.rules.Find(metric, d.seriesNames(ctx))
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
		return nil, fmt.Errorf("adapter rule for %q: %w", metric, err)
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

// Element is one labelled value of a query's result.
type Element struct {
	Labels map[string]string
	Value  float64
}

// maxQueryLen bounds the text Eval accepts.
const maxQueryLen = 64 << 10

// Eval evaluates a PromQL expression as an instant query at Now, as
// Prometheus' /api/v1/query does. A scalar result is one element without
// labels; a vector's elements are sorted by labels.
func (d *Direct) Eval(ctx context.Context, query string) ([]Element, error) {
	if len(query) > maxQueryLen {
		return nil, fmt.Errorf("%w: query of %d bytes, longer than %d", ErrInvalidQuery, len(query), maxQueryLen)
	}
	q, err := d.engine.NewInstantQuery(ctx, d, nil, query, d.now())
	if err != nil {
		return nil, d.queryError(ctx, query, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, d.queryError(ctx, query, res.Err)
	}
	switch v := res.Value.(type) {
	case promql.Scalar:
		return []Element{{Labels: map[string]string{}, Value: v.V}}, nil
	case promql.Vector:
		out := make([]Element, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				continue // the store holds no native histograms
			}
			out = append(out, Element{Labels: s.Metric.Map(), Value: s.F})
		}
		sort.Slice(out, func(i, j int) bool { return keyOf(out[i].Labels) < keyOf(out[j].Labels) })
		return out, nil
	}
	return nil, fmt.Errorf("%w: %q gives a %s, want an instant vector or a scalar", ErrInvalidQuery, query, parser.DocumentedType(res.Value.Type()))
}

// queryError names the query and what was wrong with it: a parse error
// (position and message) is ErrInvalidQuery; anything else is ErrQuery,
// with the engine's words for a timeout or a cancellation replaced by the
// limit or the context's error.
func (d *Direct) queryError(ctx context.Context, query string, err error) error {
	var perrs parser.ParseErrors
	var timeout promql.ErrQueryTimeout
	var canceled promql.ErrQueryCanceled
	var tooMany promql.ErrTooManySamples
	switch {
	case errors.As(err, &perrs):
		return fmt.Errorf("%w: %q: %w", ErrInvalidQuery, query, err)
	case errors.As(err, &canceled) && ctx.Err() != nil:
		return fmt.Errorf("%w: %q: %w", ErrQuery, query, ctx.Err())
	case errors.As(err, &timeout):
		return fmt.Errorf("%w: %q took longer than %s", ErrQuery, query, d.timeout)
	case errors.As(err, &tooMany):
		return fmt.Errorf("%w: %q would hold too many samples in memory: %w", ErrQuery, query, err)
	}
	return fmt.Errorf("%w: %q: %w", ErrQuery, query, err)
}

// seriesNames returns the names of the series, reported within the
// lookback, that the rules without a literal series name select.
func (d *Direct) seriesNames(ctx context.Context) []string {
	end := d.now().UnixMilli()
	q, _ := d.Querier(end-lookback.Milliseconds(), end)
	seen := map[string]bool{}
	for i := range d.rules.Rules {
		ru := &d.rules.Rules[i]
		if ru.SeriesName() != "" {
			continue
		}
		set := q.Select(ctx, false, nil, ru.matchers...)
		for set.Next() {
			seen[set.At().Labels().Get(model.MetricNameLabel)] = true
		}
	}
	return sortedKeys(seen)
}
