package autoscale

import (
	"fmt"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/keda"
)

// ScaledObject is a KEDA ScaledObject (keda.sh/v1alpha1, declared in
// package keda) with KEDA's scaling semantics: the HPA it stands for, and
// activation to and from zero. The fields that decide scaling are
// pollingInterval (default 30s), cooldownPeriod (default 300s),
// minReplicaCount (default 0), maxReplicaCount (default 100),
// advanced.horizontalPodAutoscalerConfig.behavior and the triggers; only
// prometheus triggers are understood, their metadata holding threshold and
// activationThreshold.
type ScaledObject keda.ScaledObject

// ScaledObjectSpec and ScaleTrigger are KEDA's, from package keda.
type (
	ScaledObjectSpec = keda.ScaledObjectSpec
	ScaleTrigger     = keda.ScaleTrigger
)

func int32Or(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// PollingInterval returns spec.pollingInterval with its default.
func (so *ScaledObject) PollingInterval() time.Duration {
	return time.Duration(int32Or(so.Spec.PollingInterval, 30)) * time.Second
}

// Validate checks the fields KEDA's admission webhook would reject.
func (so *ScaledObject) Validate() error {
	s := &so.Spec
	minR, maxR := int32Or(s.MinReplicaCount, 0), int32Or(s.MaxReplicaCount, 100)
	if minR < 0 || maxR < 1 || minR > maxR {
		return fmt.Errorf("%w: scaledObject minReplicaCount %d and maxReplicaCount %d must satisfy 0 <= min <= max, max >= 1", ErrInvalidInput, minR, maxR)
	}
	if int32Or(s.PollingInterval, 30) < 1 || int32Or(s.CooldownPeriod, 300) < 0 {
		return fmt.Errorf("%w: scaledObject pollingInterval must be positive and cooldownPeriod not negative", ErrInvalidInput)
	}
	if len(s.Triggers) == 0 {
		return fmt.Errorf("%w: scaledObject needs at least one trigger", ErrInvalidInput)
	}
	for i := range s.Triggers {
		if _, _, err := thresholds(&s.Triggers[i]); err != nil {
			return fmt.Errorf("%w: scaledObject triggers[%d]: %v", ErrInvalidInput, i, err)
		}
	}
	return nil
}

func thresholds(t *ScaleTrigger) (threshold, activation float64, err error) {
	if t.Type != "prometheus" {
		return 0, 0, fmt.Errorf("trigger type %q is not supported (prometheus only)", t.Type)
	}
	switch autoscalingv2.MetricTargetType(t.MetricType) {
	case "", autoscalingv2.AverageValueMetricType, autoscalingv2.ValueMetricType:
	default:
		return 0, 0, fmt.Errorf("metricType %q is not AverageValue or Value", t.MetricType)
	}
	raw, ok := t.Metadata["threshold"]
	if !ok {
		return 0, 0, fmt.Errorf("metadata.threshold is required")
	}
	threshold, err = strconv.ParseFloat(raw, 64)
	if err != nil || threshold <= 0 {
		return 0, 0, fmt.Errorf("metadata.threshold %q is not a positive number", raw)
	}
	if raw, ok := t.Metadata["activationThreshold"]; ok {
		activation, err = strconv.ParseFloat(raw, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("metadata.activationThreshold %q is not a number", raw)
		}
	}
	return threshold, activation, nil
}

// MetricName is the external metric name KEDA gives trigger i.
func (so *ScaledObject) MetricName(i int) string {
	return fmt.Sprintf("s%d-%s", i, so.Spec.Triggers[i].Type)
}

// HPA returns the HorizontalPodAutoscaler KEDA creates for the object:
// minReplicas max(minReplicaCount, 1), maxReplicas maxReplicaCount and one
// External metric per trigger with the threshold as its target.
func (so *ScaledObject) HPA() (*autoscalingv2.HorizontalPodAutoscaler, error) {
	if err := so.Validate(); err != nil {
		return nil, err
	}
	s := &so.Spec
	minR := max(int32Or(s.MinReplicaCount, 0), 1)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-" + so.Name, Namespace: so.Namespace},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			MinReplicas: &minR,
			MaxReplicas: int32Or(s.MaxReplicaCount, 100),
		},
	}
	if t := s.ScaleTargetRef; t != nil {
		// KEDA's defaults for a target that names only itself.
		ref := autoscalingv2.CrossVersionObjectReference{Kind: t.Kind, Name: t.Name, APIVersion: t.APIVersion}
		if ref.Kind == "" {
			ref.Kind = "Deployment"
		}
		if ref.APIVersion == "" {
			ref.APIVersion = "apps/v1"
		}
		hpa.Spec.ScaleTargetRef = ref
	}
	if s.Advanced != nil && s.Advanced.HorizontalPodAutoscalerConfig != nil && s.Advanced.HorizontalPodAutoscalerConfig.Behavior != nil {
		hpa.Spec.Behavior = s.Advanced.HorizontalPodAutoscalerConfig.Behavior.DeepCopy()
	}
	for i := range s.Triggers {
		threshold, _, _ := thresholds(&s.Triggers[i])
		q := resource.NewMilliQuantity(int64(threshold*1000), resource.DecimalSI)
		target := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q}
		if autoscalingv2.MetricTargetType(s.Triggers[i].MetricType) == autoscalingv2.ValueMetricType {
			target = autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: q}
		}
		hpa.Spec.Metrics = append(hpa.Spec.Metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.ExternalMetricSourceType,
			External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: so.MetricName(i)},
				Target: target,
			},
		})
	}
	return hpa, nil
}

