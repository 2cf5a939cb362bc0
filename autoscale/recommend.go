package autoscale

import (
	"errors"
	"fmt"
	"math"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Recommend decides one reconciliation of in.HPA the way the Kubernetes
// v1.37 horizontal pod autoscaler controller does. It returns an error
// wrapping ErrInvalidInput only for input it cannot decide on; metrics that
// cannot be computed are reported in the Decision's conditions and
// MetricError, as upstream reports them in the HPA status.
func Recommend(cfg Config, in Input) (Decision, error) {
	if err := cfg.Validate(); err != nil {
		return Decision{}, err
	}
	if err := in.Validate(); err != nil {
		return Decision{}, err
	}
	cfg = cfg.withDefaults()
	r := &reconciler{cfg: cfg, in: &in, hpa: defaultedHPA(in.HPA, cfg)}
	r.conditions = append([]autoscalingv2.HorizontalPodAutoscalerCondition(nil), in.HPA.Status.Conditions...)
	if in.Recommendations != nil {
		r.recommendations = append([]Recommendation{}, in.Recommendations...)
	}
	for _, e := range in.ScaleEvents {
		switch {
		case e.To > e.From:
			r.upEvents = append(r.upEvents, e)
		case e.To < e.From:
			r.downEvents = append(r.downEvents, e)
		}
	}
	return r.reconcile(), nil
}

// reconciler carries one reconciliation's state.
type reconciler struct {
	cfg             Config
	in              *Input
	hpa             *autoscalingv2.HorizontalPodAutoscaler
	conditions      []autoscalingv2.HorizontalPodAutoscalerCondition
	recommendations []Recommendation
	upEvents        []ScaleEvent
	downEvents      []ScaleEvent
}

// defaultedHPA returns a copy of hpa with the API server's defaults.
func defaultedHPA(hpa *autoscalingv2.HorizontalPodAutoscaler, cfg Config) *autoscalingv2.HorizontalPodAutoscaler {
	h := hpa.DeepCopy()
	if h.Spec.MinReplicas == nil {
		one := int32(1)
		h.Spec.MinReplicas = &one
	}
	if len(h.Spec.Metrics) == 0 {
		eighty := int32(80)
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &eighty},
			},
		}}
	}
	if h.Spec.Behavior != nil {
		h.Spec.Behavior.ScaleUp = ScaleUpRules(h.Spec.Behavior.ScaleUp)
		h.Spec.Behavior.ScaleDown = ScaleDownRules(h.Spec.Behavior.ScaleDown)
		if h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds == nil {
			w := saturate32(cfg.DownscaleStabilizationWindow.Seconds())
			h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds = &w
		}
	}
	return h
}

// ScaleUpRules fills the unset fields of rules with the API defaults:
// no stabilization, selectPolicy Max, and 4 pods or 100% per 15s.
func ScaleUpRules(rules *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	zero := int32(0)
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	def := &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: &zero,
		SelectPolicy:               &maxPolicy,
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
	return mergeRules(rules, def)
}

// ScaleDownRules fills the unset fields of rules with the API defaults:
// selectPolicy Max and 100% per 15s. An unset stabilization window stays
// unset; the controller's DownscaleStabilizationWindow (5m) applies.
func ScaleDownRules(rules *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	def := &autoscalingv2.HPAScalingRules{
		SelectPolicy: &maxPolicy,
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
	return mergeRules(rules, def)
}

func mergeRules(from, to *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if from == nil {
		return to
	}
	from = from.DeepCopy()
	if from.SelectPolicy != nil {
		to.SelectPolicy = from.SelectPolicy
	}
	if from.StabilizationWindowSeconds != nil {
		to.StabilizationWindowSeconds = from.StabilizationWindowSeconds
	}
	if from.Policies != nil {
		to.Policies = from.Policies
	}
	if from.Tolerance != nil {
		to.Tolerance = from.Tolerance
	}
	return to
}

func (r *reconciler) tolerances() tolerances {
	t := tolerances{scaleDown: r.cfg.Tolerance, scaleUp: r.cfg.Tolerance}
	b := r.hpa.Spec.Behavior
	if b == nil {
		return t
	}
	if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
		t.scaleDown = b.ScaleDown.Tolerance.AsApproximateFloat64()
	}
	if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
		t.scaleUp = b.ScaleUp.Tolerance.AsApproximateFloat64()
	}
	return t
}

