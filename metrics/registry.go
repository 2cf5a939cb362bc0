package metrics

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a fresh registry holding the Go runtime collector
// (go_*), the process collector (process_*, on platforms that support it) and
// the build information collector (go_info with path, version and checksum of
// the main module).
//
// The Go runtime collector is built on the first scrape, not here: building
// it reads the description of every runtime/metrics metric and makes a
// descriptor for each, memory and code an idle replica that nobody scrapes
// would hold for nothing. Until then it describes nothing, so the registry
// does not check its series at registration: a collector of the caller's that
// also exports a go_* series it exports is reported when gathering (a
// duplicate), not by Register.
func NewRegistry() *prometheus.Registry {
	reg, _ := newRegistry()
	return reg
}

// newRegistry is NewRegistry, also returning the lazy Go collector so tests
// can see whether it was built.
func newRegistry() (*prometheus.Registry, *lazyCollector) {
	goc := &lazyCollector{build: func() prometheus.Collector { return collectors.NewGoCollector() }}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		goc,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg, goc
}

// lazyCollector is the collector build returns, built on its first Collect.
// It is an unchecked collector (its Describe sends nothing).
type lazyCollector struct {
	build func() prometheus.Collector
	once  sync.Once
	c     prometheus.Collector
	done  atomic.Bool // c is built
}

var _ prometheus.Collector = (*lazyCollector)(nil)

// Describe sends nothing, which makes the collector unchecked: describing
// would mean building.
func (*lazyCollector) Describe(chan<- *prometheus.Desc) {}

// Collect builds the collector once and collects it.
func (l *lazyCollector) Collect(ch chan<- prometheus.Metric) {
	l.once.Do(func() {
		l.c = l.build()
		l.done.Store(true)
	})
	l.c.Collect(ch)
}

// built reports whether Collect has built the collector.
func (l *lazyCollector) built() bool { return l.done.Load() }

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
