package podmetrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
	"github.com/shoal-dev/shoal/internal/testkit/promtest"
)

// The deploy kit's KEDA triggers, which shoal up runs as they are.
const kedaObjects = "../../../deploy/overlays/keda/scaledobjects.yaml"

// comparePod is one pod of the comparison's fixture.
type comparePod struct {
	name    string
	offset  time.Duration // of its scrapes within each 15s
	restart int           // scrape at which its counters start again from 0
	last    int           // last scrape before it goes; -1 for none
}

// latencyBounds are the buckets of the fixture's latency histogram.
var latencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// compareFixture records 40 scrapes 15s apart, from epoch, of four pods
// whose request counters, latency histogram and gauges move at random
// (seeded): gallery-1 restarts at its 16th scrape, a queue_depth series
// comes and goes, and thumbnailer-1 leaves at 7m10s. Each pod's scrapes
// fall at its own offset within the 15s, so no sample lies on the edge of
// a range the compared queries read: Prometheus 2's ranges include their
// left edge, Prometheus 3's do not.
func compareFixture(t *testing.T, now *time.Time) *podmetrics.Direct {
	t.Helper()
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{ScrapeInterval: 15 * time.Second, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	pods := []comparePod{
		{name: "gallery-0", offset: time.Second, last: -1},
		{name: "gallery-1", offset: 2500 * time.Millisecond, restart: 16, last: -1},
		{name: "thumbnailer-0", offset: 4 * time.Second, last: -1},
		{name: "thumbnailer-1", offset: 5500 * time.Millisecond, last: 27},
	}
	rng := rand.New(rand.NewPCG(15, 42))
	type state struct {
		ok, failed, count, sum float64
		buckets                []float64
	}
	states := make([]state, len(pods))
	for i := range 40 {
		for pi, p := range pods {
			at := epoch.Add(time.Duration(i)*15*time.Second + p.offset)
			if p.last >= 0 && i > p.last {
				if i == p.last+1 {
					*now = epoch.Add(7*time.Minute + 10*time.Second)
					d.Forget("shoal", p.name)
				}
				continue
			}
			st := &states[pi]
			if i == p.restart && i > 0 {
				*st = state{}
			}
			if st.buckets == nil {
				st.buckets = make([]float64, len(latencyBounds))
			}
			n := 20 + rng.IntN(40)
			st.ok += float64(n)
			st.failed += float64(rng.IntN(4))
			for range n {
				v := rng.ExpFloat64() * 0.08
				st.count++
				st.sum += v
				for bi, ub := range latencyBounds {
					if v <= ub {
						st.buckets[bi]++
					}
				}
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %g\nhttp_requests_total{code=\"500\"} %g\n", st.ok, st.failed)
			b.WriteString("# TYPE http_request_duration_seconds histogram\n")
			for bi, ub := range latencyBounds {
				fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"%g\"} %g\n", ub, st.buckets[bi])
			}
			fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"+Inf\"} %g\nhttp_request_duration_seconds_sum %g\nhttp_request_duration_seconds_count %g\n", st.count, st.sum, st.count)
			fmt.Fprintf(&b, "# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight %d\n", rng.IntN(9))
			if pi == 0 && i >= 10 && i < 25 {
				fmt.Fprintf(&b, "queue_depth{queue=\"thumbs\"} %d\n", rng.IntN(100))
			}
			record(t, d, p.name, at, b.String())
		}
	}
	return d
}

// remoteWrite pushes every sample d keeps, staleness markers included,
// into the Prometheus at base through its remote-write receiver.
func remoteWrite(t *testing.T, ctx context.Context, client *http.Client, base string, d *podmetrics.Direct) int {
	t.Helper()
	q, err := d.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	set := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var req prompb.WriteRequest
	samples := 0
	for set.Next() {
		s := set.At()
		var ts prompb.TimeSeries
		s.Labels().Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			tm, v := it.At()
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm, Value: v})
		}
		samples += len(ts.Samples)
		req.Timeseries = append(req.Timeseries, ts)
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, data)))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		t.Fatalf("remote write: %s: %s", resp.Status, msg.String())
	}
	return samples
}

// promQuery runs an instant query at at on the Prometheus at base and
// returns its result as elements keyed by their labels.
func promQuery(ctx context.Context, client *http.Client, base, query string, at time.Time) (map[string]float64, error) {
	u := base + "/api/v1/query?query=" + url.QueryEscape(query) + "&time=" + strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", body.Error)
	}
	out := map[string]float64{}
	switch body.Data.ResultType {
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(body.Data.Result, &pair); err != nil {
			return nil, err
		}
		v, err := strconv.ParseFloat(pair[1].(string), 64)
		out[labelKey(nil)] = v
		return out, err
	case "vector":
		var els []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &els); err != nil {
			return nil, err
		}
		for _, e := range els {
			v, err := strconv.ParseFloat(e.Value[1].(string), 64)
			if err != nil {
				return nil, err
			}
			out[labelKey(e.Metric)] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("result type %s", body.Data.ResultType)
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}

