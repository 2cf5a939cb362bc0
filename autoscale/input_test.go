package autoscale

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{name: "zero is the upstream defaults", in: Config{}, want: Config{
			Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute, InitialReadinessDelay: 30 * time.Second,
			DownscaleStabilizationWindow: 5 * time.Minute, MetricWindow: 30 * time.Second}},
		{name: "set fields are kept", in: Config{
			Tolerance: 0.05, CPUInitializationPeriod: time.Minute, InitialReadinessDelay: time.Second,
			DownscaleStabilizationWindow: 10 * time.Second, MetricWindow: 15 * time.Second}, want: Config{
			Tolerance: 0.05, CPUInitializationPeriod: time.Minute, InitialReadinessDelay: time.Second,
			DownscaleStabilizationWindow: 10 * time.Second, MetricWindow: 15 * time.Second}},
		{name: "gates are kept", in: Config{FeatureGates: map[string]bool{GateScaleToZero: false}}, want: Config{
			Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute, InitialReadinessDelay: 30 * time.Second,
			DownscaleStabilizationWindow: 5 * time.Minute, MetricWindow: 30 * time.Second, FeatureGates: map[string]bool{GateScaleToZero: false}}},
		{name: "one field set", in: Config{DownscaleStabilizationWindow: time.Minute}, want: Config{
			Tolerance: 0.1, CPUInitializationPeriod: 5 * time.Minute, InitialReadinessDelay: 30 * time.Second,
			DownscaleStabilizationWindow: time.Minute, MetricWindow: 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{name: "zero", cfg: Config{}},
		{name: "set", cfg: Config{Tolerance: 0.2, CPUInitializationPeriod: time.Minute, MetricWindow: time.Minute}},
		{name: "negative tolerance", cfg: Config{Tolerance: -0.1}, want: "tolerance"},
		{name: "NaN tolerance", cfg: Config{Tolerance: math.NaN()}, want: "tolerance"},
		{name: "negative cpuInitializationPeriod", cfg: Config{CPUInitializationPeriod: -time.Second}, want: "cpuInitializationPeriod"},
		{name: "negative initialReadinessDelay", cfg: Config{InitialReadinessDelay: -time.Second}, want: "initialReadinessDelay"},
		{name: "negative downscaleStabilizationWindow", cfg: Config{DownscaleStabilizationWindow: -time.Second}, want: "downscaleStabilizationWindow"},
		{name: "negative metricWindow", cfg: Config{MetricWindow: -time.Second}, want: "metricWindow"},
		{name: "scale to zero off", cfg: Config{FeatureGates: map[string]bool{GateScaleToZero: false, GateGeneration: false}}},
		{name: "locked gate at its default", cfg: Config{FeatureGates: map[string]bool{GateConfigurableTolerance: true}}},
		{name: "locked gate turned off", cfg: Config{FeatureGates: map[string]bool{GateConfigurableTolerance: false}}, want: "HPAConfigurableTolerance is GA and locked"},
		{name: "unknown gate", cfg: Config{FeatureGates: map[string]bool{"HPAScaleToZer0": true}}, want: `"HPAScaleToZer0" is not an HPA controller feature gate`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (!errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an ErrInvalidInput naming %s", err, tt.want)
			}
			if tt.want == "" {
				return
			}
			// Recommend and a scenario reject it too, even one that never
			// reaches a decision (it stays at zero replicas).
			hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 2}}
			if _, err := Recommend(tt.cfg, Input{HPA: hpa, Now: testNow, CurrentReplicas: 1}); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("Recommend() error = %v, want ErrInvalidInput", err)
			}
			s := Scenario{ScaledObject: scaledObject(0, promTrigger("20", "5")), Duration: time.Minute, Load: []LoadPoint{{Value: 0}}, Config: tt.cfg}
			if _, err := Simulate(t.Context(), s); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("Simulate() error = %v, want ErrInvalidInput", err)
			}
		})
	}
}

func TestConfigEnabled(t *testing.T) {
	tests := []struct {
		name  string
		gates map[string]bool
		gate  string
		want  bool
	}{
		{name: "scale to zero is on by default in v1.37", gate: GateScaleToZero, want: true},
		{name: "configurable tolerance is GA", gate: GateConfigurableTolerance, want: true},
		{name: "generation is on by default", gate: GateGeneration, want: true},
		{name: "turned off", gates: map[string]bool{GateScaleToZero: false}, gate: GateScaleToZero, want: false},
		{name: "other gates keep their default", gates: map[string]bool{GateScaleToZero: false}, gate: GateGeneration, want: true},
		{name: "unknown is off", gate: "NoSuchGate", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Config{FeatureGates: tt.gates}).Enabled(tt.gate); got != tt.want {
				t.Errorf("Enabled(%s) = %v, want %v", tt.gate, got, tt.want)
			}
		})
	}
	if d := DefaultFeatureGates(); len(d) != 3 || !d[GateScaleToZero] {
		t.Errorf("DefaultFeatureGates() = %v", d)
	}
}
