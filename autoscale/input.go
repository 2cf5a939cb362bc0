package autoscale

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrInvalidInput is wrapped by every error Recommend returns for input it
// cannot decide on (as opposed to a metric that cannot be computed, which
// is part of the Decision, as it is part of the HPA's status upstream).
var ErrInvalidInput = errors.New("autoscale: invalid input")

// Config holds the controller-wide settings that kube-controller-manager
// takes as flags. The zero value gives the upstream defaults: a zero field
// means its default, and a negative one is invalid (see Validate), so a
// setting of exactly zero is not expressible here; an HPA's behavior sets
// a zero tolerance or stabilization window for itself.
type Config struct {
	// Tolerance is the usage ratio band around 1.0 inside which no scaling
	// happens (--horizontal-pod-autoscaler-tolerance). If zero, 0.1. An
	// HPA's behavior.scaleUp/scaleDown.tolerance overrides it per direction.
	Tolerance float64
	// CPUInitializationPeriod is how long after its start a pod's CPU
	// samples are doubted (--horizontal-pod-autoscaler-cpu-initialization-period).
	// If zero, 5m.
	CPUInitializationPeriod time.Duration
	// InitialReadinessDelay is how long after its start an unready pod is
	// taken as never having been ready
	// (--horizontal-pod-autoscaler-initial-readiness-delay). If zero, 30s.
	InitialReadinessDelay time.Duration
	// DownscaleStabilizationWindow is the scale-down stabilization window
	// when the HPA sets none (--horizontal-pod-autoscaler-downscale-stabilization).
	// If zero, 5m.
	DownscaleStabilizationWindow time.Duration
	// MetricWindow is the window metrics-server reports with each CPU
	// sample; a sample must cover a full window after the pod turned ready
	// to count during the initialization period. If zero, 30s.
	MetricWindow time.Duration
	// FeatureGates turns the controller's feature gates on or off by
	// their upstream names, as kube-controller-manager's --feature-gates
	// does (for example {"HPAScaleToZero": false}). A gate left out has
	// its Kubernetes v1.37 default (see DefaultFeatureGates); a name that
	// is not an HPA gate, or a locked gate set against its default, is
	// invalid.
	FeatureGates map[string]bool
}

// The HPA controller's feature gates in Kubernetes v1.37.
const (
	// GateScaleToZero (HPAScaleToZero, KEP-2021, beta and on by default
	// since v1.37) lets minReplicas be 0: the controller scales a target
	// with Object or External metrics down to zero, records the
	// ScaledToZero condition, and scales it back up from zero while that
	// condition is True.
	GateScaleToZero = "HPAScaleToZero"
	// GateConfigurableTolerance (HPAConfigurableTolerance, KEP-4951, GA
	// and locked on since v1.37) honours behavior.scaleUp.tolerance and
	// behavior.scaleDown.tolerance.
	GateConfigurableTolerance = "HPAConfigurableTolerance"
	// GateGeneration (HPAGeneration, beta and on by default since v1.37)
	// makes a change of an HPA's spec reconcile at once instead of at the
	// next sync period. Recommend does not read it; the controller loop
	// that calls Recommend does.
	GateGeneration = "HPAGeneration"
)

// featureGate is one gate's v1.37 default and whether it is locked to it.
type featureGate struct {
	def, locked bool
}

var featureGates = map[string]featureGate{
	GateScaleToZero:           {def: true},
	GateConfigurableTolerance: {def: true, locked: true},
	GateGeneration:            {def: true},
}

// DefaultFeatureGates returns the HPA controller's feature gates with
// their Kubernetes v1.37 defaults.
func DefaultFeatureGates() map[string]bool {
	out := make(map[string]bool, len(featureGates))
	for name, g := range featureGates {
		out[name] = g.def
	}
	return out
}

// Enabled reports whether the named feature gate is on: as set in
// FeatureGates, or else its v1.37 default. An unknown gate is off.
func (c Config) Enabled(gate string) bool {
	if on, ok := c.FeatureGates[gate]; ok {
		return on
	}
	return featureGates[gate].def
}

