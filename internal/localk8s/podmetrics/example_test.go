package podmetrics_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

func Example() {
	rules, err := podmetrics.ParseRules([]byte(`
rules:
  - seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
        pod: {resource: pod}
    name: {matches: ^(.*)_total$, as: "${1}_per_second"}
    metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	now := start
	direct, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: func() time.Time { return now }})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The caller scrapes each pod every 15s: 30 more requests each time.
	for i := range 5 {
		now = start.Add(time.Duration(i) * 15 * time.Second)
		text := fmt.Sprintf("http_requests_total{code=\"200\"} %d\n", 30*i)
		s, err := podmetrics.Parse(strings.NewReader(text), now)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := direct.Record("shop", "web-0", s); err != nil {
			fmt.Println(err)
			return
		}
	}
	perPod, err := direct.PodsMetric(context.Background(), "shop", []string{"web-0"}, "http_requests_per_second")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("web-0: %.1f requests/s\n", perPod["web-0"])
	// Output: web-0: 2.0 requests/s
}

// Queries run on Prometheus' own engine: histogram_quantile, binary
// operators and offsets work as on a Prometheus server.
func ExampleDirect_Eval() {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	now := start
	direct, err := podmetrics.NewDirect(podmetrics.DirectConfig{ScrapeInterval: 15 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Each 15s the pod serves 40 requests: 10 within 100ms, 30 within
	// 500ms.
	for i := range 5 {
		now = start.Add(time.Duration(i) * 15 * time.Second)
		text := fmt.Sprintf(`latency_seconds_bucket{le="0.1"} %d
latency_seconds_bucket{le="0.5"} %d
latency_seconds_bucket{le="+Inf"} %d
`, 10*i, 40*i, 40*i)
		s, err := podmetrics.Parse(strings.NewReader(text), now)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := direct.Record("shop", "web-0", s); err != nil {
			fmt.Println(err)
			return
		}
	}
	for _, q := range []string{
		`histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[1m])))`,
		`sum(rate(latency_seconds_bucket{le="+Inf"}[1m])) * 60`,
		`sum(latency_seconds_bucket{le="+Inf"} offset 30s)`,
	} {
		els, err := direct.Eval(context.Background(), q)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s = %.4g\n", q, els[0].Value)
	}
	// Output:
	// histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[1m]))) = 0.2333
	// sum(rate(latency_seconds_bucket{le="+Inf"}[1m])) * 60 = 160
	// sum(latency_seconds_bucket{le="+Inf"} offset 30s) = 80
}
