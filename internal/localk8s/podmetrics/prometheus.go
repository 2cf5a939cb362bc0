package podmetrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// ErrQuery is wrapped when a query cannot be run or gives a result the
// caller cannot use (KEDA's rule: one element, or none meaning 0).
var ErrQuery = errors.New("podmetrics: query failed")

// Prometheus reads pods' custom metrics from a Prometheus server through
// the adapter rules, as prometheus-adapter serves them to the HPA
// controller, and runs KEDA prometheus trigger queries.
type Prometheus struct {
	api   promv1.API
	rules *Rules
	now   func() time.Time
}

// PrometheusConfig configures [NewPrometheus].
type PrometheusConfig struct {
	// Address is the server's base URL, such as http://127.0.0.1:9090.
	Address string
	// Client makes the requests. If nil, http.DefaultClient.
	Client *http.Client
	// Rules are the adapter rules; nil allows only Query.
	Rules *Rules
	// Now gives the evaluation time of queries. If nil, the server's
	// current time is used.
	Now func() time.Time
}

// NewPrometheus returns a source that queries the server at cfg.Address.
func NewPrometheus(cfg PrometheusConfig) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: cfg.Address, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("podmetrics: prometheus client for %q: %w", cfg.Address, err)
	}
	if cfg.Rules != nil {
		if err := cfg.Rules.Validate(); err != nil {
			return nil, err
		}
	}
	return &Prometheus{api: promv1.NewAPI(c), rules: cfg.Rules, now: cfg.Now}, nil
}

func (p *Prometheus) at() time.Time {
	if p.now == nil {
		return time.Time{}
	}
	return p.now()
}

// PodsMetric returns metric for each of the pods of namespace that has a
// value: the adapter rule's metricsQuery, rendered for these pods, run as
// an instant query and keyed by the rule's pod label.
func (p *Prometheus) PodsMetric(ctx context.Context, namespace string, pods []string, metric string) (map[string]float64, error) {
	if p.rules == nil {
		return nil, fmt.Errorf("%w %q: no adapter rules configured", ErrNoRule, metric)
	}
	if len(pods) == 0 {
		return map[string]float64{}, nil
	}
	rule, series, err := p.rules.Find(metric, nil)
	if errors.Is(err, ErrNoRule) {
		// Rules that select by labels alone need the server's series
		// names, which the adapter discovers the same way.
		names, derr := p.seriesNames(ctx)
		if derr != nil {
			return nil, derr
		}
		rule, series, err = p.rules.Find(metric, names)
	}
	if err != nil {
		return nil, err
	}
	q, err := rule.Render(series, namespace, pods)
	if err != nil {
		return nil, err
	}
	vec, err := p.vector(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(vec))
	for _, s := range vec {
		if pod := string(s.Metric[model.LabelName(rule.PodLabel())]); pod != "" {
			out[pod] = float64(s.Value)
		}
	}
	return out, nil
}

func (p *Prometheus) seriesNames(ctx context.Context) ([]string, error) {
	var matches []string
	for i := range p.rules.Rules {
		if p.rules.Rules[i].SeriesName() == "" {
			matches = append(matches, p.rules.Rules[i].SeriesQuery)
		}
	}
	if len(matches) == 0 {
		return nil, nil
	}
	end := time.Now()
	if p.now != nil {
		end = p.now()
	}
	sets, _, _, err := p.api.Series(ctx, matches, end.Add(-lookback), end)
	if err != nil {
		return nil, fmt.Errorf("%w: series %v: %w", ErrQuery, matches, err)
	}
	seen := map[string]bool{}
	var names []string
	for _, s := range sets {
		n := string(s[model.MetricNameLabel])
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names, nil
}

func (p *Prometheus) vector(ctx context.Context, q string) (model.Vector, error) {
	v, _, _, err := p.api.Query(ctx, q, p.at())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrQuery, q, err)
	}
	switch v := v.(type) {
	case model.Vector:
		return v, nil
	case *model.Scalar:
		return model.Vector{{Metric: model.Metric{}, Value: v.Value, Timestamp: v.Timestamp}}, nil
	}
	return nil, fmt.Errorf("%w: %s: result type %s is not a vector", ErrQuery, q, v.Type())
}

// Query runs a KEDA prometheus trigger's query and returns its value as
// KEDA's scaler does: 0 for an empty result, an error for more than one
// element or a value that is not finite.
func (p *Prometheus) Query(ctx context.Context, query string) (float64, error) {
	vec, err := p.vector(ctx, query)
	if err != nil {
		return 0, err
	}
	return single(query, vec2elements(vec))
}

func vec2elements(vec model.Vector) []Element {
	out := make([]Element, len(vec))
	for i, s := range vec {
		out[i].Value = float64(s.Value)
	}
	return out
}

func single(query string, els []Element) (float64, error) {
	switch len(els) {
	case 0:
		return 0, nil
	case 1:
		v := els[0].Value
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%w: %s: value %v is not a finite number", ErrQuery, query, v)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%w: %s returned %d elements, want one", ErrQuery, query, len(els))
}

// lookback is how far back an instant selector looks for a sample, as
// Prometheus' default --query.lookback-delta.
const lookback = 5 * time.Minute
