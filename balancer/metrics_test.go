package balancer

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoal-dev/shoal/client"
)

// nonZero gathers reg and returns the series of the metrics named with a
// non-zero value, as "name{label=value,...}": counters by value,
// histograms by their count (as name_count).
func nonZero(t *testing.T, reg prometheus.Gatherer, names ...string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			name, v := mf.GetName(), 0.0
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				name += "_count"
				v = float64(m.GetHistogram().GetSampleCount())
			}
			if v != 0 {
				out[name+"{"+strings.Join(labels, ",")+"}"] = v
			}
		}
	}
	return out
}

func show(m map[string]float64) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("  %s %v", k, v))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// A call whose first attempt gets a 503 and whose retry, on the other
// endpoint, a 200 shows in the client's metrics as one 2xx call of two
// attempts and in the balancer's as one request per endpoint, each with
// its result; an endpoint that leaves takes its series with it.
func TestCallAndEndpointMetrics(t *testing.T) {
	var n atomic.Int64
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Served-By", name)
			if n.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
	}
	addrs := map[string]string{"a": serve(t, "127.0.0.2", handler("a")), "b": serve(t, "127.0.0.3", handler("b"))}
	r, err := NewStatic(addrs["a"], addrs["b"])
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	ccfg := client.Config{MaxAttempts: 2, Registerer: reg}
	b, c := retrying(t, Config{Resolver: r, Registerer: reg}, ccfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, by, err := status(ctx, c, "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%d, %v; want a 200 after one retry", code, err)
	}
	failed := addrs["a"]
	if by == "a" {
		failed = addrs["b"]
	}
	served := addrs[by]
	want := map[string]float64{
		"shoal_client_requests_total{result=2xx}":                                           1,
		"shoal_client_request_duration_seconds_count{result=2xx}":                           1,
		"shoal_client_attempts_total{result=5xx}":                                           1,
		"shoal_client_attempts_total{result=2xx}":                                           1,
		"shoal_client_retries_total{reason=status}":                                         1,
		"shoal_balancer_requests_total{endpoint=" + failed + "}":                            1,
		"shoal_balancer_requests_total{endpoint=" + served + "}":                            1,
		"shoal_balancer_errors_total{endpoint=" + failed + "}":                              1,
		"shoal_balancer_request_duration_seconds_count{endpoint=" + failed + ",result=5xx}": 1,
		"shoal_balancer_request_duration_seconds_count{endpoint=" + served + ",result=2xx}": 1,
	}
	names := []string{
		"shoal_client_requests_total", "shoal_client_request_duration_seconds", "shoal_client_attempts_total",
		"shoal_client_retries_total", "shoal_client_retry_budget_exhausted_total",
		"shoal_balancer_requests_total", "shoal_balancer_errors_total", "shoal_balancer_request_duration_seconds",
	}
	if got := nonZero(t, reg, names...); !maps.Equal(got, want) {
		t.Fatalf("series:\n%s\nwant:\n%s", show(got), show(want))
	}

	// The failed endpoint leaves the set: its series go, the other's stay.
	if err := r.Update(served); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the endpoint removed", func() bool { return len(b.Endpoints()) == 1 })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == failed {
					t.Errorf("%s still has a series for the removed endpoint", mf.GetName())
				}
				if mf.GetName() == "shoal_balancer_request_duration_seconds" && l.GetValue() == served {
					left++
				}
			}
		}
	}
	if left != client.NumResults {
		t.Errorf("the remaining endpoint has %d duration series, want one per result (%d)", left, client.NumResults)
	}
}

// reusedBody is a response body the test transport rewinds for every
// request, so it allocates nothing itself.
type reusedBody struct{ strings.Reader }

func (*reusedBody) Close() error { return nil }

// bodyTransport answers every request with the same response, whose body
// it rewinds; allocations measured over it are the balancer's own.
type bodyTransport struct {
	resp *http.Response
	body *reusedBody
}

func (t *bodyTransport) RoundTrip(*http.Request) (*http.Response, error) {
	t.body.Reset("hello")
	t.resp.Body = t.body
	return t.resp, nil
}

// maxRoundTripAllocs is what a balanced request with a body allocates of
// its own: the request and URL copies sent to the endpoint, and the
// tracked body. Metrics add nothing: every child is made when the
// endpoint appears.
const maxRoundTripAllocs = 3

func TestRoundTripAllocations(t *testing.T) {
	allocs := func(reg prometheus.Registerer) float64 {
		r, err := NewStatic("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
		if err != nil {
			t.Fatal(err)
		}
		body := &reusedBody{}
		lb, err := New(Config{Resolver: r, Registerer: reg, Logger: slog.New(slog.DiscardHandler),
			Transport: &bodyTransport{resp: &http.Response{StatusCode: http.StatusOK}, body: body}})
		if err != nil {
			t.Fatal(err)
		}
		defer lb.Close()
		req := keyRequest("user-1")
		buf := make([]byte, 16)
		return testing.AllocsPerRun(1000, func() {
			resp, err := lb.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
		})
	}
	off, on := allocs(nil), allocs(prometheus.NewRegistry())
	t.Logf("%v allocations per request with metrics, %v without", on, off)
	if on > off || on > maxRoundTripAllocs {
		t.Fatalf("%v allocations per request with metrics, %v without; want at most %d", on, off, maxRoundTripAllocs)
	}
}
