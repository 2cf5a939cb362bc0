//go:build e2e

package e2e

import (
	"testing"
	"time"
)

func TestMeanLevel(t *testing.T) {
	s := time.Second
	steps := []loadStep{{At: 0, Value: 10}, {At: 10 * s, Value: 20}, {At: 20 * s, Value: 40}}
	tests := []struct {
		name     string
		from, to time.Duration
		want     float64
	}{
		{"before the first step: its value", -30 * s, -10 * s, 10},
		{"within one step", 12 * s, 18 * s, 20},
		{"across two steps, weighted by time", 5 * s, 15 * s, 15},
		{"across three", -10 * s, 30 * s, (20*10 + 10*20 + 10*40) / 40.0},
		{"after the last step", 25 * s, 35 * s, 40},
		{"an empty window", 5 * s, 5 * s, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := meanLevel(steps, tt.from, tt.to); got != tt.want {
				t.Errorf("meanLevel(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
			}
		})
	}
}

// TestTwinCPUGain: the gain is the median over the windows in which every
// serving pod was measured, steady or not.
func TestTwinCPUGain(t *testing.T) {
	s := time.Second
	d := func(v time.Duration) *time.Duration { return &v }
	// A ramp from 10 to 40 over 30 s after a warm-up at 10.
	ramp := []loadStep{{At: 0, Value: 10}, {At: 10 * s, Value: 20}, {At: 20 * s, Value: 30}, {At: 30 * s, Value: 40}}
	one := []twinPod{{Name: "a", Created: -50 * s, Ready: d(-45 * s)}}
	sample := func(pod string, at time.Duration, v float64) cpuSample {
		return cpuSample{Pod: pod, Measured: at, Window: 15 * s, Seen: at + s, Value: v}
	}
	tests := []struct {
		name string
		rec  twinRecord
		want float64
	}{
		{
			name: "no window: 1",
			rec:  twinRecord{Steps: ramp, Pods: one},
			want: 1,
		},
		{
			// Over [0, 15] the ramp averages 13.3, over [15, 30] 26.7:
			// a steady-only gain would have the warm-up's alone.
			name: "rising windows count",
			rec: twinRecord{Steps: ramp, Pods: one, Started: -45 * s, CPU: []cpuSample{
				sample("a", -15*s, 10*1.1),    // the warm-up: steady
				sample("a", 15*s, 40.0/3*1.2), // rising
				sample("a", 30*s, 80.0/3*1.2), // rising
			}},
			want: 1.2,
		},
		{
			name: "a window begun less than 10 s into the warm-up is left out",
			rec: twinRecord{Steps: ramp, Pods: one, Started: -45 * s, CPU: []cpuSample{
				sample("a", -30*s, 10*5), // from -45 s
				sample("a", -15*s, 10*1.1),
			}},
			want: 1.1,
		},
		{
			name: "a window before the driver had a pod is left out",
			rec: twinRecord{Steps: ramp, Pods: one, Started: -5 * s, CPU: []cpuSample{
				sample("a", -15*s, 10*5),
				sample("a", 15*s, 40.0/3*1.2),
			}},
			want: 1.2,
		},
		{
			// b served from 5 s and was not measured at 15 s: a's
			// reading there is only part of the load.
			name: "a window with a serving pod unmeasured is left out",
			rec: twinRecord{Steps: ramp, Started: -45 * s,
				Pods: append(one[:1:1], twinPod{Name: "b", Created: 2 * s, Ready: d(5 * s)}),
				CPU: []cpuSample{
					sample("a", 15*s, 40.0/3*0.6),
					sample("a", 30*s, 80.0/3*0.6), sample("b", 30*s, 80.0/3*0.6),
				}},
			want: 1.2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.cpuGain(); got != tt.want {
				t.Errorf("cpuGain = %v, want %v", got, tt.want)
			}
		})
	}
}
