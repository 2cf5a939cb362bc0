package podmetrics

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// ErrInvalidRules is wrapped by the errors of [ParseRules] and
// [Rules.Validate].
var ErrInvalidRules = errors.New("podmetrics: invalid adapter rules")

// ErrNoRule is wrapped when no rule serves a requested metric.
var ErrNoRule = errors.New("podmetrics: no adapter rule for metric")

// Rules is prometheus-adapter's configuration (its --config file): how
// Prometheus series become custom metrics of pods.
type Rules struct {
	Rules []Rule `json:"rules"`
	// ExternalRules and ResourceRules are accepted so a complete adapter
	// configuration parses; they are not used.
	ExternalRules []Rule         `json:"externalRules,omitempty"`
	ResourceRules map[string]any `json:"resourceRules,omitempty"`
}

// Rule is one discovery rule of the adapter.
type Rule struct {
	// SeriesQuery selects the series the rule applies to, for example
	// http_requests_total{namespace!="",pod!=""}.
	SeriesQuery string `json:"seriesQuery"`
	// SeriesFilters narrow the series by name further.
	SeriesFilters []SeriesFilter `json:"seriesFilters,omitempty"`
	// Resources says which labels name the namespace and the pod.
	Resources Resources `json:"resources"`
	// Name turns a series name into the metric name.
	Name NameMapping `json:"name"`
	// MetricsQuery is the query template, with <<.Series>>,
	// <<.LabelMatchers>> and <<.GroupBy>>.
	MetricsQuery string `json:"metricsQuery"`

	matchers []*labels.Matcher
	filters  []seriesFilter
	matches  *regexp.Regexp
	as       string
	tmpl     *template.Template
	labels   map[string]string // resource (namespace, pod) -> label
}

// SeriesFilter keeps series whose name matches Is and drops those that
// match IsNot.
type SeriesFilter struct {
	Is    string `json:"is,omitempty"`
	IsNot string `json:"isNot,omitempty"`
}

type seriesFilter struct {
	re  *regexp.Regexp
	not bool
}

// Resources maps labels to Kubernetes resources.
type Resources struct {
	Overrides map[string]GroupResource `json:"overrides,omitempty"`
	// Template such as "<<.Resource>>" names the label of a resource.
	Template string `json:"template,omitempty"`
}

// GroupResource names a Kubernetes resource.
type GroupResource struct {
	Group    string `json:"group,omitempty"`
	Resource string `json:"resource"`
}

// NameMapping renames series: Matches is a regexp, As its replacement
// (default $1 with one capture group, else $0).
type NameMapping struct {
	Matches string `json:"matches,omitempty"`
	As      string `json:"as,omitempty"`
}

