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
