package autoscale

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/keda"
)

// ScaledObject is a KEDA ScaledObject (keda.sh/v1alpha1, declared in
// package keda) with KEDA's scaling semantics: the HPA it stands for, and
// activation to and from zero. The fields that decide scaling are
// pollingInterval (default 30s), cooldownPeriod (default 300s),
// minReplicaCount (default 0), maxReplicaCount (default 100),
// advanced.horizontalPodAutoscalerConfig.behavior and the triggers.
//
// Two kinds of trigger are understood. A prometheus trigger is an External
// metric of the HPA, its metadata holding threshold and
// activationThreshold. A cpu or memory trigger is a Resource metric
// (ContainerResource with metadata.containerName) whose target is
// metadata.value, read as metricType says: Utilization (a whole percentage
// of the pods' requests) or AverageValue (a quantity per pod, such as
// "500m" or "256Mi"); the deprecated metadata.type stands in for
// metricType. As in KEDA, cpu and memory triggers take no part in
// activation: they never scale from zero, and a ScaledObject with only
// such triggers is always active and needs minReplicaCount of 1 or more.
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
	external := 0
	for i := range s.Triggers {
		t, err := parseTrigger(&s.Triggers[i])
		if err != nil {
			return fmt.Errorf("%w: scaledObject triggers[%d] (%s): %v", ErrInvalidInput, i, s.Triggers[i].Type, err)
		}
		if t.resource == "" {
			external++
		}
	}
	if external == 0 && minR == 0 {
		return fmt.Errorf("%w: scaledObject has only cpu/memory triggers and minReplicaCount 0: cpu and memory triggers never scale from zero, so set minReplicaCount to 1 or more, or add another trigger", ErrInvalidInput)
	}
	if f := s.Fallback; f != nil {
		if f.FailureThreshold < 0 || f.Replicas < 0 {
			return fmt.Errorf("%w: scaledObject fallback failureThreshold %d and replicas %d must not be negative", ErrInvalidInput, f.FailureThreshold, f.Replicas)
		}
		// KEDA serves the fallback through the External metrics it
		// reports, as an average over the pods.
		averaged := false
		for i := range s.Triggers {
			t := &s.Triggers[i]
			if !isResourceTrigger(t) && (t.MetricType == "" || autoscalingv2.MetricTargetType(t.MetricType) == autoscalingv2.AverageValueMetricType) {
				averaged = true
			}
		}
		if !averaged {
			return fmt.Errorf("%w: scaledObject fallback needs a trigger other than cpu or memory with metricType AverageValue", ErrInvalidInput)
		}
	}
	return nil
}

// trigger is a ScaleTrigger as KEDA's scaler reads it.
type trigger struct {
	// resource is cpu or memory for a Resource metric, empty for an
	// External one.
	resource corev1.ResourceName
	// container, when set, makes the Resource metric a ContainerResource.
	container string
	// target is a resource trigger's target.
	target autoscalingv2.MetricTarget
	// threshold and activation are an external trigger's.
	threshold, activation float64
}

func isResourceTrigger(t *ScaleTrigger) bool {
	return t.Type == string(corev1.ResourceCPU) || t.Type == string(corev1.ResourceMemory)
}

func parseTrigger(t *ScaleTrigger) (trigger, error) {
	if isResourceTrigger(t) {
		return parseResourceTrigger(t)
	}
	if t.Type != "prometheus" {
		return trigger{}, fmt.Errorf("trigger type %q is not supported (prometheus, cpu or memory)", t.Type)
	}
	switch autoscalingv2.MetricTargetType(t.MetricType) {
	case "", autoscalingv2.AverageValueMetricType, autoscalingv2.ValueMetricType:
	default:
		return trigger{}, fmt.Errorf("metricType %q is not AverageValue or Value", t.MetricType)
	}
	raw, ok := t.Metadata["threshold"]
	if !ok {
		return trigger{}, fmt.Errorf("metadata.threshold is required")
	}
	threshold, err := strconv.ParseFloat(raw, 64)
	if err != nil || !(threshold > 0) || math.IsInf(threshold, 0) {
		return trigger{}, fmt.Errorf("metadata.threshold %q is not a positive number", raw)
	}
	out := trigger{threshold: threshold}
	if raw, ok := t.Metadata["activationThreshold"]; ok {
		out.activation, err = strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(out.activation) || math.IsInf(out.activation, 0) {
			return trigger{}, fmt.Errorf("metadata.activationThreshold %q is not a number", raw)
		}
	}
	return out, nil
}