// withDefaults returns the valid config c with its zero fields replaced by
// their defaults. Recommend applies it once, after Validate.
func (c Config) withDefaults() Config {
	if c.Tolerance == 0 {
		c.Tolerance = 0.1
	}
	if c.CPUInitializationPeriod == 0 {
		c.CPUInitializationPeriod = 5 * time.Minute
	}
	if c.InitialReadinessDelay == 0 {
		c.InitialReadinessDelay = 30 * time.Second
	}
	if c.DownscaleStabilizationWindow == 0 {
		c.DownscaleStabilizationWindow = 5 * time.Minute
	}
	if c.MetricWindow == 0 {
		c.MetricWindow = 30 * time.Second
	}
	return c
}

// Validate reports a negative setting, or a tolerance that is not a
// number.
func (c Config) Validate() error {
	if c.Tolerance < 0 || math.IsNaN(c.Tolerance) {
		return fmt.Errorf("%w: tolerance %v must be a number >= 0", ErrInvalidInput, c.Tolerance)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"cpuInitializationPeriod", c.CPUInitializationPeriod},
		{"initialReadinessDelay", c.InitialReadinessDelay},
		{"downscaleStabilizationWindow", c.DownscaleStabilizationWindow},
		{"metricWindow", c.MetricWindow},
	} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrInvalidInput, d.name, d.v)
		}
	}
	for _, name := range sortedGateNames(c.FeatureGates) {
		g, ok := featureGates[name]
		switch {
		case !ok:
			return fmt.Errorf("%w: featureGates: %q is not an HPA controller feature gate (known: %s)", ErrInvalidInput, name, strings.Join(sortedGateNames(featureGates), ", "))
		case g.locked && c.FeatureGates[name] != g.def:
			return fmt.Errorf("%w: featureGates: %s is GA and locked to %v in Kubernetes v1.37", ErrInvalidInput, name, g.def)
		}
	}
	return nil
}

func sortedGateNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Input is everything one reconciliation of one HPA looks at.
type Input struct {
	// HPA is the autoscaler; it is defaulted as the API server would
	// (minReplicas 1, a CPU 80% metric, behavior rules) and not modified.
	HPA *autoscalingv2.HorizontalPodAutoscaler
	// Now is the time of the decision.
	Now time.Time
	// CurrentReplicas is the target's scale.spec.replicas.
	CurrentReplicas int32
	// StatusReplicas is the target's scale.status.replicas, used by Object
	// and External AverageValue targets. If nil, CurrentReplicas.
	StatusReplicas *int32
	// Pods are the pods the target's selector selects.
	Pods []Pod
	// ObjectMetrics holds the value of each Object metric, by metric name.
	ObjectMetrics map[string]resource.Quantity
	// ExternalMetrics holds the value of each External metric, by metric
	// name (the sum, when the external metrics API returns several series).
	ExternalMetrics map[string]resource.Quantity
	// Recommendations is the history of unstabilized recommendations, as
	// returned in the previous Decision. Nil means a fresh controller,
	// which seeds it with CurrentReplicas at Now (so a first scale-down is
	// stabilized); an empty, non-nil slice is a running controller with
	// no history, as upstream.
	Recommendations []Recommendation
	// ScaleEvents is the history of rescales, as returned in the previous
	// Decision; it is kept only for HPAs with a behavior.
	ScaleEvents []ScaleEvent
}

// Pod is one pod as the metrics pipeline and the pod lister see it.
type Pod struct {
	Name string
	// Phase is Running, Pending, Failed or Succeeded. If empty, Running.
	Phase corev1.PodPhase
	// Ready is the status of the pod's Ready condition.
	Ready bool
	// Deleted marks a pod with a deletion timestamp.
	Deleted bool
	// StartTime is status.startTime; nil for a pod not yet started.
	StartTime *time.Time
	// ReadyTransitionTime is the Ready condition's lastTransitionTime.
	ReadyTransitionTime time.Time
	// MetricTime is the timestamp of the resource sample. If nil, Now.
	MetricTime *time.Time
	// MetricWindow is the window of the resource sample, as metrics-server
	// reports it with each. If zero, Config.MetricWindow.
	MetricWindow time.Duration
	// Requests and Usage are pod-level resource requests and usage, used
	// when Containers is empty. A resource absent from Usage is a missing
	// metric.
	Requests corev1.ResourceList
	Usage    corev1.ResourceList
	// Containers, when set, give requests and usage per container; the
	// pod's values are their sums, and ContainerResource metrics use them.
	Containers []Container
	// Metrics holds the pod's custom (Pods type) metrics by name.
	Metrics map[string]resource.Quantity
}

// Container is one container's requests and usage.
type Container struct {
	Name     string
	Requests corev1.ResourceList
	Usage    corev1.ResourceList
}

