package podmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// record parses text as a scrape taken at and records it for pod.
func record(t testing.TB, d *podmetrics.Direct, pod string, at time.Time, text string) {
	t.Helper()
	s, err := podmetrics.Parse(strings.NewReader(text), at)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Record("shoal", pod, s); err != nil {
		t.Fatal(err)
	}
}

// evalFixture records pods scraped every 15s from epoch to epoch+60s:
// a serves 10/s of 200s and 1/s of 500s, with a latency histogram and an
// in-flight gauge from 30s; b's counter resets between 30s and 45s;
// gone reports a gauge at 45s only and is stale at 60s.
func evalFixture(t testing.TB, now *time.Time) *podmetrics.Direct {
	t.Helper()
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{Now: func() time.Time { return *now }, ScrapeInterval: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	record(t, d, "old", epoch.Add(-10*time.Minute), "old_gauge 1\n")
	bTotals := []int{0, 150, 300, 30, 180}
	for i := range 5 {
		at := epoch.Add(time.Duration(i) * 15 * time.Second)
		a := fmt.Sprintf(`# TYPE http_requests_total counter
http_requests_total{code="200"} %d
http_requests_total{code="500",pod="x"} %d
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} %d
latency_seconds_bucket{le="0.5"} %d
latency_seconds_bucket{le="+Inf"} %d
latency_seconds_sum %d
latency_seconds_count %d
`, 150*i, 15*i, 10*i, 30*i, 40*i, 8*i, 40*i)
		if i >= 2 {
			a += fmt.Sprintf("http_requests_in_flight %d\n", 2*(i-1))
		}
		record(t, d, "a", at, a)
		b := fmt.Sprintf("http_requests_total{code=\"200\"} %d\n", bTotals[i])
		if i == 4 {
			b += "http_requests_in_flight 1\n"
		}
		record(t, d, "b", at, b)
		switch i {
		case 3:
			record(t, d, "gone", at, "http_requests_in_flight 9\n")
		case 4:
			record(t, d, "gone", at, "")
		}
	}
	return d
}

func TestEval(t *testing.T) {
	now := epoch.Add(time.Minute)
	d := evalFixture(t, &now)
	tests := []struct {
		name  string
		query string
		want  string
	}{
		// 150 per 15s is 10/s: the window (0s, 60s] holds 15s..60s, and
		// extrapolation to the start stops where the counter was zero.
		{name: "rate by pod", query: `sum(rate(http_requests_total{namespace="shoal",pod=~"a|b"}[1m])) by (pod)`,
			want: "{pod=a} 11; {pod=b} 7.333"}, // b: 150 + 30 + 150 over 45s, extrapolated to 60s
		{name: "rate of one code", query: `rate(http_requests_total{code="200",pod="a"}[1m])`,
			want: "{code=200,namespace=shoal,pod=a} 10"},
		{name: "a scraped pod label is kept as exported_pod", query: `rate(http_requests_total{exported_pod="x"}[1m])`,
			want: "{code=500,exported_pod=x,namespace=shoal,pod=a} 1"},
		{name: "increase", query: `sum(increase(http_requests_total{pod="a"}[1m]))`, want: "{} 660"},
		{name: "irate", query: `irate(http_requests_total{pod="a",code="200"}[1m])`, want: "{code=200,namespace=shoal,pod=a} 10"},
		{name: "avg_over_time sees a stale series' samples", query: `sum(avg_over_time(http_requests_in_flight{namespace="shoal"}[1m])) by (pod)`,
			want: "{pod=a} 4; {pod=b} 1; {pod=gone} 9"},
		{name: "instant selector skips stale series", query: `sum(http_requests_in_flight)`, want: "{} 7"},
		{name: "instant selector ignores samples beyond the lookback", query: `old_gauge`, want: ""},
		{name: "count without", query: `count without (code, exported_pod) (http_requests_total)`, want: "{namespace=shoal,pod=a} 2; {namespace=shoal,pod=b} 1"},
		{name: "by before the parentheses", query: `max by (pod) (http_requests_in_flight)`, want: "{pod=a} 6; {pod=b} 1"},
		{name: "negative regexp", query: `sum(http_requests_total{code!~"5.."})`, want: "{} 780"},
		{name: "no match is empty", query: `sum(rate(nothing_total[1m]))`, want: ""},
		{name: "range shorter than the sampling gives nothing", query: `rate(http_requests_total{pod="a",code="200"}[10s])`, want: ""},
		{name: "min over time", query: `min_over_time(http_requests_in_flight{pod="a"}[1m])`, want: "{namespace=shoal,pod=a} 2"},
		{name: "avg", query: `avg(http_requests_in_flight)`, want: "{} 3.5"},
		// What the hand-written subset refused.
		{name: "binary operator with a scalar", query: `sum(rate(http_requests_total{pod="a"}[1m])) * 2`, want: "{} 22"},
		{name: "binary operator between vectors", query: `sum by (pod) (rate(http_requests_total{code="500"}[1m])) / sum by (pod) (rate(http_requests_total[1m]))`,
			want: "{pod=a} 0.09091"},
		{name: "histogram_quantile", query: `histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[1m])))`, want: "{} 0.3"},
		{name: "offset", query: `http_requests_in_flight{pod="a"} offset 30s`, want: "{__name__=http_requests_in_flight,namespace=shoal,pod=a} 2"},
		{name: "subquery", query: `max_over_time(sum(http_requests_in_flight)[1m:15s])`, want: "{} 13"},
		{name: "scalar", query: `scalar(sum(http_requests_in_flight)) + 1`, want: "{} 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			els, err := d.Eval(context.Background(), tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(els); got != tt.want {
				t.Errorf("Eval = %q, want %q", got, tt.want)
			}
		})
	}
}

