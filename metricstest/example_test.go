package metricstest_test

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/shoal-dev/shoal/metricstest"
)

func ExampleFamilies() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "jobs_total", Help: "Jobs."}))
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "queue_length", Help: "Queue."}))
	text, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "jobs_total", "queue_length")
	if err != nil {
		panic(err)
	}
	// In a test: text := metricstest.Scrape(t, adminURL+"/metrics") and
	// metricstest.Promtool(t, text).
	fmt.Println(metricstest.Families(text))
	// Output: [jobs_total queue_length]
}
