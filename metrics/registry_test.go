package metrics

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRegistryBuildsGoCollectorOnFirstScrape checks that an idle registry
// holds no Go runtime collector, and that the first gathering builds it and
// serves the same families as before.
func TestRegistryBuildsGoCollectorOnFirstScrape(t *testing.T) {
	reg, goc := newRegistry()
	if goc.built() {
		t.Fatal("Go collector built before any scrape")
	}
	for _, tc := range []struct {
		name string
	}{
		{"first scrape"},
		{"second scrape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if !goc.built() {
				t.Fatal("Go collector not built by gathering")
			}
			var names []string
			for _, mf := range mfs {
				names = append(names, mf.GetName())
			}
			for _, want := range []string{"go_goroutines", "go_gc_duration_seconds", "go_memstats_heap_alloc_bytes", "go_info", "go_build_info", "process_resident_memory_bytes"} {
				if !slices.Contains(names, want) {
					t.Errorf("gathered families lack %s; have %q", want, names)
				}
			}
		})
	}
}

// TestRegistryReportsDuplicateGoSeries checks what the lazy collector gives
// up: a caller's series that the Go collector also exports is not refused by
// Register but reported by Gather, naming the series.
func TestRegistryReportsDuplicateGoSeries(t *testing.T) {
	tests := []struct {
		name    string
		metric  string
		wantErr bool
	}{
		{"own name", "app_goroutines", false},
		{"a go_* series the runtime collector exports", "go_goroutines", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := NewRegistry()
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: tc.metric, Help: "Number of goroutines that currently exist."})
			if err := reg.Register(g); err != nil {
				t.Fatalf("Register: %v", err)
			}
			_, err := reg.Gather()
			if tc.wantErr != (err != nil) {
				t.Fatalf("Gather error = %v, want one: %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.metric) {
				t.Errorf("Gather error %q does not name %s", err, tc.metric)
			}
		})
	}
}
