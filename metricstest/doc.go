// Package metricstest checks metrics in tests: it reads single series out of
// a Prometheus gatherer, scrapes a live /metrics endpoint, and lints an
// exposition with Prometheus' own promtool.
package metricstest