func render(els []podmetrics.Element) string {
	var parts []string
	for _, e := range els {
		var kv []string
		for _, k := range []string{"__name__", "code", "exported_pod", "namespace", "pod"} {
			if v, ok := e.Labels[k]; ok {
				kv = append(kv, k+"="+v)
			}
		}
		parts = append(parts, fmt.Sprintf("{%s} %.4g", strings.Join(kv, ","), e.Value))
	}
	return strings.Join(parts, "; ")
}

func TestEvalErrors(t *testing.T) {
	now := epoch.Add(time.Minute)
	d := evalFixture(t, &now)
	tests := []struct {
		name, query string
		is          error
		want        string // in the message
	}{
		{name: "empty", query: "", is: podmetrics.ErrInvalidQuery, want: "no expression found"},
		{name: "unclosed", query: "sum(", is: podmetrics.ErrInvalidQuery, want: `"sum("`},
		{name: "rate of an instant vector", query: "rate(x)", is: podmetrics.ErrInvalidQuery, want: "range vector"},
		{name: "unknown function", query: "nope(x)", is: podmetrics.ErrInvalidQuery, want: "nope"},
		{name: "bad regexp", query: `x{a=~"("}`, is: podmetrics.ErrInvalidQuery, want: "missing closing )"},
		{name: "a range vector is no metric", query: "http_requests_total[1m]", is: podmetrics.ErrInvalidQuery, want: "range vector"},
		{name: "too long", query: strings.Repeat("x", 70<<10), is: podmetrics.ErrInvalidQuery, want: "longer than"},
		{name: "many-to-many matching", query: `http_requests_in_flight * on() http_requests_in_flight`, is: podmetrics.ErrQuery, want: "many-to-many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Eval(context.Background(), tt.query)
			if !errors.Is(err, tt.is) {
				t.Fatalf("Eval = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "podmetrics: ") {
				t.Errorf("error %q does not start with podmetrics: and mention %q", err, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Eval(ctx, "sum(http_requests_in_flight)"); !errors.Is(err, podmetrics.ErrQuery) || !errors.Is(err, context.Canceled) {
		t.Errorf("Eval with a cancelled context = %v, want ErrQuery wrapping context.Canceled", err)
	}
	// A query that outlasts QueryTimeout: a subquery at a 1ms step over
	// the 10m retention evaluates 600000 steps.
	slow, err := podmetrics.NewDirect(podmetrics.DirectConfig{QueryTimeout: time.Millisecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	record(t, slow, "a", now, "x 1\n")
	_, err = slow.Eval(context.Background(), "max_over_time(x[10m:1ms])")
	if !errors.Is(err, podmetrics.ErrQuery) || !strings.Contains(err.Error(), "longer than 1ms") {
		t.Errorf("a slow query = %v, want ErrQuery naming the 1ms timeout", err)
	}
}

// exposition renders a pod's request metrics at the given totals.
func exposition(ok, failed, inFlight float64) string {
	return fmt.Sprintf(`# TYPE http_requests_total counter
http_requests_total{code="200",method="GET",route="/"} %g
http_requests_total{code="500",method="GET",route="/"} %g
# TYPE http_requests_in_flight gauge
http_requests_in_flight %g
`, ok, failed, inFlight)
}

func TestDirect(t *testing.T) {
	rules, err := podmetrics.LoadRules(deployRules)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: func() time.Time { return now }, Retention: 2 * time.Minute, ScrapeInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Pod a serves 10/s, pod b 2/s, scraped every 5s for 3 minutes; pod b
	// restarts at 100s.
	for i := 0; i <= 36; i++ {
		at := epoch.Add(time.Duration(i) * 5 * time.Second)
		for _, p := range []struct {
			pod   string
			total float64
		}{{"gallery-a", 50 * float64(i)}, {"gallery-b", 10 * float64(i%20)}} {
			record(t, d, p.pod, at, exposition(p.total, 0, float64(i%3)))
		}
		now = at
	}
	// A sample not newer than the latest is dropped.
	record(t, d, "gallery-a", epoch, exposition(1e9, 0, 0))

	ctx := context.Background()
	got, err := d.PodsMetric(ctx, "shoal", []string{"gallery-a", "gallery-b", "gallery-c"}, "http_requests_per_second")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !near(got["gallery-a"], 10, 1e-9) || !near(got["gallery-b"], 2, 1e-9) {
		t.Errorf("PodsMetric = %v, want gallery-a 10 and gallery-b 2", got)
	}
	inflight, err := d.PodsMetric(ctx, "shoal", []string{"gallery-a"}, "http_requests_in_flight")
	if err != nil {
		t.Fatal(err)
	}
	// The 12 samples in (120s, 180s] cycle 1, 2, 0: average 1.
	if !near(inflight["gallery-a"], 1, 1e-9) {
		t.Errorf("in flight = %v, want 1", inflight)
	}
	if _, err := d.PodsMetric(ctx, "shoal", []string{"gallery-a"}, "nope"); !errors.Is(err, podmetrics.ErrNoRule) {
		t.Errorf("PodsMetric(nope) = %v, want ErrNoRule", err)
	}

	v, err := d.Query(ctx, `sum(rate(http_requests_total{namespace="shoal",pod=~"gallery-.*"}[1m]))`)
	if err != nil || !near(v, 12, 1e-9) {
		t.Errorf("Query = %g, %v; want 12", v, err)
	}
	if v, err := d.Query(ctx, `sum(rate(http_requests_total{namespace="other"}[1m]))`); err != nil || v != 0 {
		t.Errorf("empty Query = %g, %v; want 0", v, err)
	}
	if _, err := d.Query(ctx, `sum(rate(http_requests_total[1m])) by (pod)`); !errors.Is(err, podmetrics.ErrQuery) {
		t.Errorf("two-element Query = %v, want ErrQuery", err)
	}
	// The retention: nothing older than 2m is left to a query.
	if v, err := d.Query(ctx, `count_over_time(http_requests_in_flight{pod="gallery-a"}[10m])`); err != nil || v != 25 {
		t.Errorf("samples kept = %g, %v; want the 25 of the last 2m", v, err)
	}

	// A pod that goes is stale at once for instant selectors, and its
	// samples stay for range functions.
	now = now.Add(time.Second)
	d.Forget("shoal", "gallery-a")
	if v, err := d.Query(ctx, `count(http_requests_in_flight)`); err != nil || v != 1 {
		t.Errorf("series in flight after Forget = %g, %v; want gallery-b's only", v, err)
	}
	got, err = d.PodsMetric(ctx, "shoal", []string{"gallery-a", "gallery-b"}, "http_requests_per_second")
	if err != nil || len(got) != 2 {
		t.Errorf("PodsMetric after Forget = %v, %v; want both pods (rate reads the window)", got, err)
	}
}

func TestDirectDiscoveredSeries(t *testing.T) {
	rules, err := podmetrics.ParseRules([]byte(`
rules:
  - seriesQuery: '{__name__=~"^queue_.*",namespace!="",pod!=""}'
    resources:
      template: <<.Resource>>
    name:
      matches: ^queue_(.*)$
      as: queue_${1}_depth
    metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) * 2
`))
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	record(t, d, "p", epoch, "queue_resize 3\nqueue_resize{shard=\"2\"} 5\nother 1\n")
	got, err := d.PodsMetric(context.Background(), "shoal", []string{"p"}, "queue_resize_depth")
	if err != nil || got["p"] != 10 {
		t.Errorf("PodsMetric = %v, %v; want p 10", got, err)
	}
}
