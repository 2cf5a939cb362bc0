package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// nonZero gathers reg and returns its series with a non-zero value, as
// "name{label=value,...}": counters by value, histograms by their count
// (as name_count).
func nonZero(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
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

func TestCallMetrics(t *testing.T) {
	tests := []struct {
		name    string
		status  int   // the server's status for its first fails requests
		fails   int64 // -1: the server hangs until the request is cancelled
		refused bool
		cfg     Config
		// cancel, if set, ends the caller's context once the request
		// reached the server; deadline bounds the caller's context.
		cancel   bool
		deadline time.Duration
		want     map[string]float64
	}{
		{name: "retried once, then 2xx", status: 503, fails: 1, want: map[string]float64{
			"shoal_client_requests_total{result=2xx}":                 1,
			"shoal_client_request_duration_seconds_count{result=2xx}": 1,
			"shoal_client_attempts_total{result=5xx}":                 1,
			"shoal_client_attempts_total{result=2xx}":                 1,
			"shoal_client_retries_total{reason=status}":               1,
		}},
		{name: "4xx is not retried", status: 404, fails: 9, want: map[string]float64{
			"shoal_client_requests_total{result=4xx}":                 1,
			"shoal_client_request_duration_seconds_count{result=4xx}": 1,
			"shoal_client_attempts_total{result=4xx}":                 1,
		}},
		{name: "retry budget exhausted", status: 503, fails: 9,
			cfg: Config{Budget: BudgetConfig{Ratio: 1e-9, MinPerSecond: 1e-9}}, want: map[string]float64{
				"shoal_client_requests_total{result=5xx}":                 1,
				"shoal_client_request_duration_seconds_count{result=5xx}": 1,
				"shoal_client_attempts_total{result=5xx}":                 1,
				"shoal_client_retry_budget_exhausted_total{}":             1,
			}},
		{name: "per-try timeouts until attempts run out", fails: -1,
			cfg: Config{MaxAttempts: 2, PerTryTimeout: 50 * time.Millisecond}, want: map[string]float64{
				"shoal_client_requests_total{result=timeout}":                 1,
				"shoal_client_request_duration_seconds_count{result=timeout}": 1,
				"shoal_client_attempts_total{result=timeout}":                 2,
				"shoal_client_retries_total{reason=per_try_timeout}":          1,
			}},
		{name: "the caller's deadline", fails: -1, deadline: 50 * time.Millisecond, want: map[string]float64{
			"shoal_client_requests_total{result=timeout}":                 1,
			"shoal_client_request_duration_seconds_count{result=timeout}": 1,
			"shoal_client_attempts_total{result=timeout}":                 1,
		}},
		{name: "the caller cancels", fails: -1, cancel: true, want: map[string]float64{
			"shoal_client_requests_total{result=canceled}":                 1,
			"shoal_client_request_duration_seconds_count{result=canceled}": 1,
			"shoal_client_attempts_total{result=canceled}":                 1,
		}},
		{name: "refused, retried, refused", refused: true, cfg: Config{MaxAttempts: 2}, want: map[string]float64{
			"shoal_client_requests_total{result=error}":                 1,
			"shoal_client_request_duration_seconds_count{result=error}": 1,
			"shoal_client_attempts_total{result=error}":                 2,
			"shoal_client_retries_total{reason=dial_error}":             1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, 8)
			var srv http.Handler = &server{status: tt.status, fails: tt.fails}
			if tt.fails < 0 {
				srv = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					arrived <- struct{}{}
					<-r.Context().Done()
				})
			}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			url := ts.URL
			if tt.refused {
				url = "http://" + closedAddr(t)
			}
			tr := NewTransport(Config{})
			defer tr.CloseIdleConnections()
			reg := prometheus.NewPedanticRegistry()
			cfg := tt.cfg
			cfg.Transport, cfg.Registerer = tr, reg
			cfg.Sleep = (&sleeps{}).Sleep
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tt.deadline > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			if tt.cancel {
				go func() {
					select {
					case <-arrived:
					case <-ctx.Done():
					}
					cancel()
				}()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if resp, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			got := nonZero(t, reg)
			if !maps.Equal(got, tt.want) {
				t.Fatalf("series:\n%s\nwant:\n%s", show(got), show(tt.want))
			}
		})
	}
}

