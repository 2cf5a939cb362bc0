package podmetrics_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// benchPods and benchScrapes are the shape of the benchmarks' store:
// shoal up's 2s scrapes of ten pods over the 10m retention.
const (
	benchPods    = 10
	benchScrapes = 300
)

// benchPodNames are the pods the benchmarked adapter query asks about.
func benchPodNames() []string {
	var out []string
	for p := range benchPods {
		out = append(out, fmt.Sprintf("gallery-%d", p))
	}
	return out
}

// benchSamples returns each pod's scrapes: request counters over four
// codes and three routes, the in-flight gauge, and 40 other gauges, as a
// Go service exposes them.
func benchSamples(tb testing.TB) map[string][]podmetrics.Sample {
	tb.Helper()
	out := map[string][]podmetrics.Sample{}
	for _, pod := range benchPodNames() {
		for i := range benchScrapes {
			var b strings.Builder
			b.WriteString("# TYPE http_requests_total counter\n")
			for ci, code := range []string{"200", "404", "500", "503"} {
				for r, route := range []string{"/", "/img", "/api"} {
					fmt.Fprintf(&b, "http_requests_total{code=%q,method=\"GET\",route=%q} %d\n", code, route, i*(10*r+ci+1))
				}
			}
			fmt.Fprintf(&b, "http_requests_in_flight %d\n", i%7)
			for g := range 40 {
				fmt.Fprintf(&b, "go_gauge_%d %d\n", g, i+g)
			}
			s, err := podmetrics.Parse(strings.NewReader(b.String()), epoch.Add(time.Duration(i)*2*time.Second))
			if err != nil {
				tb.Fatal(err)
			}
			out[pod] = append(out[pod], s)
		}
	}
	return out
}

// BenchmarkPodsMetric is one evaluation of the deploy kit's request-rate
// adapter rule over ten pods on Prometheus' engine.
func BenchmarkPodsMetric(b *testing.B) {
	rules, err := podmetrics.LoadRules(deployRules)
	if err != nil {
		b.Fatal(err)
	}
	now := epoch.Add((benchScrapes - 1) * 2 * time.Second)
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	for pod, samples := range benchSamples(b) {
		for _, s := range samples {
			if err := d.Record("shoal", pod, s); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	pods := benchPodNames()
	b.ReportAllocs()
	for b.Loop() {
		got, err := d.PodsMetric(ctx, "shoal", pods, "http_requests_per_second")
		if err != nil || len(got) != benchPods {
			b.Fatalf("PodsMetric = %v, %v", got, err)
		}
	}
}