// parseResourceTrigger reads a cpu or memory trigger as KEDA's
// cpu_memory_scaler does, with errors where KEDA would fail to build the
// scaler (or, for a bad quantity, panic).
func parseResourceTrigger(t *ScaleTrigger) (trigger, error) {
	if t.UseCachedMetrics {
		return trigger{}, fmt.Errorf("useCachedMetrics is not supported for %s triggers", t.Type)
	}
	typ := autoscalingv2.MetricTargetType(t.MetricType)
	if old := t.Metadata["type"]; old != "" {
		if typ != "" {
			return trigger{}, fmt.Errorf("metricType %q and the deprecated metadata.type %q are both set; keep metricType", t.MetricType, old)
		}
		typ = autoscalingv2.MetricTargetType(old)
	}
	raw := t.Metadata["value"]
	if raw == "" {
		return trigger{}, fmt.Errorf("metadata.value is required")
	}
	out := trigger{resource: corev1.ResourceName(t.Type), container: t.Metadata["containerName"], target: autoscalingv2.MetricTarget{Type: typ}}
	switch typ {
	case autoscalingv2.UtilizationMetricType:
		u, err := strconv.ParseInt(raw, 10, 32)
		if err != nil || u <= 0 {
			return trigger{}, fmt.Errorf("metadata.value %q is not a positive whole percentage, as metricType Utilization needs", raw)
		}
		v := int32(u)
		out.target.AverageUtilization = &v
	case autoscalingv2.AverageValueMetricType:
		q, err := resource.ParseQuantity(raw)
		if err != nil || q.Sign() <= 0 {
			return trigger{}, fmt.Errorf("metadata.value %q is not a positive quantity, as metricType AverageValue needs", raw)
		}
		out.target.AverageValue = &q
	case "":
		return trigger{}, fmt.Errorf("metricType is required: Utilization or AverageValue")
	default:
		return trigger{}, fmt.Errorf("metricType %q is not Utilization or AverageValue", typ)
	}
	return out, nil
}

// ResourceTrigger reports whether trigger i is a cpu or memory trigger,
// which the HPA reads as a Resource metric and activation ignores.
func (so *ScaledObject) ResourceTrigger(i int) bool {
	return isResourceTrigger(&so.Spec.Triggers[i])
}

// MetricName is the external metric name KEDA gives trigger i: its index
// among all the triggers and its type, such as "s1-prometheus". A cpu or
// memory trigger has none (it is a Resource metric), and gets "".
func (so *ScaledObject) MetricName(i int) string {
	if so.ResourceTrigger(i) {
		return ""
	}
	return fmt.Sprintf("s%d-%s", i, so.Spec.Triggers[i].Type)
}

// HPA returns the HorizontalPodAutoscaler KEDA creates for the object:
// minReplicas max(minReplicaCount, 1), maxReplicas maxReplicaCount and one
// metric per trigger, in the triggers' order: an External metric named
// [ScaledObject.MetricName] with the threshold as its target, or for a cpu
// or memory trigger a Resource (ContainerResource) metric with its
// Utilization or AverageValue target.
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
		t, _ := parseTrigger(&s.Triggers[i])
		hpa.Spec.Metrics = append(hpa.Spec.Metrics, so.metricSpec(i, t))
	}
	return hpa, nil
}

func (so *ScaledObject) metricSpec(i int, t trigger) autoscalingv2.MetricSpec {
	switch {
	case t.resource != "" && t.container != "":
		return autoscalingv2.MetricSpec{
			Type:              autoscalingv2.ContainerResourceMetricSourceType,
			ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: t.resource, Container: t.container, Target: t.target},
		}
	case t.resource != "":
		return autoscalingv2.MetricSpec{
			Type:     autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: t.resource, Target: t.target},
		}
	}
	q := resource.NewMilliQuantity(saturate(t.threshold*1000), resource.DecimalSI)
	target := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q}
	if autoscalingv2.MetricTargetType(so.Spec.Triggers[i].MetricType) == autoscalingv2.ValueMetricType {
		target = autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: q}
	}
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ExternalMetricSourceType,
		External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: so.MetricName(i)},
			Target: target,
		},
	}
}

// MetricValue turns a trigger's query result into the quantity KEDA's
// metrics adapter reports.
func MetricValue(v float64) resource.Quantity {
	if math.Abs(v) < math.MaxInt64/1000 {
		return *resource.NewMilliQuantity(saturate(v*1000), resource.DecimalSI)
	}
	// Past int64 milli-units, whole units (the fraction no longer shows).
	return *resource.NewQuantity(saturate(v), resource.DecimalSI)
}

// saturate converts v to an int64, the nearest one when v is beyond the
// range (Go's conversion is then undefined: on amd64 a huge value turned
// into the most negative one, and a huge demand into no demand at all).
// NaN is 0.
func saturate(v float64) int64 {
	switch {
	case v != v:
		return 0
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	}
	return int64(v)
}