// Recommendation is one unstabilized recommendation of the history.
type Recommendation struct {
	Time     time.Time `json:"time"`
	Replicas int32     `json:"replicas"`
}

// ScaleEvent is one rescale of the history, from From to To replicas.
type ScaleEvent struct {
	Time time.Time `json:"time"`
	From int32     `json:"from"`
	To   int32     `json:"to"`
}

// Decision is what one reconciliation decides.
type Decision struct {
	// DesiredReplicas is the replica count the target is scaled to (equal
	// to CurrentReplicas when nothing changes).
	DesiredReplicas int32 `json:"desiredReplicas"`
	// CurrentReplicas echoes the input.
	CurrentReplicas int32 `json:"currentReplicas"`
	// Rescale reports whether the target's scale is updated.
	Rescale bool `json:"rescale"`
	// Reason is the rescale reason of the SuccessfulRescale event when
	// Rescale is true; otherwise the reason of the condition that explains
	// why nothing changes.
	Reason string `json:"reason"`
	// MetricReplicas is the largest proposal over the metrics, before
	// stabilization and limits (0 when no metric was computed).
	MetricReplicas int32 `json:"metricReplicas"`
	// Metric describes the metric that gave MetricReplicas.
	Metric string `json:"metric,omitempty"`
	// MetricError is the first metric error when some or all metrics
	// could not be computed.
	MetricError string `json:"metricError,omitempty"`
	// Conditions are the HPA status conditions after the decision.
	Conditions []autoscalingv2.HorizontalPodAutoscalerCondition `json:"conditions"`
	// CurrentMetrics are the HPA status metrics.
	CurrentMetrics []autoscalingv2.MetricStatus `json:"currentMetrics,omitempty"`
	// Recommendations and ScaleEvents are the histories to pass to the
	// next call.
	Recommendations []Recommendation `json:"recommendations"`
	ScaleEvents     []ScaleEvent     `json:"scaleEvents,omitempty"`
}

// Validate checks the input for what Recommend cannot decide on.
func (in *Input) Validate() error {
	if in.HPA == nil {
		return fmt.Errorf("%w: hpa is required", ErrInvalidInput)
	}
	if in.Now.IsZero() {
		return fmt.Errorf("%w: now is required", ErrInvalidInput)
	}
	if in.CurrentReplicas < 0 {
		return fmt.Errorf("%w: currentReplicas %d is negative", ErrInvalidInput, in.CurrentReplicas)
	}
	if in.StatusReplicas != nil && *in.StatusReplicas < 0 {
		return fmt.Errorf("%w: statusReplicas %d is negative", ErrInvalidInput, *in.StatusReplicas)
	}
	if err := validateSpec(&in.HPA.Spec); err != nil {
		return err
	}
	seen := make(map[string]bool, len(in.Pods))
	for i, p := range in.Pods {
		if p.Name == "" {
			return fmt.Errorf("%w: pods[%d].name is required", ErrInvalidInput, i)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: pods[%d].name %q is duplicated", ErrInvalidInput, i, p.Name)
		}
		seen[p.Name] = true
		switch p.Phase {
		case "", corev1.PodRunning, corev1.PodPending, corev1.PodFailed, corev1.PodSucceeded, corev1.PodUnknown:
		default:
			return fmt.Errorf("%w: pods[%d].phase %q is not a pod phase", ErrInvalidInput, i, p.Phase)
		}
		if p.MetricWindow < 0 {
			return fmt.Errorf("%w: pods[%d].metricWindow must not be negative", ErrInvalidInput, i)
		}
	}
	for i, e := range in.ScaleEvents {
		if e.From < 0 || e.To < 0 {
			return fmt.Errorf("%w: scaleEvents[%d] has a negative replica count", ErrInvalidInput, i)
		}
	}
	return nil
}

