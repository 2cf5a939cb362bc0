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
