package kubelet

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestProbeWorkerFirstProbeAt(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	probe := &corev1.Probe{PeriodSeconds: 10, InitialDelaySeconds: 2}
	tests := []struct {
		name       string
		kind       probeKind
		startup    bool          // the container has a startup probe
		procStart  time.Duration // after the container's first start
		wantAfterE time.Duration // the first probe, after the first start
	}{
		{name: "first process waits the initial delay", kind: livenessProbe, procStart: 0, wantAfterE: 2 * time.Second},
		{name: "restarted process waits for the next tick", kind: livenessProbe, procStart: 13 * time.Second, wantAfterE: 20 * time.Second},
		{name: "restart on a tick after the delay", kind: livenessProbe, procStart: 18 * time.Second, wantAfterE: 20 * time.Second},
		{name: "restarted startup probe waits for the next tick", kind: startupProbe, startup: true, procStart: 31 * time.Second, wantAfterE: 40 * time.Second},
		{name: "restarted readiness probe waits for the next tick", kind: readinessProbe, procStart: 31 * time.Second, wantAfterE: 40 * time.Second},
		{name: "readiness behind a startup probe is triggered", kind: readinessProbe, startup: true, procStart: 31 * time.Second, wantAfterE: 33 * time.Second},
		{name: "liveness behind a startup probe still ticks", kind: livenessProbe, startup: true, procStart: 31 * time.Second, wantAfterE: 40 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &container{spec: &corev1.Container{Name: "app"}, probeEpoch: epoch}
			if tt.startup {
				c.spec.StartupProbe = probe
			}
			w := c.newProbeWorker(tt.kind, probe, &process{started: epoch.Add(tt.procStart)}, make(chan struct{}))
			if got := w.firstProbeAt(); !got.Equal(epoch.Add(tt.wantAfterE)) {
				t.Errorf("firstProbeAt() = +%v, want +%v", got.Sub(epoch), tt.wantAfterE)
			}
		})
	}
}

func TestNewProbeWorkerThresholds(t *testing.T) {
	tests := []struct {
		name                        string
		kind                        probeKind
		probe                       corev1.Probe
		wantPeriod, wantTimeout     time.Duration
		wantSuccesses, wantFailures int
	}{
		{name: "defaults", kind: readinessProbe, wantPeriod: 10 * time.Second, wantTimeout: time.Second, wantSuccesses: 1, wantFailures: 3},
		{name: "set", kind: readinessProbe, probe: corev1.Probe{PeriodSeconds: 2, TimeoutSeconds: 3, SuccessThreshold: 4, FailureThreshold: 5},
			wantPeriod: 2 * time.Second, wantTimeout: 3 * time.Second, wantSuccesses: 4, wantFailures: 5},
		{name: "liveness needs one success", kind: livenessProbe, probe: corev1.Probe{SuccessThreshold: 4, FailureThreshold: 1},
			wantPeriod: 10 * time.Second, wantTimeout: time.Second, wantSuccesses: 1, wantFailures: 1},
		{name: "startup needs one success", kind: startupProbe, probe: corev1.Probe{SuccessThreshold: 4},
			wantPeriod: 10 * time.Second, wantTimeout: time.Second, wantSuccesses: 1, wantFailures: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &container{spec: &corev1.Container{Name: "app"}}
			w := c.newProbeWorker(tt.kind, &tt.probe, &process{}, make(chan struct{}))
			if w.period != tt.wantPeriod || w.timeout != tt.wantTimeout || w.successes != tt.wantSuccesses || w.failures != tt.wantFailures {
				t.Errorf("period %v, timeout %v, thresholds %d/%d; want %v, %v, %d/%d",
					w.period, w.timeout, w.successes, w.failures, tt.wantPeriod, tt.wantTimeout, tt.wantSuccesses, tt.wantFailures)
			}
		})
	}
}

func TestResultRun(t *testing.T) {
	fail := errors.New("probe failed")
	tests := []struct {
		name    string
		results []error
		want    []int
	}{
		{name: "first success", results: []error{nil}, want: []int{1}},
		{name: "first failure", results: []error{fail}, want: []int{1}},
		{name: "successes", results: []error{nil, nil, nil}, want: []int{1, 2, 3}},
		{name: "failures", results: []error{fail, fail, fail}, want: []int{1, 2, 3}},
		{name: "alternating", results: []error{nil, fail, nil, fail}, want: []int{1, 1, 1, 1}},
		{name: "failures after successes", results: []error{nil, nil, fail, fail, nil}, want: []int{1, 2, 1, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r resultRun
			for i, err := range tt.results {
				if got := r.add(err); got != tt.want[i] {
					t.Errorf("result %d: run %d, want %d", i, got, tt.want[i])
				}
			}
		})
	}
}
