package podmetrics_test

import (
	"bytes"
	"context"
	"errors"
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
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{})
	if err != nil {
		f.Fatal(err)
	}
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
			if _, err := d.Eval(context.Background(), q); err != nil {
				t.Fatalf("a validated rule renders %q: %v", q, err)
			}
		}
	})
}

// FuzzQuery runs any text through the query path: it must give a result
// or an error of this package, never a panic.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{
		`sum(rate(http_requests_total{namespace="shoal",pod=~"a|b"}[1m])) by (pod)`,
		`sum by (pod) (avg_over_time(http_requests_in_flight{a!~'b.*'}[30s]))`,
		"count without (code) (http_requests_total)",
		"http_requests_total{a=`raw`}", "irate(y[5m])", "histogram_quantile(0.9, rate(latency_seconds_bucket[1m]))",
		"max_over_time(sum(http_requests_in_flight)[1m:15s] offset 10s) / 2", "sum(", `x{a=~"("}`,
	} {
		f.Add(q)
	}
	now := epoch.Add(time.Minute)
	d := evalFixture(f, &now)
	f.Fuzz(func(t *testing.T, text string) {
		// A short deadline: a query may ask for billions of subquery steps.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := d.Eval(ctx, text)
		if err != nil && !errors.Is(err, podmetrics.ErrInvalidQuery) && !errors.Is(err, podmetrics.ErrQuery) {
			t.Fatalf("Eval(%q) = %v, not an error of this package", text, err)
		}
	})
}
