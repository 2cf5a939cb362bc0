package balancer

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/client"
	shoalmetrics "github.com/shoal-dev/shoal/metrics"
)

// metrics are the balancer's collectors; all nil without a Registerer.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	ejections *prometheus.CounterVec
	backoffs  *prometheus.CounterVec
	unhealthy *prometheus.GaugeVec
	inFlight  *prometheus.GaugeVec
	policy    *prometheus.GaugeVec
}

// endpointMetrics are one endpoint's children, looked up once so the
// request path does no map lookups; duration has one per result.
type endpointMetrics struct {
	requests  prometheus.Counter
	duration  [client.NumResults]prometheus.Observer
	errors    prometheus.Counter
	ejections prometheus.Counter
	backoffs  prometheus.Counter
	unhealthy prometheus.Gauge
	inFlight  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, policy string) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_balancer_requests_total",
			Help: "Requests sent to an endpoint.",
		}, []string{"endpoint"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_balancer_request_duration_seconds",
			Help:    "Time from sending a request to an endpoint until its response headers arrived or it failed, by result.",
			Buckets: shoalmetrics.DefaultBuckets,
		}, []string{"endpoint", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_balancer_errors_total",
			Help: "Requests to an endpoint that failed: a connection error, a timeout, a 5xx status, or a response body that broke or stalled before its end.",
		}, []string{"endpoint"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_balancer_ejections_total",
			Help: "Times an endpoint was ejected by outlier detection.",
		}, []string{"endpoint"}),
		backoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_balancer_backoffs_total",
			Help: "Times an endpoint answered 503 with Retry-After and was backed off for that long.",
		}, []string{"endpoint"}),
		unhealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_balancer_unhealthy",
			Help: "1 while an endpoint fails active health checks, else 0.",
		}, []string{"endpoint"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_balancer_in_flight_requests",
			Help: "Requests to an endpoint whose responses are not yet closed.",
		}, []string{"endpoint"}),
		policy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_balancer_policy_info",
			Help: "The balancing policy in use (always 1).",
		}, []string{"policy"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.errors, m.ejections, m.backoffs, m.unhealthy, m.inFlight, m.policy} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("balancer: register metrics (wrap the registerer with a label per balancer): %w", err)
			}
			return nil, fmt.Errorf("balancer: register metrics: %w", err)
		}
	}
	m.policy.WithLabelValues(policy).Set(1)
	return m, nil
}

func (m *metrics) forEndpoint(addr string) endpointMetrics {
	if m == nil {
		return endpointMetrics{}
	}
	em := endpointMetrics{
		requests:  m.requests.WithLabelValues(addr),
		errors:    m.errors.WithLabelValues(addr),
		ejections: m.ejections.WithLabelValues(addr),
		backoffs:  m.backoffs.WithLabelValues(addr),
		unhealthy: m.unhealthy.WithLabelValues(addr),
		inFlight:  m.inFlight.WithLabelValues(addr),
	}
	for r := range client.Result(client.NumResults) {
		em.duration[r] = m.duration.WithLabelValues(addr, r.String())
	}
	return em
}

// forget drops a removed endpoint's series so pod churn does not grow
// the exposition without bound.
func (m *metrics) forget(addr string) {
	if m == nil {
		return
	}
	m.requests.DeleteLabelValues(addr)
	for r := range client.Result(client.NumResults) {
		m.duration.DeleteLabelValues(addr, r.String())
	}
	m.errors.DeleteLabelValues(addr)
	m.ejections.DeleteLabelValues(addr)
	m.backoffs.DeleteLabelValues(addr)
	m.unhealthy.DeleteLabelValues(addr)
	m.inFlight.DeleteLabelValues(addr)
}

func (m *endpointMetrics) request() {
	if m.requests != nil {
		m.requests.Inc()
		m.inFlight.Inc()
	}
}

// answered records how long a request took to its response headers, or
// to failing.
func (m *endpointMetrics) answered(r client.Result, d time.Duration) {
	if m.requests != nil {
		m.duration[r].Observe(d.Seconds())
	}
}

func (m *endpointMetrics) done(failed bool) {
	if m.requests != nil {
		m.inFlight.Dec()
		if failed {
			m.errors.Inc()
		}
	}
}

func (m *endpointMetrics) ejected() {
	if m.ejections != nil {
		m.ejections.Inc()
	}
}

func (m *endpointMetrics) backedOff() {
	if m.backoffs != nil {
		m.backoffs.Inc()
	}
}

func (m *endpointMetrics) health(ok bool) {
	if m.unhealthy != nil {
		v := 1.0
		if ok {
			v = 0
		}
		m.unhealthy.Set(v)
	}
}