func (r *reconciler) setCondition(t autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, format string, args ...any) {
	var c *autoscalingv2.HorizontalPodAutoscalerCondition
	for i := range r.conditions {
		if r.conditions[i].Type == t {
			c = &r.conditions[i]
			break
		}
	}
	if c == nil {
		r.conditions = append(r.conditions, autoscalingv2.HorizontalPodAutoscalerCondition{Type: t})
		c = &r.conditions[len(r.conditions)-1]
	}
	if c.Status != status {
		c.LastTransitionTime = metav1.NewTime(r.in.Now)
	}
	c.Status = status
	c.Reason = reason
	c.Message = fmt.Sprintf(format, args...)
}

// removeCondition drops the condition of type t, if any.
func (r *reconciler) removeCondition(t autoscalingv2.HorizontalPodAutoscalerConditionType) {
	kept := r.conditions[:0]
	for _, c := range r.conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	r.conditions = kept
}

// conditionTrue reports whether the HPA's condition of type t is True.
func (r *reconciler) conditionTrue(t autoscalingv2.HorizontalPodAutoscalerConditionType) bool {
	for _, c := range r.conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hasObjectOrExternalMetrics reports whether the HPA has a metric that
// can be read with no pods running, which scaling to zero needs.
func hasObjectOrExternalMetrics(hpa *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ObjectMetricSourceType || m.Type == autoscalingv2.ExternalMetricSourceType {
			return true
		}
	}
	return false
}

