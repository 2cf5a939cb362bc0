package autoscale

import (
	"errors"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-dev/shoal/keda"
)

func cpuTrigger(metricType, value string) ScaleTrigger {
	return ScaleTrigger{Type: "cpu", MetricType: metricType, Metadata: map[string]string{"value": value}}
}

func promTrigger(threshold, activation string) ScaleTrigger {
	md := map[string]string{"query": "sum(up)", "threshold": threshold}
	if activation != "" {
		md["activationThreshold"] = activation
	}
	return ScaleTrigger{Type: "prometheus", Metadata: md}
}

func scaledObject(minR int32, triggers ...ScaleTrigger) *ScaledObject {
	so := &ScaledObject{Spec: ScaledObjectSpec{
		ScaleTargetRef:  &keda.ScaleTarget{Name: "web"},
		MinReplicaCount: i32(minR), MaxReplicaCount: i32(10), CooldownPeriod: i32(60),
		Triggers: triggers,
	}}
	so.Name = "web"
	return so
}

func qty(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

func TestScaledObjectHPAMetrics(t *testing.T) {
	utilization := func(v int32) autoscalingv2.MetricTarget {
		return autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &v}
	}
	averageValue := func(s string) autoscalingv2.MetricTarget {
		return autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: qty(s)}
	}
	res := func(name corev1.ResourceName, target autoscalingv2.MetricTarget) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: name, Target: target}}
	}
	ext := func(name string, target autoscalingv2.MetricTarget) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType,
			External: &autoscalingv2.ExternalMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: name}, Target: target}}
	}
	deprecated := ScaleTrigger{Type: "memory", Metadata: map[string]string{"type": "Utilization", "value": "80"}}
	container := ScaleTrigger{Type: "cpu", MetricType: "AverageValue", Metadata: map[string]string{"value": "500m", "containerName": "app"}}
	valued := promTrigger("50", "")
	valued.MetricType = "Value"
	tests := []struct {
		name        string
		so          *ScaledObject
		want        []autoscalingv2.MetricSpec
		metricNames []string
	}{
		{
			name: "deploy kit: cpu utilization then prometheus",
			so:   scaledObject(2, cpuTrigger("Utilization", "70"), promTrigger("4", "")),
			want: []autoscalingv2.MetricSpec{
				res(corev1.ResourceCPU, utilization(70)),
				ext("s1-prometheus", averageValue("4")),
			},
			metricNames: []string{"", "s1-prometheus"},
		},
		{
			name: "prometheus first keeps index 0, cpu index 1 has no external name",
			so:   scaledObject(0, promTrigger("100", "1"), cpuTrigger("Utilization", "60")),
			want: []autoscalingv2.MetricSpec{
				ext("s0-prometheus", averageValue("100")),
				res(corev1.ResourceCPU, utilization(60)),
			},
			metricNames: []string{"s0-prometheus", ""},
		},
		{
			name:        "memory average value",
			so:          scaledObject(1, ScaleTrigger{Type: "memory", MetricType: "AverageValue", Metadata: map[string]string{"value": "256Mi"}}),
			want:        []autoscalingv2.MetricSpec{res(corev1.ResourceMemory, averageValue("256Mi"))},
			metricNames: []string{""},
		},
		{
			name:        "deprecated metadata.type",
			so:          scaledObject(1, deprecated),
			want:        []autoscalingv2.MetricSpec{res(corev1.ResourceMemory, utilization(80))},
			metricNames: []string{""},
		},
		{
			name: "containerName makes a ContainerResource metric",
			so:   scaledObject(1, container),
			want: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ContainerResourceMetricSourceType,
				ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: corev1.ResourceCPU, Container: "app", Target: averageValue("500m")}}},
			metricNames: []string{""},
		},
		{
			name: "prometheus Value target next to cpu",
			so:   scaledObject(1, cpuTrigger("AverageValue", "1"), valued),
			want: []autoscalingv2.MetricSpec{
				res(corev1.ResourceCPU, averageValue("1")),
				ext("s1-prometheus", autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: qty("50")}),
			},
			metricNames: []string{"", "s1-prometheus"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hpa, err := tt.so.HPA()
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(hpa.Spec.Metrics, tt.want) {
				t.Errorf("metrics =\n%+v\nwant\n%+v", hpa.Spec.Metrics, tt.want)
			}
			wantMin := max(*tt.so.Spec.MinReplicaCount, 1)
			if hpa.Name != "keda-hpa-web" || *hpa.Spec.MinReplicas != wantMin || hpa.Spec.MaxReplicas != 10 {
				t.Errorf("hpa %s min %d max %d, want keda-hpa-web %d 10", hpa.Name, *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, wantMin)
			}
			for i, want := range tt.metricNames {
				if got := tt.so.MetricName(i); got != want {
					t.Errorf("MetricName(%d) = %q, want %q", i, got, want)
				}
				if got := tt.so.ResourceTrigger(i); got != (want == "") {
					t.Errorf("ResourceTrigger(%d) = %v", i, got)
				}
			}
			// The HPA is one that Recommend accepts.
			in := Input{HPA: hpa, Now: testNow, CurrentReplicas: wantMin}
			if err := in.Validate(); err != nil {
				t.Errorf("generated HPA is invalid: %v", err)
			}
		})
	}
}