func show(m map[string]float64) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("  %s %v", k, v))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestResultOf(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel2 := context.WithTimeout(live, -1)
	defer cancel2()
	perTry, cancel3 := context.WithTimeoutCause(live, -1, ErrPerTryTimeout)
	defer cancel3()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name   string
		ctx    context.Context
		status int
		err    error
		want   string
	}{
		{name: "101", ctx: live, status: 101, want: "2xx"},
		{name: "200", ctx: live, status: 200, want: "2xx"},
		{name: "304", ctx: live, status: 304, want: "3xx"},
		{name: "429", ctx: live, status: 429, want: "4xx"},
		{name: "503", ctx: live, status: 503, want: "5xx"},
		{name: "nonstandard 799", ctx: live, status: 799, want: "5xx"},
		{name: "refused", ctx: live, err: refused, want: "error"},
		{name: "unexpected EOF", ctx: live, err: io.ErrUnexpectedEOF, want: "error"},
		{name: "transport timeout", ctx: live, err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, want: "timeout"},
		{name: "per-try timeout as the error's cause", ctx: live, err: fmt.Errorf("x: %w", ErrPerTryTimeout), want: "timeout"},
		{name: "per-try context", ctx: perTry, err: ErrPerTryTimeout, want: "timeout"},
		{name: "caller's deadline", ctx: expired, err: errors.New("any"), want: "timeout"},
		{name: "caller cancelled", ctx: canceled, err: errors.New("any"), want: "canceled"},
		{name: "cancelled below", ctx: live, err: fmt.Errorf("x: %w", context.Canceled), want: "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			if tt.err == nil {
				resp = &http.Response{StatusCode: tt.status}
			}
			if got := ResultOf(tt.ctx, resp, tt.err).String(); got != tt.want {
				t.Fatalf("ResultOf = %s, want %s", got, tt.want)
			}
		})
	}
	seen := map[string]bool{}
	for r := range Result(NumResults) {
		if seen[r.String()] {
			t.Fatalf("label %q twice", r)
		}
		seen[r.String()] = true
	}
}

// staticTransport answers every request with the same response and
// allocates nothing, so allocations measured over it are the retry
// transport's own.
type staticTransport struct{ resp *http.Response }

func (s staticTransport) RoundTrip(*http.Request) (*http.Response, error) { return s.resp, nil }

// Metrics must cost a call no allocation: every child is made up front.
func TestMetricsAllocateNothingPerCall(t *testing.T) {
	allocs := func(reg prometheus.Registerer) float64 {
		rt, err := NewRetryTransport(Config{
			Transport:  staticTransport{&http.Response{StatusCode: http.StatusOK, Body: http.NoBody}},
			Registerer: reg,
		})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://svc/x", nil)
		return testing.AllocsPerRun(1000, func() {
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
		})
	}
	off, on := allocs(nil), allocs(prometheus.NewRegistry())
	if on > off {
		t.Fatalf("%v allocations per call with metrics, %v without", on, off)
	}
}

// BenchmarkRoundTrip measures the retry transport's own work for a call
// that succeeds at once, with and without metrics.
func BenchmarkRoundTrip(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", withMetrics), func(b *testing.B) {
			var reg prometheus.Registerer
			if withMetrics {
				reg = prometheus.NewRegistry()
			}
			rt, err := NewRetryTransport(Config{
				Transport:  staticTransport{&http.Response{StatusCode: http.StatusOK, Body: http.NoBody}},
				Registerer: reg,
			})
			if err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, "http://svc/x", nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