// MetricValue turns a trigger's query result into the quantity KEDA's
// metrics adapter reports.
func MetricValue(v float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(v*1000), resource.DecimalSI)
}

// Activation is what one KEDA poll decides.
type Activation struct {
	// Active reports whether any trigger is above its activationThreshold.
	Active bool `json:"active"`
	// Replicas is the count KEDA sets, or -1 when KEDA leaves scaling to the HPA.
	Replicas int32 `json:"replicas"`
	// LastActiveTime is the time to pass to the next poll.
	LastActiveTime *time.Time `json:"lastActiveTime,omitempty"`
	// Reason says what KEDA did.
	Reason string `json:"reason"`
}

// Activate is one poll of KEDA's scale loop: values holds each trigger's
// query result. It scales from zero when a trigger is active, to zero
// once no trigger has been active for cooldownPeriod (when
// minReplicaCount is 0), and up to minReplicaCount when below it; above
// zero the HPA decides.
func (so *ScaledObject) Activate(now time.Time, current int32, values []float64, lastActive *time.Time) (Activation, error) {
	if err := so.Validate(); err != nil {
		return Activation{}, err
	}
	s := &so.Spec
	if len(values) != len(s.Triggers) {
		return Activation{}, fmt.Errorf("%w: %d trigger values for %d triggers", ErrInvalidInput, len(values), len(s.Triggers))
	}
	active := false
	for i := range s.Triggers {
		_, activation, _ := thresholds(&s.Triggers[i])
		// KEDA's prometheus scaler is active strictly above the activation threshold.
		if values[i] > activation {
			active = true
		}
	}
	minR := int32Or(s.MinReplicaCount, 0)
	a := Activation{Active: active, Replicas: -1, LastActiveTime: lastActive}
	if active {
		t := now
		a.LastActiveTime = &t
		if current == 0 {
			a.Replicas = max(minR, 1)
			a.Reason = "ScaledFromZero"
			return a, nil
		}
		a.Reason = "Active"
		return a, nil
	}
	cooldown := time.Duration(int32Or(s.CooldownPeriod, 300)) * time.Second
	switch {
	case current > 0 && minR == 0:
		// Without a record of activity KEDA scales in at once.
		if lastActive == nil || lastActive.Add(cooldown).Before(now) {
			a.Replicas = 0
			a.Reason = "ScaledToZero"
			return a, nil
		}
		a.Reason = "CoolingDown"
	case current < minR:
		a.Replicas = minR
		a.Reason = "ScaledToMinReplicaCount"
	default:
		a.Reason = "Inactive"
	}
	return a, nil
}