func validateSpec(spec *autoscalingv2.HorizontalPodAutoscalerSpec) error {
	if spec.MaxReplicas < 1 {
		return fmt.Errorf("%w: hpa.spec.maxReplicas must be at least 1, got %d", ErrInvalidInput, spec.MaxReplicas)
	}
	if spec.MinReplicas != nil && (*spec.MinReplicas < 0 || *spec.MinReplicas > spec.MaxReplicas) {
		return fmt.Errorf("%w: hpa.spec.minReplicas %d must be between 0 and maxReplicas %d", ErrInvalidInput, *spec.MinReplicas, spec.MaxReplicas)
	}
	if b := spec.Behavior; b != nil {
		for _, rules := range []struct {
			dir string
			r   *autoscalingv2.HPAScalingRules
		}{{"scaleUp", b.ScaleUp}, {"scaleDown", b.ScaleDown}} {
			dir, r := rules.dir, rules.r
			if r == nil {
				continue
			}
			if r.StabilizationWindowSeconds != nil && (*r.StabilizationWindowSeconds < 0 || *r.StabilizationWindowSeconds > 3600) {
				return fmt.Errorf("%w: hpa.spec.behavior.%s.stabilizationWindowSeconds must be within [0, 3600]", ErrInvalidInput, dir)
			}
			if r.SelectPolicy != nil {
				switch *r.SelectPolicy {
				case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect:
				default:
					return fmt.Errorf("%w: hpa.spec.behavior.%s.selectPolicy %q is not Max, Min or Disabled", ErrInvalidInput, dir, *r.SelectPolicy)
				}
			}
			for i, p := range r.Policies {
				if p.Type != autoscalingv2.PodsScalingPolicy && p.Type != autoscalingv2.PercentScalingPolicy {
					return fmt.Errorf("%w: hpa.spec.behavior.%s.policies[%d].type %q is not Pods or Percent", ErrInvalidInput, dir, i, p.Type)
				}
				if p.Value <= 0 {
					return fmt.Errorf("%w: hpa.spec.behavior.%s.policies[%d].value must be greater than 0", ErrInvalidInput, dir, i)
				}
				if p.PeriodSeconds <= 0 || p.PeriodSeconds > 1800 {
					return fmt.Errorf("%w: hpa.spec.behavior.%s.policies[%d].periodSeconds must be within (0, 1800]", ErrInvalidInput, dir, i)
				}
			}
			if r.Tolerance != nil && r.Tolerance.Sign() < 0 {
				return fmt.Errorf("%w: hpa.spec.behavior.%s.tolerance must not be negative", ErrInvalidInput, dir)
			}
		}
	}
	return nil
}

// ValidateMetrics checks spec.metrics as the API server does, which
// refuses an HPA with a metric of no known type, without its source, or
// with a target of 0 or less. Recommend does not check them: the
// controller it follows is given objects the API server accepted, and
// copes with a metric it cannot read (its tests give it one). Specs from
// users, as Scenario and Replay take them, are checked.
func ValidateMetrics(spec *autoscalingv2.HorizontalPodAutoscalerSpec) error {
	for i, m := range spec.Metrics {
		if field, problem := validateMetric(m); problem != "" {
			return fmt.Errorf("%w: %w", ErrInvalidInput, &FieldError{Field: fmt.Sprintf("hpa.spec.metrics[%d]%s", i, field), Problem: problem})
		}
	}
	return nil
}