func sameValue(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return a == b
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// kedaQueries returns the queries of the deploy kit's KEDA triggers.
func kedaQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(kedaObjects)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s+query:\s*(.+?)\s*$`).FindAllStringSubmatch(string(data), -1) {
		out = append(out, strings.Trim(m[1], `'"`))
	}
	if len(out) == 0 {
		t.Fatalf("%s: no trigger queries found", kedaObjects)
	}
	return out
}

// TestSameAsPrometheus gives a real Prometheus the very samples Direct
// keeps, through its remote-write receiver, and checks that a table of
// queries, the deploy kit's adapter rules and KEDA triggers among them,
// gives the same numbers in both at the same instants.
func TestSameAsPrometheus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := promtest.Start(t, promtest.Options{Args: []string{"--web.enable-remote-write-receiver"}}).URL()
	var now time.Time
	d := compareFixture(t, &now)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	if n := remoteWrite(t, ctx, client, base, d); n < 1000 {
		t.Fatalf("pushed %d samples, want the fixture's thousands", n)
	}

	queries := []string{
		`rate(http_requests_total[1m])`,
		`irate(http_requests_total[1m])`,
		`increase(http_requests_total[5m])`,
		`sum by (pod) (rate(http_requests_total[2m]))`,
		`avg(http_requests_in_flight)`,
		`avg by (namespace) (http_requests_in_flight)`,
		`count(http_requests_in_flight)`,
		`sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))`,
		`sum by (pod) (rate(http_requests_total{code="500"}[1m])) / on (pod) sum by (pod) (rate(http_requests_total[1m]))`,
		`rate(http_requests_total[1m]) * 60 - 1`,
		`http_requests_in_flight > 3`,
		`http_requests_in_flight > bool 3`,
		`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))`,
		`histogram_quantile(0.5, sum by (pod, le) (rate(http_request_duration_seconds_bucket[2m])))`,
		`rate(http_request_duration_seconds_sum[1m]) / rate(http_request_duration_seconds_count[1m])`,
		`rate(http_requests_total[1m] offset 2m)`,
		`http_requests_in_flight offset 5m`,
		`avg_over_time(http_requests_in_flight[1m])`,
		`quantile_over_time(0.9, http_requests_in_flight[2m])`,
		`max_over_time(sum(http_requests_in_flight)[3m:30s])`,
		`deriv(http_requests_in_flight[2m])`,
		`queue_depth`,
		`last_over_time(queue_depth[5m])`,
		`topk(2, rate(http_requests_total{code="200"}[1m]))`,
		`absent(nothing_total)`,
		`scalar(sum(http_requests_in_flight)) * 2`,
		`resets(http_requests_total[5m])`,
	}
	rules, err := podmetrics.LoadRules(deployRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{"http_requests_per_second", "http_requests_in_flight"} {
		rule, series, err := rules.Find(metric, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, pods := range [][]string{{"gallery-0"}, {"gallery-0", "gallery-1", "thumbnailer-0", "thumbnailer-1"}} {
			q, err := rule.Render(series, "shoal", pods)
			if err != nil {
				t.Fatal(err)
			}
			queries = append(queries, q)
		}
	}
	queries = append(queries, kedaQueries(t)...)

	instants := []time.Time{
		epoch.Add(5*time.Minute + 37*time.Second),
		epoch.Add(7*time.Minute + 22*time.Second),
		epoch.Add(9*time.Minute + 52*time.Second),
	}
	for _, query := range queries {
		t.Run(query, func(t *testing.T) {
			elements := 0
			for _, at := range instants {
				want, err := promQuery(ctx, client, base, query, at)
				if err != nil {
					t.Fatalf("prometheus at %s: %v", at.Format(time.TimeOnly), err)
				}
				now = at
				els, err := d.Eval(ctx, query)
				if err != nil {
					t.Fatalf("at %s: %v", at.Format(time.TimeOnly), err)
				}
				got := map[string]float64{}
				for _, e := range els {
					got[labelKey(e.Labels)] = e.Value
				}
				elements += len(want)
				for k, w := range want {
					if g, ok := got[k]; !ok || !sameValue(g, w) {
						t.Errorf("at %s: %s: prometheus %v, shoal %v (present %v)", at.Format(time.TimeOnly), k, w, g, ok)
					}
				}
				for k, g := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("at %s: %s: shoal %v, absent from prometheus", at.Format(time.TimeOnly), k, g)
					}
				}
			}
			t.Logf("%d elements compared", elements)
			if elements == 0 {
				t.Error("empty at every instant in prometheus: the comparison shows nothing")
			}
		})
	}
}
