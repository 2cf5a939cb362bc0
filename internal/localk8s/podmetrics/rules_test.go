package podmetrics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// The deploy kit's rules are the ones shoal up serves HPAs with.
const deployRules = "../../../deploy/monitoring/prometheus-adapter.yaml"

func TestDeployRules(t *testing.T) {
	rules, err := podmetrics.LoadRules(deployRules)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		metric string
		pods   []string
		series string
		query  string
	}{
		{
			name: "request rate over several pods", metric: "http_requests_per_second", pods: []string{"gallery-a", "gallery-b"},
			series: "http_requests_total",
			query:  `sum(rate(http_requests_total{namespace="shoal",pod=~"gallery-a|gallery-b"}[1m])) by (pod)`,
		},
		{
			name: "one pod is an equality matcher", metric: "http_requests_per_second", pods: []string{"gallery-a"},
			series: "http_requests_total",
			query:  `sum(rate(http_requests_total{namespace="shoal",pod="gallery-a"}[1m])) by (pod)`,
		},
		{
			name: "in-flight gauge keeps its name", metric: "http_requests_in_flight", pods: []string{"thumbnailer-x", "thumbnailer-y"},
			series: "http_requests_in_flight",
			query:  `sum(avg_over_time(http_requests_in_flight{namespace="shoal",pod=~"thumbnailer-x|thumbnailer-y"}[1m])) by (pod)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule, series, err := rules.Find(tt.metric, nil)
			if err != nil {
				t.Fatal(err)
			}
			if series != tt.series {
				t.Errorf("series = %q, want %q", series, tt.series)
			}
			q, err := rule.Render(series, "shoal", tt.pods)
			if err != nil {
				t.Fatal(err)
			}
			if q != tt.query {
				t.Errorf("query =\n%s\nwant\n%s", q, tt.query)
			}
			if rule.PodLabel() != "pod" {
				t.Errorf("PodLabel = %q", rule.PodLabel())
			}
		})
	}
	if _, _, err := rules.Find("http_requests_total", nil); !errors.Is(err, podmetrics.ErrNoRule) {
		t.Errorf("Find(http_requests_total) = %v, want ErrNoRule (the rule renames it)", err)
	}
}

func TestFindDiscovered(t *testing.T) {
	rules, err := podmetrics.ParseRules([]byte(`
rules:
  - seriesQuery: '{__name__=~"^queue_.*",namespace!="",pod!=""}'
    seriesFilters:
      - isNot: _seconds$
    resources:
      template: <<.Resource>>
    name:
      matches: ^queue_(.*)$
      as: queue_${1}_depth
    metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
`))
	if err != nil {
		t.Fatal(err)
	}
	candidates := []string{"http_requests_total", "queue_wait_seconds", "queue_resize"}
	rule, series, err := rules.Find("queue_resize_depth", candidates)
	if err != nil {
		t.Fatal(err)
	}
	if series != "queue_resize" {
		t.Errorf("series = %q", series)
	}
	q, err := rule.Render(series, "default", []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `max(queue_resize{namespace="default",pod="p"}) by (pod)`; q != want {
		t.Errorf("query = %s, want %s", q, want)
	}
	if _, _, err := rules.Find("queue_wait_seconds_depth", candidates); !errors.Is(err, podmetrics.ErrNoRule) {
		t.Errorf("a filtered-out series was found: %v", err)
	}
}

func TestParseRulesErrors(t *testing.T) {
	const ok = `
rules:
  - seriesQuery: 'x_total{namespace!="",pod!=""}'
    resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
    name: {matches: ^(.*)_total$, as: "${1}_per_second"}
    metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)
`
	if _, err := podmetrics.ParseRules([]byte(ok)); err != nil {
		t.Fatalf("valid rules: %v", err)
	}
	tests := []struct {
		name, doc, want string
	}{
		{name: "unknown field", doc: strings.Replace(ok, "metricsQuery", "metricQuery", 1), want: "metricQuery"},
		{name: "no seriesQuery", doc: strings.Replace(ok, `seriesQuery: 'x_total{namespace!="",pod!=""}'`, `seriesQuery: ""`, 1), want: "rules[0].seriesQuery is required"},
		{name: "seriesQuery not a selector", doc: strings.Replace(ok, `'x_total{namespace!="",pod!=""}'`, `'rate(x_total[1m])'`, 1), want: "not a series selector"},
		{name: "no pod label", doc: strings.Replace(ok, "pod: {resource: pod}", "", 1), want: "pod resource"},
		{name: "bad name regexp", doc: strings.Replace(ok, "^(.*)_total$", "^(.*_total$", 1), want: "name.matches"},
		{name: "no metricsQuery", doc: strings.Replace(ok, "metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)", "metricsQuery: ''", 1), want: "metricsQuery is required"},
		{name: "bad template", doc: strings.Replace(ok, "<<.Series>>", "<<.Series", 1), want: "metricsQuery"},
		{name: "unknown template field", doc: strings.Replace(ok, "<<.Series>>", "<<.Metric>>", 1), want: "metricsQuery"},
		{name: "query that does not parse", doc: strings.Replace(ok, "sum(rate(", "sum(rate((", 1), want: "metricsQuery renders"},
		{name: "query that is not a vector", doc: strings.Replace(ok, "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)", "<<.Series>>{<<.LabelMatchers>>}[1m]", 1), want: "range vector, want an instant vector"},
		{name: "not YAML", doc: "rules: [", want: "invalid adapter rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := podmetrics.ParseRules([]byte(tt.doc))
			if !errors.Is(err, podmetrics.ErrInvalidRules) {
				t.Fatalf("ParseRules = %v, want ErrInvalidRules", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}
