package shed_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-dev/shoal/shed"
)

func TestUtilization(t *testing.T) {
	tests := []struct {
		name    string
		cfg     shed.Config
		acquire int // slots taken
		// dropAfter, if set, releases one slot with ErrDropped once a
		// window has passed, so the limit backs off below the work
		// still admitted.
		dropAfter bool
		want      float64
	}{
		{name: "idle", cfg: shed.Config{InitialLimit: 8}, want: 0},
		{name: "quarter", cfg: shed.Config{InitialLimit: 8}, acquire: 2, want: 0.25},
		{name: "at the limit", cfg: shed.Config{InitialLimit: 8}, acquire: 8, want: 1},
		{name: "refused beyond the limit", cfg: shed.Config{InitialLimit: 8}, acquire: 12, want: 1},
		{name: "limit of one", cfg: shed.Config{InitialLimit: 1, MaxLimit: 1}, acquire: 1, want: 1},
		{
			// Limit 10 backs off to 5 while 9 are still admitted.
			name: "above 1 after a back-off", cfg: shed.Config{InitialLimit: 10, Backoff: 0.5},
			acquire: 10, dropAfter: true, want: 9.0 / 5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tt.cfg.Now = c.Now
			tt.cfg.Name = "api"
			reg := prometheus.NewRegistry()
			l := newLimiter(t, tt.cfg, reg)
			var releases []func(error)
			for range tt.acquire {
				if r, ok := l.Acquire(); ok {
					releases = append(releases, r)
				}
			}
			if tt.dropAfter {
				c.Advance(time.Second)
				releases[0](shed.ErrDropped)
			}
			if got := l.Utilization(); got != tt.want {
				t.Errorf("Utilization() = %v, want %v (in flight %d, limit %d)", got, tt.want, l.InFlight(), l.Limit())
			}
			want := fmt.Sprintf(`
# HELP shed_utilization_ratio Requests admitted over the current concurrency limit; 1 is at the limit.
# TYPE shed_utilization_ratio gauge
shed_utilization_ratio{limiter="api"} %v
`, tt.want)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shed_utilization_ratio"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestUtilizationOverTime checks the integrals whose rates are the work in
// flight and the utilisation averaged over a range, across admissions,
// releases and a change of the limit.
func TestUtilizationOverTime(t *testing.T) {
	type step struct {
		acquire, release int
		drop             bool // release one with ErrDropped: the limit backs off
		advance          time.Duration
	}
	tests := []struct {
		name           string
		cfg            shed.Config
		steps          []step
		inFlight, util float64
	}{
		{name: "idle", cfg: shed.Config{InitialLimit: 4}, steps: []step{{advance: 2 * time.Second}}, inFlight: 0, util: 0},
		{
			name: "two then one", cfg: shed.Config{InitialLimit: 4},
			steps:    []step{{acquire: 2, advance: time.Second}, {release: 1, advance: time.Second}},
			inFlight: 3, util: 0.75,
		},
		{
			name: "refusals add nothing", cfg: shed.Config{InitialLimit: 2},
			steps:    []step{{acquire: 5, advance: 3 * time.Second}},
			inFlight: 6, util: 3,
		},
		{
			// 10 in flight for 1s at limit 10, then 9 for 1s at limit 5.
			name: "back-off", cfg: shed.Config{InitialLimit: 10, Backoff: 0.5},
			steps:    []step{{acquire: 10, advance: time.Second}, {drop: true, advance: time.Second}},
			inFlight: 19, util: 1 + 9.0/5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			tt.cfg.Now = c.Now
			reg := prometheus.NewRegistry()
			l := newLimiter(t, tt.cfg, reg)
			var releases []func(error)
			for _, s := range tt.steps {
				for range s.acquire {
					if r, ok := l.Acquire(); ok {
						releases = append(releases, r)
					}
				}
				for range s.release {
					releases[0](nil)
					releases = releases[1:]
				}
				if s.drop {
					releases[0](shed.ErrDropped)
					releases = releases[1:]
				}
				c.Advance(s.advance)
			}
			want := fmt.Sprintf(`
# HELP shed_in_flight_seconds_total Requests admitted by the limiter, integrated over time.
# TYPE shed_in_flight_seconds_total counter
shed_in_flight_seconds_total %v
# HELP shed_utilization_seconds_total Requests admitted over the concurrency limit, integrated over time: its rate is the average utilization.
# TYPE shed_utilization_seconds_total counter
shed_utilization_seconds_total %v
`, tt.inFlight, tt.util)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shed_in_flight_seconds_total", "shed_utilization_seconds_total"); err != nil {
				t.Error(err)
			}
		})
	}
}
