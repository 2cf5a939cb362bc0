package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh registry holding the Go runtime collector
// (go_*), the process collector (process_*, on platforms that support it) and
// the build information collector (go_info with path, version and checksum of
// the main module).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

// maxScrapesInFlight bounds concurrent scrapes: gathering walks every
// collector, and a scraper stuck in a retry loop must not pile them up.
const maxScrapesInFlight = 4

// Handler serves the metrics of g in the Prometheus text exposition format
// (OpenMetrics is not offered). A collector that fails is logged with
// [log/slog] and left out while the others are still served, so one broken
// collector does not blind the whole scrape. At most four scrapes run at
// once; further ones get 503.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slogLogger{},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
	})
}

// slogLogger adapts promhttp's Println-style logger to log/slog.
type slogLogger struct{}

func (slogLogger) Println(v ...any) {
	slog.Warn("metrics: gathering failed", "detail", slogDetail(v))
}

func slogDetail(v []any) any {
	if len(v) == 1 {
		return v[0]
	}
	return v
}
