package kubelet

import (
	"testing"
	"time"
)

func TestNextTick(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		period time.Duration
		at     time.Duration // after epoch
		want   time.Duration
	}{
		{"at the epoch", 5 * time.Second, 0, 0},
		{"before the epoch", 5 * time.Second, -time.Second, -time.Second},
		{"just after", 5 * time.Second, time.Millisecond, 5 * time.Second},
		{"on a tick", 5 * time.Second, 10 * time.Second, 10 * time.Second},
		{"between ticks", 2 * time.Second, 7 * time.Second, 8 * time.Second},
		{"no period", 0, 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nextTick(epoch, tt.period, epoch.Add(tt.at))
			if want := epoch.Add(tt.want); !got.Equal(want) {
				t.Errorf("nextTick(+%v, %v) = +%v, want +%v", tt.at, tt.period, got.Sub(epoch), tt.want)
			}
		})
	}
}
