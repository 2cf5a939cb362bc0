package podmetrics_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.prom")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := podmetrics.Parse(bytes.NewReader(data), epoch)
		if err != nil {
			return
		}
		// Whatever parses must give well-formed rates against itself.
		later := s
		later.Time = epoch.Add(time.Second)
		l := podmetrics.Rates(s, later)
		if l.RPS != 0 || l.ErrorRPS != 0 {
			t.Errorf("rates of an unchanged sample: %+v", l)
		}
		for i := 1; i < len(s.Duration.Buckets); i++ {
			if !(s.Duration.Buckets[i].UpperBound > s.Duration.Buckets[i-1].UpperBound) {
				t.Fatalf("buckets not sorted: %+v", s.Duration.Buckets)
			}
		}
	})
}

func FuzzParseRules(f *testing.F) {
	data, err := os.ReadFile(deployRules)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("rules: []"))
	f.Add([]byte(`rules: [{seriesQuery: 'x{pod!=""}', resources: {template: "<<.Resource>>"}, metricsQuery: "<<.Series>>{<<.LabelMatchers>>}"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := podmetrics.ParseRules(data)
		if err != nil {
			return
		}
		for i := range rules.Rules {
			ru := &rules.Rules[i]
			q, err := ru.Render("s_total", "ns", []string{"a", "b"})
			if err != nil {
				t.Fatalf("a validated rule does not render: %v", err)
			}
			if _, err := podmetrics.ParseQuery(q); err != nil {
				t.Fatalf("a validated rule renders %q: %v", q, err)
			}
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{
		`sum(rate(http_requests_total{namespace="shoal",pod=~"a|b"}[1m])) by (pod)`,
		`sum by (pod) (avg_over_time(x{a!~'b.*'}[30s]))`,
		"count without (code) (http_requests_total)",
		"x{a=`raw`}", "irate(y[5m])",
	} {
		f.Add(q)
	}
	series := []podmetrics.StoredSeries{{
		Labels: map[string]string{"__name__": "x", "a": "b", "pod": "a"},
		Points: counter(5, 15*time.Second, 0, 10),
	}}
	f.Fuzz(func(t *testing.T, text string) {
		q, err := podmetrics.ParseQuery(text)
		if err != nil {
			return
		}
		_ = q.Eval(series, epoch.Add(time.Minute))
	})
}
