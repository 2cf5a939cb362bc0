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

// counter returns points every step from epoch, rising by perStep.
func counter(n int, step time.Duration, start, perStep float64) []podmetrics.Point {
	var pts []podmetrics.Point
	for i := range n {
		pts = append(pts, podmetrics.Point{T: epoch.Add(time.Duration(i) * step), V: start + perStep*float64(i)})
	}
	return pts
}

func TestEval(t *testing.T) {
	lbl := func(name, pod string, kv ...string) map[string]string {
		l := map[string]string{"__name__": name, "namespace": "shoal", "pod": pod}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	reset := counter(5, 15*time.Second, 0, 150)
	reset[3].V, reset[4].V = 30, 180 // restarted between 30s and 45s
	series := []podmetrics.StoredSeries{
		{Labels: lbl("http_requests_total", "a", "code", "200"), Points: counter(5, 15*time.Second, 0, 150)},
		{Labels: lbl("http_requests_total", "a", "code", "500"), Points: counter(5, 15*time.Second, 0, 15)},
		{Labels: lbl("http_requests_total", "b", "code", "200"), Points: reset},
		{Labels: lbl("http_requests_in_flight", "a"), Points: []podmetrics.Point{{T: epoch.Add(30 * time.Second), V: 2}, {T: epoch.Add(45 * time.Second), V: 4}, {T: epoch.Add(60 * time.Second), V: 6}}},
		{Labels: lbl("http_requests_in_flight", "b"), Points: []podmetrics.Point{{T: epoch.Add(60 * time.Second), V: 1}}},
		{Labels: lbl("http_requests_in_flight", "gone"), Points: []podmetrics.Point{{T: epoch.Add(45 * time.Second), V: 9}}, Stale: true},
		{Labels: lbl("old_gauge", "a"), Points: []podmetrics.Point{{T: epoch.Add(-10 * time.Minute), V: 1}}},
	}
	now := epoch.Add(time.Minute)
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
		{name: "increase", query: `sum(increase(http_requests_total{pod="a"}[1m]))`, want: "{} 660"},
		{name: "irate", query: `irate(http_requests_total{pod="a",code="200"}[1m])`, want: "{code=200,namespace=shoal,pod=a} 10"},
		{name: "avg_over_time", query: `sum(avg_over_time(http_requests_in_flight{namespace="shoal"}[1m])) by (pod)`,
			want: "{pod=a} 4; {pod=b} 1; {pod=gone} 9"},
		{name: "max_over_time and min_over_time", query: `max(max_over_time(http_requests_in_flight[1m])) + `, want: "error"},
		{name: "instant selector skips stale series", query: `sum(http_requests_in_flight)`, want: "{} 7"},
		{name: "instant selector ignores points beyond the lookback", query: `old_gauge`, want: ""},
		{name: "count without", query: `count without (code) (http_requests_total)`, want: "{namespace=shoal,pod=a} 2; {namespace=shoal,pod=b} 1"},
		{name: "by before the parentheses", query: `max by (pod) (http_requests_in_flight)`, want: "{pod=a} 6; {pod=b} 1"},
		{name: "negative regexp", query: `sum(http_requests_total{code!~"5.."})`, want: "{} 780"},
		{name: "no match is empty", query: `sum(rate(nothing_total[1m]))`, want: ""},
		{name: "range shorter than the sampling gives nothing", query: `rate(http_requests_total{pod="a",code="200"}[10s])`, want: ""},
		{name: "last, sum, count over time", query: `sum(last_over_time(http_requests_in_flight{pod="a"}[1m])) by (pod)`, want: "{pod=a} 6"},
		{name: "min over time", query: `min_over_time(http_requests_in_flight{pod="a"}[1m])`, want: "{namespace=shoal,pod=a} 2"},
		{name: "sum over time", query: `sum_over_time(http_requests_in_flight{pod="a"}[1m])`, want: "{namespace=shoal,pod=a} 12"},
		{name: "count over time", query: `count_over_time(http_requests_in_flight{pod="a"}[1m])`, want: "{namespace=shoal,pod=a} 3"},
		{name: "avg", query: `avg(http_requests_in_flight)`, want: "{} 3.5"},
		{name: "min", query: `min(http_requests_in_flight)`, want: "{} 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := podmetrics.ParseQuery(tt.query)
			if tt.want == "error" {
				if !errors.Is(err, podmetrics.ErrUnsupportedQuery) {
					t.Fatalf("ParseQuery = %v, want ErrUnsupportedQuery", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := render(q.Eval(series, now)); got != tt.want {
				t.Errorf("Eval = %q, want %q", got, tt.want)
			}
		})
	}
}

func render(els []podmetrics.Element) string {
	var parts []string
	for _, e := range els {
		var kv []string
		for _, k := range []string{"__name__", "code", "namespace", "pod"} {
			if v, ok := e.Labels[k]; ok {
				kv = append(kv, k+"="+v)
			}
		}
		parts = append(parts, fmt.Sprintf("{%s} %.4g", strings.Join(kv, ","), e.Value))
	}
	return strings.Join(parts, "; ")
}

func TestParseQueryErrors(t *testing.T) {
	for _, q := range []string{
		"", "sum(", "rate(x)", "x[1m]", "histogram_quantile(0.9, x)", "x + y", "x offset 5m",
		`x{a="b"`, `x{a=~"("}`, `x{a="unterminated}`, "sum by (a (x)", "rate(x[zz])", "{}",
		strings.Repeat("sum(", 40) + "x" + strings.Repeat(")", 40),
	} {
		t.Run(q, func(t *testing.T) {
			if _, err := podmetrics.ParseQuery(q); !errors.Is(err, podmetrics.ErrUnsupportedQuery) {
				t.Errorf("ParseQuery(%q) = %v, want ErrUnsupportedQuery", q, err)
			}
		})
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
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: func() time.Time { return now }, Retention: 2 * time.Minute})
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
			s, err := podmetrics.Parse(strings.NewReader(exposition(p.total, 0, float64(i%3))), at)
			if err != nil {
				t.Fatal(err)
			}
			d.Record("shoal", p.pod, s)
		}
		now = at
	}
	// A sample not newer than the latest is dropped.
	s, _ := podmetrics.Parse(strings.NewReader(exposition(1e9, 0, 0)), epoch)
	d.Record("shoal", "gallery-a", s)

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

	l, ok := d.Load("shoal", "gallery-a", 15*time.Second)
	if !ok || !near(l.RPS, 10, 1e-9) {
		t.Errorf("Load = %+v, %v; want 10 rps", l, ok)
	}
	d.Forget("shoal", "gallery-a")
	if _, ok := d.Load("shoal", "gallery-a", 15*time.Second); ok {
		t.Error("Load after Forget reports a load")
	}
	got, err = d.PodsMetric(ctx, "shoal", []string{"gallery-a", "gallery-b"}, "http_requests_per_second")
	if err != nil || len(got) != 1 {
		t.Errorf("PodsMetric after Forget = %v, %v; want gallery-b only", got, err)
	}
}