func TestScaledObjectValidateTriggers(t *testing.T) {
	cached := cpuTrigger("Utilization", "70")
	cached.UseCachedMetrics = true
	both := cpuTrigger("Utilization", "70")
	both.Metadata["type"] = "AverageValue"
	tests := []struct {
		name    string
		so      *ScaledObject
		wantErr string // "" for valid
	}{
		{"cpu and prometheus", scaledObject(2, cpuTrigger("Utilization", "70"), promTrigger("4", "")), ""},
		{"cpu only with minReplicaCount 1", scaledObject(1, cpuTrigger("Utilization", "70")), ""},
		{"cpu and prometheus may scale to zero", scaledObject(0, cpuTrigger("Utilization", "70"), promTrigger("4", "1")), ""},
		{"cpu only with minReplicaCount 0", scaledObject(0, cpuTrigger("Utilization", "70")),
			"only cpu/memory triggers and minReplicaCount 0"},
		{"cpu and memory only, minReplicaCount unset", func() *ScaledObject {
			so := scaledObject(0, cpuTrigger("Utilization", "70"), ScaleTrigger{Type: "memory", MetricType: "AverageValue", Metadata: map[string]string{"value": "1Gi"}})
			so.Spec.MinReplicaCount = nil
			return so
		}(), "only cpu/memory triggers and minReplicaCount 0"},
		{"no metricType", scaledObject(1, cpuTrigger("", "70")), "triggers[0] (cpu): metricType is required"},
		{"Value metricType", scaledObject(1, cpuTrigger("Value", "70")), `metricType "Value" is not Utilization or AverageValue`},
		{"no value", scaledObject(1, ScaleTrigger{Type: "cpu", MetricType: "Utilization"}), "metadata.value is required"},
		{"fractional utilization", scaledObject(1, cpuTrigger("Utilization", "70.5")), `metadata.value "70.5" is not a positive whole percentage`},
		{"zero utilization", scaledObject(1, cpuTrigger("Utilization", "0")), `metadata.value "0" is not a positive whole percentage`},
		{"bad quantity", scaledObject(1, cpuTrigger("AverageValue", "lots")), `metadata.value "lots" is not a positive quantity`},
		{"metricType and metadata.type", scaledObject(1, both), "both set"},
		{"bad deprecated type", scaledObject(1, ScaleTrigger{Type: "memory", Metadata: map[string]string{"type": "Value", "value": "1"}}),
			`metricType "Value" is not Utilization or AverageValue`},
		{"useCachedMetrics", scaledObject(1, cached), "useCachedMetrics is not supported for cpu triggers"},
		{"unknown trigger type", scaledObject(1, ScaleTrigger{Type: "kafka"}), `trigger type "kafka" is not supported (prometheus, cpu or memory)`},
		{"NaN threshold", scaledObject(1, promTrigger("NaN", "")), `metadata.threshold "NaN" is not a positive number`},
		{"infinite threshold", scaledObject(1, promTrigger("Inf", "")), `metadata.threshold "Inf" is not a positive number`},
		{"threshold past float64", scaledObject(1, promTrigger("1e309", "")), `metadata.threshold "1e309" is not a positive number`},
		{"NaN activation", scaledObject(1, promTrigger("4", "NaN")), `metadata.activationThreshold "NaN" is not a number`},
		{"infinite activation", scaledObject(1, promTrigger("4", "-Inf")), `metadata.activationThreshold "-Inf" is not a number`},
		{"fallback with cpu and prometheus", func() *ScaledObject {
			so := scaledObject(2, cpuTrigger("Utilization", "70"), promTrigger("4", ""))
			so.Spec.Fallback = &keda.Fallback{FailureThreshold: 3, Replicas: 4}
			return so
		}(), ""},
		{"fallback with only cpu", func() *ScaledObject {
			so := scaledObject(2, cpuTrigger("Utilization", "70"))
			so.Spec.Fallback = &keda.Fallback{FailureThreshold: 3, Replicas: 4}
			return so
		}(), "fallback needs a trigger other than cpu or memory with metricType AverageValue"},
		{"negative fallback", func() *ScaledObject {
			so := scaledObject(2, promTrigger("4", ""))
			so.Spec.Fallback = &keda.Fallback{FailureThreshold: -1, Replicas: 4}
			return so
		}(), "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.so.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidInput with %q", err, tt.wantErr)
			}
			if _, herr := tt.so.HPA(); herr == nil {
				t.Error("HPA accepted an invalid object")
			}
			if _, aerr := tt.so.Activate(testNow, 1, make([]float64, len(tt.so.Spec.Triggers)), nil); aerr == nil {
				t.Error("Activate accepted an invalid object")
			}
		})
	}
}

