package podmetrics_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
	"github.com/shoal-dev/shoal/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func parseFile(t *testing.T, name string, at time.Time) podmetrics.Sample {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := podmetrics.Parse(f, at)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return s
}

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		requests map[string]float64
		count    float64
		sum      float64
		buckets  int
		inFlight float64
		series   map[string]float64 // name -> sum over its series
	}{
		{
			name: "requests, histogram over two routes, gauges", file: "t0.prom",
			requests: map[string]float64{"200": 150, "503": 2},
			count:    152, sum: 13.3, buckets: 4, inFlight: 3,
			series: map[string]float64{"process_cpu_seconds_total": 1.5, "queue_depth": 7, "http_request_duration_seconds_count": 152, "http_requests_in_flight": 3},
		},
		{
			name: "histogram without a bucket for an upper bound", file: "restarted.prom",
			requests: map[string]float64{"200": 40}, count: 40, sum: 1.2, buckets: 3,
			series: map[string]float64{"http_requests_total": 40},
		},
		{name: "no metrics", file: "empty.prom", requests: map[string]float64{}, series: map[string]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parseFile(t, tt.file, epoch)
			if !s.Time.Equal(epoch) {
				t.Errorf("Time = %v", s.Time)
			}
			if len(s.Requests) != len(tt.requests) {
				t.Errorf("Requests = %v, want %v", s.Requests, tt.requests)
			}
			for code, v := range tt.requests {
				if s.Requests[code] != v {
					t.Errorf("Requests[%s] = %g, want %g", code, s.Requests[code], v)
				}
			}
			if s.Duration.Count != tt.count || !near(s.Duration.Sum, tt.sum, 1e-9) || len(s.Duration.Buckets) != tt.buckets {
				t.Errorf("Duration = %+v, want count %g sum %g and %d buckets", s.Duration, tt.count, tt.sum, tt.buckets)
			}
			if n := len(s.Duration.Buckets); n > 0 && (!math.IsInf(s.Duration.Buckets[n-1].UpperBound, 1) || s.Duration.Buckets[n-1].Count != tt.count) {
				t.Errorf("last bucket = %+v, want +Inf holding the count", s.Duration.Buckets[n-1])
			}
			if s.InFlight != tt.inFlight {
				t.Errorf("InFlight = %g, want %g", s.InFlight, tt.inFlight)
			}
			got := map[string]float64{}
			for _, se := range s.Series {
				got[se.Name] += se.Value
			}
			for name, v := range tt.series {
				if !near(got[name], v, 1e-9) {
					t.Errorf("series %s = %g, want %g", name, got[name], v)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, file := range []string{"bad_value.prom", "bad_labels.prom", "duplicate_type.prom"} {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := podmetrics.Parse(f, epoch); !errors.Is(err, podmetrics.ErrScrape) {
				t.Fatalf("Parse = %v, want ErrScrape", err)
			}
		})
	}
}

func TestRates(t *testing.T) {
	t0 := parseFile(t, "t0.prom", epoch)
	t1 := parseFile(t, "t1.prom", epoch.Add(10*time.Second))
	restarted := parseFile(t, "restarted.prom", epoch.Add(20*time.Second))
	tests := []struct {
		name      string
		prev, cur podmetrics.Sample
		want      podmetrics.Load
	}{
		{
			// 300 more 200s and 10 more 503s in 10s; the 500s appear only
			// in the later scrape and, as in Prometheus, do not count.
			name: "steady", prev: t0, cur: t1,
			want: podmetrics.Load{RPS: 31, ErrorRPS: 1, MeanLatency: 31.6 / 315, P50: 0.00875, P99: 0.1 + 0.9*91.85/95, InFlight: 5},
		},
		{
			// The process restarted: counters start again from zero.
			name: "counter reset", prev: t1, cur: restarted,
			want: podmetrics.Load{RPS: 4, MeanLatency: 0.03, P50: 0.04, P99: 0.01 + 0.09*29.6/30},
		},
		{name: "same time", prev: t0, cur: t0, want: podmetrics.Load{InFlight: 3}},
		{name: "no requests between", prev: t1, cur: withTime(t1, epoch.Add(20*time.Second)), want: podmetrics.Load{InFlight: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podmetrics.Rates(tt.prev, tt.cur)
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"RPS", got.RPS, tt.want.RPS}, {"ErrorRPS", got.ErrorRPS, tt.want.ErrorRPS},
				{"MeanLatency", got.MeanLatency, tt.want.MeanLatency}, {"P50", got.P50, tt.want.P50},
				{"P99", got.P99, tt.want.P99}, {"InFlight", got.InFlight, tt.want.InFlight},
			} {
				if !near(f.got, f.want, 1e-9) {
					t.Errorf("%s = %g, want %g", f.name, f.got, f.want)
				}
			}
		})
	}
}