// ParseRules reads an adapter configuration; unknown fields are errors.
func ParseRules(data []byte) (*Rules, error) {
	var r Rules
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRules, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// LoadRules reads and parses the adapter configuration file at path.
func LoadRules(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("podmetrics: read adapter rules: %w", err)
	}
	r, err := ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Validate compiles every rule and reports the first that is wrong,
// naming it by index and field.
func (r *Rules) Validate() error {
	for i := range r.Rules {
		if err := r.Rules[i].compile(); err != nil {
			return fmt.Errorf("%w: rules[%d].%w", ErrInvalidRules, i, err)
		}
	}
	return nil
}

func (ru *Rule) compile() error {
	if ru.SeriesQuery == "" {
		return errors.New("seriesQuery is required")
	}
	p := parser.NewParser(parser.Options{})
	ms, err := p.ParseMetricSelector(ru.SeriesQuery)
	if err != nil {
		return fmt.Errorf("seriesQuery %q is not a series selector: %w", ru.SeriesQuery, err)
	}
	ru.matchers = ms
	ru.filters = nil
	for j, f := range ru.SeriesFilters {
		if (f.Is == "") == (f.IsNot == "") {
			return fmt.Errorf("seriesFilters[%d] needs exactly one of is and isNot", j)
		}
		expr, not := f.Is, false
		if f.IsNot != "" {
			expr, not = f.IsNot, true
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("seriesFilters[%d]: %w", j, err)
		}
		ru.filters = append(ru.filters, seriesFilter{re: re, not: not})
	}
	ru.labels = map[string]string{}
	for label, gr := range ru.Resources.Overrides {
		if !model.LegacyValidation.IsValidLabelName(label) {
			return fmt.Errorf("resources.overrides: %q is not a label name", label)
		}
		res := strings.TrimSuffix(strings.ToLower(gr.Resource), "s")
		if res == "" {
			return fmt.Errorf("resources.overrides.%s.resource is required", label)
		}
		ru.labels[res] = label
	}
	if ru.Resources.Template != "" {
		t, err := template.New("resource").Delims("<<", ">>").Parse(ru.Resources.Template)
		if err != nil {
			return fmt.Errorf("resources.template: %w", err)
		}
		for _, res := range []string{"namespace", "pod"} {
			if _, ok := ru.labels[res]; ok {
				continue
			}
			var b bytes.Buffer
			if err := t.Execute(&b, struct{ Group, Resource string }{"", res}); err != nil {
				return fmt.Errorf("resources.template: %w", err)
			}
			ru.labels[res] = b.String()
		}
	}
	if ru.labels["pod"] == "" {
		return errors.New("resources: no label maps to the pod resource")
	}
	matches := ru.Name.Matches
	ru.matches, err = regexp.Compile(matches)
	if err != nil {
		return fmt.Errorf("name.matches: %w", err)
	}
	ru.as = ru.Name.As
	if ru.as == "" {
		switch ru.matches.NumSubexp() {
		case 0:
			ru.as = "$0"
		case 1:
			ru.as = "$1"
		default:
			return errors.New("name.as is required when name.matches has several capture groups")
		}
	}
	if ru.MetricsQuery == "" {
		return errors.New("metricsQuery is required")
	}
	ru.tmpl, err = template.New("metricsQuery").Delims("<<", ">>").Option("missingkey=error").Parse(ru.MetricsQuery)
	if err != nil {
		return fmt.Errorf("metricsQuery: %w", err)
	}
	// Render once with sample arguments so a template that cannot run, or
	// renders what is not an instant vector, fails here.
	q, err := ru.Render("series_total", "ns", []string{"a", "b"})
	if err != nil {
		return err
	}
	expr, err := p.ParseExpr(q)
	if err != nil {
		return fmt.Errorf("metricsQuery renders %q: %w", q, err)
	}
	if expr.Type() != parser.ValueTypeVector {
		return fmt.Errorf("metricsQuery renders %q, a %s, want an instant vector", q, parser.DocumentedType(expr.Type()))
	}
	return nil
}

// MetricName returns the metric name the rule gives series, and whether
// the rule selects it (its name matching seriesQuery's name matchers, the
// filters and name.matches).
func (ru *Rule) MetricName(series string) (string, bool) {
	if ru.matches == nil {
		return "", false
	}
	for _, m := range ru.matchers {
		if m.Name == model.MetricNameLabel && !m.Matches(series) {
			return "", false
		}
	}
	for _, f := range ru.filters {
		if f.re.MatchString(series) == f.not {
			return "", false
		}
	}
	idx := ru.matches.FindStringSubmatchIndex(series)
	if idx == nil {
		return "", false
	}
	return string(ru.matches.ExpandString(nil, ru.as, series, idx)), true
}

// SeriesName returns the metric name of the rule's seriesQuery, or ""
// when it selects by other labels only.
func (ru *Rule) SeriesName() string {
	for _, m := range ru.matchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// PodLabel returns the label that holds the pod name.
func (ru *Rule) PodLabel() string { return ru.labels["pod"] }

// templateArgs are the arguments prometheus-adapter gives the
// metricsQuery template.
type templateArgs struct {
	Series            string
	LabelMatchers     string
	LabelValuesByName map[string]string
	GroupBy           string
	GroupBySlice      []string
}

// Render fills the rule's metricsQuery for series over the pods of a
// namespace as prometheus-adapter does: LabelMatchers is
// namespace="NS",pod="NAME" for one pod and pod=~"A|B" for several,
// GroupBy is the pod label.
func (ru *Rule) Render(series, namespace string, pods []string) (string, error) {
	if ru.tmpl == nil {
		return "", fmt.Errorf("%w: rule for %q is not compiled (call Validate)", ErrInvalidRules, ru.SeriesQuery)
	}
	var exprs []string
	byName := map[string]string{}
	if namespace != "" {
		nsLabel := ru.labels["namespace"]
		if nsLabel == "" {
			return "", fmt.Errorf("%w: rule for %q maps no label to namespaces", ErrInvalidRules, ru.SeriesQuery)
		}
		exprs = append(exprs, fmt.Sprintf("%s=%q", nsLabel, namespace))
		byName[nsLabel] = namespace
	}
	podLabel := ru.labels["pod"]
	op := "="
	if len(pods) > 1 {
		op = "=~"
	}
	value := strings.Join(pods, "|")
	exprs = append(exprs, fmt.Sprintf("%s%s%q", podLabel, op, value))
	byName[podLabel] = value
	var b bytes.Buffer
	err := ru.tmpl.Execute(&b, templateArgs{
		Series:            series,
		LabelMatchers:     strings.Join(exprs, ","),
		LabelValuesByName: byName,
		GroupBy:           podLabel,
		GroupBySlice:      []string{podLabel},
	})
	if err != nil {
		return "", fmt.Errorf("%w: metricsQuery: %w", ErrInvalidRules, err)
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("%w: metricsQuery renders empty", ErrInvalidRules)
	}
	return b.String(), nil
}

// Find returns the rule that serves metric and the series it reads,
// trying the series names in candidates (the names the metrics source
// knows) and, for a rule whose seriesQuery names its series, that name.
// The first rule in file order wins, as in the adapter.
func (r *Rules) Find(metric string, candidates []string) (*Rule, string, error) {
	for i := range r.Rules {
		ru := &r.Rules[i]
		names := candidates
		if n := ru.SeriesName(); n != "" {
			names = []string{n}
		}
		for _, series := range names {
			if got, ok := ru.MetricName(series); ok && got == metric {
				return ru, series, nil
			}
		}
	}
	return nil, "", fmt.Errorf("%w %q", ErrNoRule, metric)
}