func TestKEDAActivationIgnoresResourceTriggers(t *testing.T) {
	long := testNow.Add(-2 * time.Minute)
	mixed := scaledObject(0, cpuTrigger("Utilization", "70"), promTrigger("4", "1"))
	cpuOnly := scaledObject(2, cpuTrigger("Utilization", "70"))
	tests := []struct {
		name       string
		so         *ScaledObject
		current    int32
		values     []float64
		lastActive *time.Time
		want       int32
		reason     string
	}{
		{"busy cpu does not scale from zero", mixed, 0, []float64{1e6, 0}, nil, -1, "Inactive"},
		{"prometheus above activation scales from zero", mixed, 0, []float64{0, 2}, nil, 1, "ScaledFromZero"},
		{"busy cpu does not hold pods after the cooldown", mixed, 3, []float64{1e6, 0.5}, &long, 0, "ScaledToZero"},
		{"active prometheus leaves it to the HPA", mixed, 3, []float64{0, 3}, nil, -1, "Active"},
		{"cpu only is always active", cpuOnly, 4, []float64{0}, &long, -1, "Active"},
		{"cpu only at zero comes back to minReplicaCount", cpuOnly, 0, []float64{0}, nil, 2, "ScaledFromZero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.so.Activate(testNow, tt.current, tt.values, tt.lastActive)
			if err != nil {
				t.Fatal(err)
			}
			if a.Replicas != tt.want || a.Reason != tt.reason {
				t.Errorf("got %d %s, want %d %s", a.Replicas, a.Reason, tt.want, tt.reason)
			}
			if a.Active != (tt.reason == "Active" || tt.reason == "ScaledFromZero") {
				t.Errorf("Active = %v with reason %s", a.Active, a.Reason)
			}
		})
	}
	if _, err := mixed.Activate(testNow, 1, []float64{0}, nil); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("one value for two triggers: %v, want ErrInvalidInput", err)
	}
}