func withTime(s podmetrics.Sample, at time.Time) podmetrics.Sample {
	s.Time = at
	return s
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	b := func(pairs ...float64) []podmetrics.Bucket {
		var out []podmetrics.Bucket
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, podmetrics.Bucket{UpperBound: pairs[i], Count: pairs[i+1]})
		}
		return out
	}
	tests := []struct {
		name    string
		q       float64
		buckets []podmetrics.Bucket
		want    float64
	}{
		{name: "median in the first bucket starts at zero", q: 0.5, buckets: b(1, 10, 2, 20, inf, 20), want: 1},
		{name: "interpolated inside a bucket", q: 0.75, buckets: b(1, 10, 2, 20, inf, 20), want: 1.5},
		{name: "rank in +Inf gives the last finite bound", q: 0.99, buckets: b(1, 10, 2, 20, inf, 40), want: 2},
		{name: "negative first bound", q: 0.1, buckets: b(-1, 5, 1, 10, inf, 10), want: -1},
		{name: "unsorted input", q: 0.75, buckets: b(inf, 20, 2, 20, 1, 10), want: 1.5},
		{name: "non-monotonic counts repaired", q: 0.5, buckets: b(1, 10, 2, 8, inf, 20), want: 1},
		{name: "q above 1", q: 1.5, buckets: b(1, 10, inf, 10), want: inf},
		{name: "q below 0", q: -1, buckets: b(1, 10, inf, 10), want: math.Inf(-1)},
		{name: "no observations", q: 0.5, buckets: b(1, 0, inf, 0), want: math.NaN()},
		{name: "no +Inf bucket", q: 0.5, buckets: b(1, 10, 2, 20), want: math.NaN()},
		{name: "one bucket", q: 0.5, buckets: b(inf, 20), want: math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podmetrics.Quantile(tt.q, tt.buckets)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && got != tt.want) {
				t.Errorf("Quantile(%g) = %g, want %g", tt.q, got, tt.want)
			}
		})
	}
}

func TestCPURate(t *testing.T) {
	s := func(sec int, cpu time.Duration) podmetrics.CPUSample {
		return podmetrics.CPUSample{Time: epoch.Add(time.Duration(sec) * time.Second), CPU: cpu}
	}
	tests := []struct {
		name      string
		prev, cur podmetrics.CPUSample
		want      float64
	}{
		{name: "half a core", prev: s(0, 10*time.Second), cur: s(15, 17500*time.Millisecond), want: 0.5},
		{name: "two cores", prev: s(0, 0), cur: s(10, 20*time.Second), want: 2},
		{name: "idle", prev: s(0, time.Second), cur: s(15, time.Second), want: 0},
		{name: "restart counts the new process's time", prev: s(0, 30*time.Second), cur: s(10, 3*time.Second), want: 0.3},
		{name: "same time", prev: s(5, 0), cur: s(5, time.Second), want: 0},
		{name: "out of order", prev: s(10, 0), cur: s(5, time.Second), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := podmetrics.CPURate(tt.prev, tt.cur); !near(got, tt.want, 1e-9) {
				t.Errorf("CPURate = %g, want %g", got, tt.want)
			}
		})
	}
}

// podServer is a loopback server instrumented with package metrics, as
// the Shoal services are, serving its app and /metrics.
type podServer struct {
	*httptest.Server
	metricsURL string
}

func newPodServer(t *testing.T) *podServer {
	t.Helper()
	reg := metrics.NewRegistry()
	m, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	root := http.NewServeMux()
	root.Handle("/metrics", metrics.Handler(reg))
	root.Handle("/", m.Middleware(metrics.Route(mux)))
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)
	return &podServer{Server: srv, metricsURL: srv.URL + "/metrics"}
}

func (p *podServer) hit(t *testing.T, path string, n int) {
	t.Helper()
	for range n {
		resp, err := p.Client().Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

func TestScrape(t *testing.T) {
	pod := newPodServer(t)
	pod.hit(t, "/ok", 7)
	pod.hit(t, "/fail", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := podmetrics.Scrape(ctx, pod.Client(), pod.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests["200"] != 7 || s.Requests["503"] != 2 {
		t.Errorf("Requests = %v, want 7 200s and 2 503s", s.Requests)
	}
	if s.Duration.Count != 9 {
		t.Errorf("Duration.Count = %g, want 9", s.Duration.Count)
	}
	found := false
	for _, se := range s.Series {
		if se.Name == "go_goroutines" {
			found = true
		}
	}
	if !found {
		t.Error("go_goroutines missing from Series")
	}

	_, err = podmetrics.Scrape(ctx, pod.Client(), pod.URL+"/missing")
	if !errors.Is(err, podmetrics.ErrScrape) {
		t.Errorf("Scrape of a 404 = %v, want ErrScrape", err)
	}
	pod.Close()
	if _, err = podmetrics.Scrape(ctx, pod.Client(), pod.metricsURL); !errors.Is(err, podmetrics.ErrScrape) {
		t.Errorf("Scrape of a closed server = %v, want ErrScrape", err)
	}
}