func (r *reconciler) reconcile() Decision {
	in := r.in
	current := in.CurrentReplicas
	r.setCondition(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
	if r.recommendations == nil {
		r.recommendations = []Recommendation{{Time: in.Now, Replicas: current}}
	}
	minReplicas := *r.hpa.Spec.MinReplicas
	maxReplicas := r.hpa.Spec.MaxReplicas

	d := Decision{CurrentReplicas: current}
	var desired int32
	rescale := true
	reason := ""

	// Scaling to zero (HPAScaleToZero): at zero replicas the controller
	// decides only when it put the target there itself, as the
	// ScaledToZero condition records; a target scaled to zero by hand
	// disables the HPA.
	scaleToZero := r.cfg.Enabled(GateScaleToZero)
	objectOrExternal := hasObjectOrExternalMetrics(r.hpa)
	scaledToZero := scaleToZero && r.conditionTrue(autoscalingv2.ScaledToZero)
	needsMetrics := true
	switch {
	case current == 0:
		if !((minReplicas != 0 && scaledToZero) || (scaledToZero && objectOrExternal)) {
			needsMetrics, rescale = false, false
			r.setCondition(autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
			if !scaleToZero {
				r.removeCondition(autoscalingv2.ScaledToZero)
			}
		}
	case current > maxReplicas:
		reason = "Current number of replicas above Spec.MaxReplicas"
		desired = maxReplicas
		needsMetrics = false
	case current < minReplicas:
		reason = "Current number of replicas below Spec.MinReplicas"
		desired = minReplicas
		needsMetrics = false
	}
	if needsMetrics {
		metricReplicas, metricName, statuses, err := r.computeReplicasForMetrics(current)
		d.CurrentMetrics = statuses
		if err != nil {
			d.MetricError = err.Error()
		}
		if metricReplicas == -1 {
			d.DesiredReplicas = current
			d.Reason = r.explain(false)
			d.Conditions = r.conditions
			d.Recommendations = r.recommendations
			d.ScaleEvents = r.events()
			return d
		}
		d.MetricReplicas, d.Metric = metricReplicas, metricName
		rescaleMetric := ""
		if metricReplicas > desired {
			desired = metricReplicas
			rescaleMetric = metricName
		}
		if desired > current {
			reason = fmt.Sprintf("%s above target", rescaleMetric)
		}
		if desired < current {
			reason = "All metrics below target"
		}
		if r.hpa.Spec.Behavior == nil {
			desired = r.normalize(current, desired, minReplicas)
		} else {
			desired = r.normalizeWithBehaviors(current, desired, minReplicas)
		}
		// Back from zero after minReplicas was raised: at least minReplicas.
		if current == 0 && minReplicas != 0 && scaledToZero && desired < minReplicas {
			desired = minReplicas
			if reason == "" {
				reason = "Current number of replicas below Spec.MinReplicas"
			}
		}
		rescale = desired != current
	}
	if rescale {
		r.setCondition(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to %d", desired)
		r.storeScaleEvent(current, desired)
		// Every rescale rewrites ScaledToZero, so it is never stale.
		switch {
		case !scaleToZero:
			r.removeCondition(autoscalingv2.ScaledToZero)
		case current > 0 && desired == 0 && minReplicas == 0 && objectOrExternal:
			r.setCondition(autoscalingv2.ScaledToZero, corev1.ConditionTrue, "ScaledToZero", "the HPA controller scaled the workload to zero")
		default:
			r.setCondition(autoscalingv2.ScaledToZero, corev1.ConditionFalse, "NotScaledToZero", "the HPA controller did not scale the workload to zero")
		}
	} else {
		desired = current
	}
	d.DesiredReplicas = desired
	d.Rescale = rescale
	if rescale {
		d.Reason = reason
	} else {
		d.Reason = r.explain(true)
	}
	d.Conditions = r.conditions
	d.Recommendations = r.recommendations
	d.ScaleEvents = r.events()
	return d
}

// explain names the condition that says why the target keeps its size.
func (r *reconciler) explain(computed bool) string {
	var able, active, limited *autoscalingv2.HorizontalPodAutoscalerCondition
	for i := range r.conditions {
		c := &r.conditions[i]
		switch c.Type {
		case autoscalingv2.AbleToScale:
			able = c
		case autoscalingv2.ScalingActive:
			active = c
		case autoscalingv2.ScalingLimited:
			limited = c
		}
	}
	switch {
	case active != nil && active.Status == corev1.ConditionFalse:
		return active.Reason
	case !computed:
		return ""
	case limited != nil && limited.Status == corev1.ConditionTrue:
		return limited.Reason
	case able != nil:
		return able.Reason
	}
	return ""
}

func (r *reconciler) events() []ScaleEvent {
	if len(r.upEvents)+len(r.downEvents) == 0 {
		return nil
	}
	out := make([]ScaleEvent, 0, len(r.upEvents)+len(r.downEvents))
	out = append(out, r.upEvents...)
	return append(out, r.downEvents...)
}

// errMetricSpec marks a metric spec the controller cannot use at all.
var errMetricSpec = errors.New("invalid metric spec")

// computeReplicasForMetrics returns the largest proposal over the metrics.
// As upstream, it returns -1 when nothing can be done: all metrics failed,
// or some failed and the valid ones would scale down.
func (r *reconciler) computeReplicasForMetrics(current int32) (int32, string, []autoscalingv2.MetricStatus, error) {
	specs := r.hpa.Spec.Metrics
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var replicas int32
	var metric string
	invalid := 0
	var firstErr error
	var firstCond autoscalingv2.HorizontalPodAutoscalerCondition
	for i, spec := range specs {
		proposal, name, cond, err := r.computeReplicasForMetric(spec, current, &statuses[i])
		if err != nil {
			if invalid == 0 {
				firstCond, firstErr = cond, err
			}
			invalid++
			continue
		}
		if replicas == 0 || proposal > replicas {
			replicas, metric = proposal, name
		}
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %v", invalid, len(specs), firstErr)
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < current) {
		r.setCondition(firstCond.Type, firstCond.Status, firstCond.Reason, "%s", firstCond.Message)
		return -1, "", statuses, firstErr
	}
	r.setCondition(autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", metric)
	return replicas, metric, statuses, firstErr
}

func unableCondition(reason string, err error) autoscalingv2.HorizontalPodAutoscalerCondition {
	return autoscalingv2.HorizontalPodAutoscalerCondition{
		Type:    autoscalingv2.ScalingActive,
		Status:  corev1.ConditionFalse,
		Reason:  reason,
		Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err),
	}
}

func (r *reconciler) newCalculator() *calculator {
	return &calculator{cfg: r.cfg, in: r.in, tol: r.tolerances(), pods: r.in.Pods}
}

func (r *reconciler) statusReplicas() int32 {
	if r.in.StatusReplicas != nil {
		return *r.in.StatusReplicas
	}
	return r.in.CurrentReplicas
}

// computeReplicasForMetric computes one metric's proposal and status.
func (r *reconciler) computeReplicasForMetric(spec autoscalingv2.MetricSpec, current int32, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	c := r.newCalculator()
	switch spec.Type {
	case autoscalingv2.ResourceMetricSourceType:
		if spec.Resource == nil {
			break
		}
		replicas, value, name, err := r.resourceMetric(c, current, spec.Resource.Target, spec.Resource.Name, "", spec.Type)
		if err != nil {
			err = fmt.Errorf("failed to get %s resource metric value: %v", spec.Resource.Name, err)
			return 0, "", unableCondition("FailedGetResourceMetric", err), err
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, Resource: &autoscalingv2.ResourceMetricStatus{Name: spec.Resource.Name, Current: value}}
		return replicas, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case autoscalingv2.ContainerResourceMetricSourceType:
		if spec.ContainerResource == nil {
			break
		}
		cr := spec.ContainerResource
		replicas, value, name, err := r.resourceMetric(c, current, cr.Target, cr.Name, cr.Container, spec.Type)
		if err != nil {
			err = fmt.Errorf("failed to get %s container metric value: %v", cr.Container, err)
			return 0, "", unableCondition("FailedGetContainerResourceMetric", err), err
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{Name: cr.Name, Container: cr.Container, Current: value}}
		return replicas, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case autoscalingv2.PodsMetricSourceType:
		if spec.Pods == nil {
			break
		}
		ps := spec.Pods
		var err error
		if ps.Target.AverageValue == nil {
			err = errors.New("invalid pods metric source: no average value target was set")
		} else {
			samples := c.podMetricSamples(ps.Metric.Name)
			if len(samples) == 0 {
				err = fmt.Errorf("unable to get metric %s: no metrics returned from custom metrics API", ps.Metric.Name)
			} else {
				replicas, usage, perr := c.plainReplicas(samples, current, ps.Target.AverageValue.MilliValue(), "")
				if perr == nil {
					*status = autoscalingv2.MetricStatus{Type: spec.Type, Pods: &autoscalingv2.PodsMetricStatus{
						Metric:  ps.Metric,
						Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(usage, resource.DecimalSI)},
					}}
					return replicas, "pods metric " + ps.Metric.Name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
				}
				err = perr
			}
		}
		err = fmt.Errorf("failed to get pods metric value: %v", err)
		return 0, "", unableCondition("FailedGetPodsMetric", err), err
	case autoscalingv2.ObjectMetricSourceType:
		if spec.Object == nil {
			break
		}
		return r.objectMetric(c, spec.Object, current, status)
	case autoscalingv2.ExternalMetricSourceType:
		if spec.External == nil {
			break
		}
		return r.externalMetric(c, spec.External, current, status)
	}
	err := fmt.Errorf("unknown metric source type %q: %w", string(spec.Type), errMetricSpec)
	return 0, "", unableCondition("InvalidMetricSourceType", err), err
}

func (r *reconciler) resourceMetric(c *calculator, current int32, target autoscalingv2.MetricTarget, res corev1.ResourceName, container string, typ autoscalingv2.MetricSourceType) (int32, autoscalingv2.MetricValueStatus, string, error) {
	if target.AverageValue != nil {
		samples := c.resourceSamples(res, container)
		if len(samples) == 0 {
			return 0, autoscalingv2.MetricValueStatus{}, "", fmt.Errorf("failed to get %s usage: unable to get metrics for resource %s: no metrics returned from resource metrics API", res, res)
		}
		replicas, raw, err := c.plainReplicas(samples, current, target.AverageValue.MilliValue(), res)
		if err != nil {
			return 0, autoscalingv2.MetricValueStatus{}, "", fmt.Errorf("failed to get %s usage: %v", res, err)
		}
		q := buildQuantity(res, raw)
		return replicas, autoscalingv2.MetricValueStatus{AverageValue: &q}, fmt.Sprintf("%s resource", res), nil
	}
	if target.AverageUtilization == nil {
		return 0, autoscalingv2.MetricValueStatus{}, "", errors.New("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	replicas, util, raw, err := c.resourceReplicas(current, *target.AverageUtilization, res, container)
	if err != nil {
		return 0, autoscalingv2.MetricValueStatus{}, "", fmt.Errorf("failed to get %s utilization: %v", res, err)
	}
	name := fmt.Sprintf("%s resource utilization (percentage of request)", res)
	if typ == autoscalingv2.ContainerResourceMetricSourceType {
		name = fmt.Sprintf("%s container resource utilization (percentage of request)", res)
	}
	q := buildQuantity(res, raw)
	return replicas, autoscalingv2.MetricValueStatus{AverageUtilization: &util, AverageValue: &q}, name, nil
}

// buildQuantity formats memory in binary units as metrics-server does.
func buildQuantity(res corev1.ResourceName, milli int64) resource.Quantity {
	format := resource.DecimalSI
	if res == corev1.ResourceMemory {
		format = resource.BinarySI
	}
	return *resource.NewMilliQuantity(milli, format)
}

func (r *reconciler) objectMetric(c *calculator, obj *autoscalingv2.ObjectMetricSource, current int32, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	fail := func(err error) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
		err = fmt.Errorf("failed to get object metric value: %v", err)
		return 0, "", unableCondition("FailedGetObjectMetric", err), err
	}
	st := autoscalingv2.MetricStatus{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricStatus{DescribedObject: obj.DescribedObject, Metric: obj.Metric}}
	q, ok := r.in.ObjectMetrics[obj.Metric.Name]
	getErr := fmt.Errorf("unable to get metric %s: no value on %s %s", obj.Metric.Name, obj.DescribedObject.Kind, obj.DescribedObject.Name)
	switch {
	case obj.Target.Type == autoscalingv2.ValueMetricType && obj.Target.Value != nil:
		if !ok {
			return fail(getErr)
		}
		usage := q.MilliValue()
		replicas, err := c.usageRatioReplicas(current, float64(usage)/float64(obj.Target.Value.MilliValue()))
		if err != nil {
			return fail(err)
		}
		st.Object.Current.Value = resource.NewMilliQuantity(usage, resource.DecimalSI)
		*status = st
		return replicas, fmt.Sprintf("%s metric %s", obj.DescribedObject.Kind, obj.Metric.Name), autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case obj.Target.Type == autoscalingv2.AverageValueMetricType && obj.Target.AverageValue != nil:
		if !ok {
			return fail(fmt.Errorf("failed to get %s object metric: %v", obj.Metric.Name, getErr))
		}
		replicas, usage := c.perPodReplicas(r.statusReplicas(), q.MilliValue(), obj.Target.AverageValue.MilliValue())
		st.Object.Current.AverageValue = resource.NewMilliQuantity(usage, resource.DecimalSI)
		*status = st
		return replicas, fmt.Sprintf("external metric %s(%+v)", obj.Metric.Name, obj.Metric.Selector), autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	}
	return fail(errors.New("invalid object metric source: neither a value target nor an average value target was set"))
}

func (r *reconciler) externalMetric(c *calculator, ext *autoscalingv2.ExternalMetricSource, current int32, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	fail := func(err error) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
		err = fmt.Errorf("failed to get %s external metric value: %v", ext.Metric.Name, err)
		return 0, "", unableCondition("FailedGetExternalMetric", err), err
	}
	name := fmt.Sprintf("external metric %s(%+v)", ext.Metric.Name, ext.Metric.Selector)
	q, ok := r.in.ExternalMetrics[ext.Metric.Name]
	getErr := fmt.Errorf("unable to get external metric %s: no value", ext.Metric.Name)
	st := autoscalingv2.MetricStatus{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{Metric: ext.Metric}}
	switch {
	case ext.Target.AverageValue != nil:
		if !ok {
			return fail(getErr)
		}
		replicas, usage := c.perPodReplicas(r.statusReplicas(), q.MilliValue(), ext.Target.AverageValue.MilliValue())
		st.External.Current.AverageValue = resource.NewMilliQuantity(usage, resource.DecimalSI)
		*status = st
		return replicas, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case ext.Target.Value != nil:
		if !ok {
			return fail(getErr)
		}
		usage := q.MilliValue()
		replicas, err := c.usageRatioReplicas(current, float64(usage)/float64(ext.Target.Value.MilliValue()))
		if err != nil {
			return fail(err)
		}
		st.External.Current.Value = resource.NewMilliQuantity(usage, resource.DecimalSI)
		*status = st
		return replicas, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	}
	return fail(errors.New("invalid external metric source: neither a value target nor an average value target was set"))
}

// normalize applies the rules used without a behavior: the maximum over
// the downscale stabilization window, min/max, and max(2*current, 4).
func (r *reconciler) normalize(current, prenormalized, minReplicas int32) int32 {
	stabilized := r.stabilize(prenormalized)
	if stabilized != prenormalized {
		r.setCondition(autoscalingv2.AbleToScale, corev1.ConditionTrue, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
	} else {
		r.setCondition(autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	desired, reason, message := convertDesiredReplicasWithRules(current, stabilized, minReplicas, r.hpa.Spec.MaxReplicas)
	if desired == stabilized {
		r.setCondition(autoscalingv2.ScalingLimited, corev1.ConditionFalse, reason, "%s", message)
	} else {
		r.setCondition(autoscalingv2.ScalingLimited, corev1.ConditionTrue, reason, "%s", message)
	}
	return desired
}

// stabilize returns the highest recommendation within the downscale
// window and records prenormalized, reusing one expired slot.
func (r *reconciler) stabilize(prenormalized int32) int32 {
	best := prenormalized
	cutoff := r.in.Now.Add(-r.cfg.DownscaleStabilizationWindow)
	old := -1
	for i, rec := range r.recommendations {
		if rec.Time.Before(cutoff) {
			old = i
		} else if rec.Replicas > best {
			best = rec.Replicas
		}
	}
	r.record(old, prenormalized)
	return best
}

func (r *reconciler) record(old int, replicas int32) {
	rec := Recommendation{Time: r.in.Now, Replicas: replicas}
	if old >= 0 {
		r.recommendations[old] = rec
	} else {
		r.recommendations = append(r.recommendations, rec)
	}
}

func convertDesiredReplicasWithRules(current, desired, minReplicas, maxReplicas int32) (int32, string, string) {
	scaleUpLimit := calculateScaleUpLimit(current)
	maxAllowed := maxReplicas
	reason, message := "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if maxReplicas > scaleUpLimit {
		maxAllowed = scaleUpLimit
		reason, message = "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	if desired < minReplicas {
		return minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	}
	if desired > maxAllowed {
		return maxAllowed, reason, message
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

func calculateScaleUpLimit(current int32) int32 {
	return saturate32(math.Max(2.0*float64(current), 4.0))
}
