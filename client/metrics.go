package client

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's collectors; nil without a Registerer.
type metrics struct {
	retries   *prometheus.CounterVec
	exhausted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_client_retries_total",
			Help: "Retries sent, by the reason the previous attempt could be retried.",
		}, []string{"reason"}),
		exhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_client_retry_budget_exhausted_total",
			Help: "Retries not sent because the retry budget was empty.",
		}),
	}
	for _, c := range []prometheus.Collector{m.retries, m.exhausted} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("client: register metrics: %w", err)
		}
	}
	for _, r := range []string{reasonDial, reasonShed, reasonError, reasonStatus, reasonPerTry} {
		m.retries.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) retry(reason string) {
	if m != nil {
		m.retries.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) budgetExhausted() {
	if m != nil {
		m.exhausted.Inc()
	}
}