// FieldError is a field of an input and what is wrong with it.
type FieldError struct {
	// Field is the field's path, such as
	// "hpa.spec.metrics[0].resource.target.averageUtilization".
	Field string
	// Problem says what is wrong, such as "must be greater than 0".
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// validateMetric checks one of spec.metrics as the API server does: a
// known type with its own source and no other, the names the source
// needs (valid as the API server takes them), and a target of a type
// the source takes with its value set, every value given greater than 0,
// and not two values where the controller would read one. It returns the
// field below the metric (".resource.target.averageUtilization", "" for
// the metric itself) and the problem, or "" when there is none.
func validateMetric(m autoscalingv2.MetricSpec) (field, problem string) {
	set := 0
	for _, present := range []bool{m.Object != nil, m.Pods != nil, m.Resource != nil, m.ContainerResource != nil, m.External != nil} {
		if present {
			set++
		}
	}
	var (
		source string
		given  bool
		types  []autoscalingv2.MetricTargetType
		target autoscalingv2.MetricTarget
	)
	valueTypes := []autoscalingv2.MetricTargetType{autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType}
	utilTypes := []autoscalingv2.MetricTargetType{autoscalingv2.UtilizationMetricType, autoscalingv2.AverageValueMetricType}
	switch m.Type {
	case autoscalingv2.ObjectMetricSourceType:
		source, given, types = "object", m.Object != nil, valueTypes
		if given {
			if m.Object.DescribedObject.Kind == "" || m.Object.DescribedObject.Name == "" {
				return ".object.describedObject", "kind and name are required"
			}
			if p := pathSegment(m.Object.DescribedObject.Kind); p != "" {
				return ".object.describedObject.kind", p
			}
			if p := pathSegment(m.Object.DescribedObject.Name); p != "" {
				return ".object.describedObject.name", p
			}
			if p := metricName(m.Object.Metric.Name); p != "" {
				return ".object.metric.name", p
			}
			target = m.Object.Target
		}
	case autoscalingv2.PodsMetricSourceType:
		source, given, types = "pods", m.Pods != nil, []autoscalingv2.MetricTargetType{autoscalingv2.AverageValueMetricType}
		if given {
			if p := metricName(m.Pods.Metric.Name); p != "" {
				return ".pods.metric.name", p
			}
			target = m.Pods.Target
		}
	case autoscalingv2.ResourceMetricSourceType:
		source, given, types = "resource", m.Resource != nil, utilTypes
		if given {
			if m.Resource.Name == "" {
				return ".resource.name", "is required"
			}
			target = m.Resource.Target
		}
	case autoscalingv2.ContainerResourceMetricSourceType:
		source, given, types = "containerResource", m.ContainerResource != nil, utilTypes
		if given {
			if m.ContainerResource.Name == "" || m.ContainerResource.Container == "" {
				return ".containerResource", "name and container are required"
			}
			if errs := validation.IsDNS1123Label(m.ContainerResource.Container); len(errs) > 0 {
				return ".containerResource.container", errs[0]
			}
			target = m.ContainerResource.Target
		}
	case autoscalingv2.ExternalMetricSourceType:
		source, given, types = "external", m.External != nil, valueTypes
		if given {
			if p := metricName(m.External.Metric.Name); p != "" {
				return ".external.metric.name", p
			}
			target = m.External.Target
		}
	default:
		return ".type", fmt.Sprintf("%q is not Object, Pods, Resource, ContainerResource or External", m.Type)
	}
	switch {
	case !given:
		return "." + source, "is required for type " + string(m.Type)
	case set > 1:
		return "", fmt.Sprintf("type %s takes .%s and no other source", m.Type, source)
	}
	field = "." + source + ".target"
	if !slices.Contains(types, target.Type) {
		return field + ".type", fmt.Sprintf("%q is not one of %v, which type %s takes", target.Type, types, m.Type)
	}
	switch target.Type {
	case autoscalingv2.UtilizationMetricType:
		if target.AverageUtilization == nil || *target.AverageUtilization <= 0 {
			return field + ".averageUtilization", "must be greater than 0"
		}
	case autoscalingv2.ValueMetricType:
		if target.Value == nil || target.Value.Sign() <= 0 {
			return field + ".value", "must be greater than 0"
		}
	case autoscalingv2.AverageValueMetricType:
		if target.AverageValue == nil || target.AverageValue.Sign() <= 0 {
			return field + ".averageValue", "must be greater than 0"
		}
	}
	// A value the type does not read is still checked, as the API server
	// checks every value given; and where the controller reads one value
	// before the type (averageValue for a resource, for an external
	// metric), the API server refuses a second.
	switch {
	case target.AverageUtilization != nil && *target.AverageUtilization <= 0:
		return field + ".averageUtilization", "must be greater than 0"
	case target.Value != nil && target.Value.Sign() <= 0:
		return field + ".value", "must be greater than 0"
	case target.AverageValue != nil && target.AverageValue.Sign() <= 0:
		return field + ".averageValue", "must be greater than 0"
	case (m.Type == autoscalingv2.ResourceMetricSourceType || m.Type == autoscalingv2.ContainerResourceMetricSourceType) &&
		target.AverageUtilization != nil && target.AverageValue != nil:
		return field + ".averageValue", "may not be set with averageUtilization"
	case m.Type == autoscalingv2.ExternalMetricSourceType && target.Value != nil && target.AverageValue != nil:
		return field + ".value", "may not be set with averageValue"
	}
	return "", ""
}

// metricName checks a metric's name as the API server does: required,
// and a valid path segment.
func metricName(name string) string {
	if name == "" {
		return "is required"
	}
	return pathSegment(name)
}

// pathSegment is the API server's problem with name as a path segment
// (".", "..", or one holding "/" or "%"), or "".
func pathSegment(name string) string {
	if errs := content.IsPathSegmentName(name); len(errs) > 0 {
		return fmt.Sprintf("%q %s", name, errs[0])
	}
	return ""
}