// saturate32 is saturate for the int32 of a replica count or a
// percentage: a proposal past the range is the nearest int32 (and then
// limited to maxReplicas), never one wrapped to the other sign.
func saturate32(v float64) int32 {
	switch {
	case v != v:
		return 0
	case v >= math.MaxInt32:
		return math.MaxInt32
	case v <= math.MinInt32:
		return math.MinInt32
	}
	return int32(v)
}

// addSaturated is a+b for non-negative a and b, math.MaxInt64 past it:
// the pods' usages summed, each of which may itself have saturated.
func addSaturated(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
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
// query result, one per trigger in order. It scales from zero when a
// trigger is active, to zero once no trigger has been active for
// cooldownPeriod (when minReplicaCount is 0), and up to minReplicaCount
// when below it; above zero the HPA decides.
//
// The values of cpu and memory triggers are ignored (callers may pass 0):
// as in KEDA, those triggers are Resource metrics of the HPA and take no
// part in activation, and an object whose triggers are all cpu or memory
// is always active.
func (so *ScaledObject) Activate(now time.Time, current int32, values []float64, lastActive *time.Time) (Activation, error) {
	if err := so.Validate(); err != nil {
		return Activation{}, err
	}
	s := &so.Spec
	if len(values) != len(s.Triggers) {
		return Activation{}, fmt.Errorf("%w: %d trigger values for %d triggers", ErrInvalidInput, len(values), len(s.Triggers))
	}
	active, external := false, false
	for i := range s.Triggers {
		t, _ := parseTrigger(&s.Triggers[i])
		if t.resource != "" {
			continue
		}
		external = true
		// KEDA's prometheus scaler is active strictly above the activation threshold.
		if values[i] > t.activation {
			active = true
		}
	}
	if !external {
		active = true
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

// Tunable reports why Tune cannot search the object, naming the field, or
// nil when it can. Beyond Validate it needs one trigger, of type
// prometheus or cpu, and no advanced.scalingModifiers: a replay is one
// demand curve, which each trigger would read as its own metric (so a
// threshold found for one says nothing of the others); the replay's pods
// use CPU, not memory; and a formula over the triggers is not replayed.
func (so *ScaledObject) Tunable() error {
	if err := so.Validate(); err != nil {
		return err
	}
	s := &so.Spec
	if n := len(s.Triggers); n != 1 {
		return fmt.Errorf("%w: scaledObject spec.triggers has %d triggers; tuning takes one: the replayed curve is one demand, and each trigger reads its own metric, so tune a ScaledObject holding only the trigger that decides", ErrInvalidInput, n)
	}
	if t := s.Triggers[0].Type; t == string(corev1.ResourceMemory) {
		return fmt.Errorf("%w: scaledObject spec.triggers[0].type is memory: the replay models the demand as the pods' CPU, so a memory target cannot be tuned", ErrInvalidInput)
	}
	if s.Advanced != nil && s.Advanced.ScalingModifiers != nil {
		return fmt.Errorf("%w: scaledObject spec.advanced.scalingModifiers is set: the replay does not evaluate its formula, so the tuned HPA would not be the one KEDA builds", ErrInvalidInput)
	}
	return nil
}

// deepCopy returns a copy of so sharing nothing that tuning changes or a
// caller may: metadata, the spec's pointers, the triggers and their
// metadata, the advanced config and its behavior.
func (so *ScaledObject) deepCopy() *ScaledObject {
	out := *so
	out.ObjectMeta = *so.ObjectMeta.DeepCopy()
	out.Status = nil
	s := &out.Spec
	cp := func(p *int32) *int32 {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	s.PollingInterval, s.InitialCooldownPeriod, s.CooldownPeriod = cp(s.PollingInterval), cp(s.InitialCooldownPeriod), cp(s.CooldownPeriod)
	s.IdleReplicaCount, s.MinReplicaCount, s.MaxReplicaCount = cp(s.IdleReplicaCount), cp(s.MinReplicaCount), cp(s.MaxReplicaCount)
	if t := s.ScaleTargetRef; t != nil {
		c := *t
		s.ScaleTargetRef = &c
	}
	if f := s.Fallback; f != nil {
		c := *f
		s.Fallback = &c
	}
	if a := s.Advanced; a != nil {
		c := *a
		if h := a.HorizontalPodAutoscalerConfig; h != nil {
			hc := *h
			hc.Behavior = h.Behavior.DeepCopy()
			c.HorizontalPodAutoscalerConfig = &hc
		}
		if m := a.ScalingModifiers; m != nil {
			mc := *m
			c.ScalingModifiers = &mc
		}
		s.Advanced = &c
	}
	s.Triggers = append([]ScaleTrigger(nil), s.Triggers...)
	for i := range s.Triggers {
		t := &s.Triggers[i]
		t.Metadata = maps.Clone(t.Metadata)
		if t.AuthenticationRef != nil {
			c := *t.AuthenticationRef
			t.AuthenticationRef = &c
		}
	}
	return &out
}
