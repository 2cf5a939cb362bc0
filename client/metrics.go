package client

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	shoalmetrics "github.com/shoal-dev/shoal/metrics"
)

// metrics are the client's collectors; nil without a Registerer. The
// children of every label value are made up front, so a request looks
// nothing up: they are indexed by [Result] and by retry reason.
type metrics struct {
	requests  [NumResults]prometheus.Counter
	duration  [NumResults]prometheus.Observer
	attempts  [NumResults]prometheus.Counter
	retries   [numReasons]prometheus.Counter
	exhausted prometheus.Counter
}

// numReasons is the number of retry reasons.
const numReasons = 5

// retryReasons returns the values of the retries' reason label.
func retryReasons() [numReasons]string {
	return [...]string{reasonDial, reasonShed, reasonError, reasonStatus, reasonPerTry}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_client_requests_total",
		Help: "Calls made, retries not counted, by the result of the last attempt's response headers.",
	}, []string{"result"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shoal_client_request_duration_seconds",
		Help:    "Time from a call's start until the response headers of its last attempt arrived or it failed, retries and backoff included, by result.",
		Buckets: shoalmetrics.DefaultBuckets,
	}, []string{"result"})
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_client_attempts_total",
		Help: "Attempts sent, first tries and retries, by the result of their response headers.",
	}, []string{"result"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_client_retries_total",
		Help: "Retries sent, by the reason the previous attempt could be retried.",
	}, []string{"reason"})
	m := &metrics{
		exhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_client_retry_budget_exhausted_total",
			Help: "Retries not sent because the retry budget was empty.",
		}),
	}
	for _, c := range []prometheus.Collector{requests, duration, attempts, retries, m.exhausted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("client: register metrics: %w", err)
		}
	}
	for r := range Result(NumResults) {
		m.requests[r] = requests.WithLabelValues(r.String())
		m.duration[r] = duration.WithLabelValues(r.String())
		m.attempts[r] = attempts.WithLabelValues(r.String())
	}
	for i, r := range retryReasons() {
		m.retries[i] = retries.WithLabelValues(r)
	}
	return m, nil
}

// request records one call: its result and how long it took.
func (m *metrics) request(r Result, d time.Duration) {
	if m != nil {
		m.requests[r].Inc()
		m.duration[r].Observe(d.Seconds())
	}
}

// attempt records one try.
func (m *metrics) attempt(r Result) {
	if m != nil {
		m.attempts[r].Inc()
	}
}

func (m *metrics) retry(reason string) {
	if m == nil {
		return
	}
	for i, r := range retryReasons() {
		if r == reason {
			m.retries[i].Inc()
			return
		}
	}
}

func (m *metrics) budgetExhausted() {
	if m != nil {
		m.exhausted.Inc()
	}
}
