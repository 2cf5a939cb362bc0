package autoscale

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

// normalizeWithBehaviors applies spec.behavior: stabilization over both
// windows, then the scaling policies' rate limits, then min/max.
func (r *reconciler) normalizeWithBehaviors(current, prenormalized, minReplicas int32) int32 {
	b := r.hpa.Spec.Behavior
	stabilized, reason, message := r.stabilizeWithBehaviors(current, prenormalized, b.ScaleUp, b.ScaleDown)
	if stabilized != prenormalized {
		r.setCondition(autoscalingv2.AbleToScale, corev1.ConditionTrue, reason, "%s", message)
	} else {
		r.setCondition(autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	desired, reason, message := convertDesiredReplicasWithBehaviorRate(r.in.Now, rateArgs{
		up: b.ScaleUp, down: b.ScaleDown,
		minReplicas: minReplicas, maxReplicas: r.hpa.Spec.MaxReplicas,
		current: current, desired: stabilized,
		upEvents: r.upEvents, downEvents: r.downEvents,
	})
	if desired == stabilized {
		r.setCondition(autoscalingv2.ScalingLimited, corev1.ConditionFalse, reason, "%s", message)
	} else {
		r.setCondition(autoscalingv2.ScalingLimited, corev1.ConditionTrue, reason, "%s", message)
	}
	return desired
}

// stabilizeWithBehaviors keeps the recommendation between the lowest
// recommendation of the scale-up window and the highest of the scale-down
// window, and records the unstabilized one, reusing a slot that expired
// for both windows.
func (r *reconciler) stabilizeWithBehaviors(current, desired int32, up, down *autoscalingv2.HPAScalingRules) (int32, string, string) {
	now := r.in.Now
	upRec, downRec := desired, desired
	upCutoff := now.Add(-time.Second * time.Duration(windowSeconds(up)))
	downCutoff := now.Add(-time.Second * time.Duration(windowSeconds(down)))
	old := -1
	for i, rec := range r.recommendations {
		if rec.Time.After(upCutoff) {
			upRec = min(rec.Replicas, upRec)
		}
		if rec.Time.After(downCutoff) {
			downRec = max(rec.Replicas, downRec)
		}
		if rec.Time.Before(upCutoff) && rec.Time.Before(downCutoff) {
			old = i
		}
	}
	recommendation := current
	if recommendation < upRec {
		recommendation = upRec
	}
	if recommendation > downRec {
		recommendation = downRec
	}
	r.record(old, desired)
	if desired >= current {
		return recommendation, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	}
	return recommendation, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
}

func windowSeconds(r *autoscalingv2.HPAScalingRules) int32 {
	if r == nil || r.StabilizationWindowSeconds == nil {
		return 0
	}
	return *r.StabilizationWindowSeconds
}

// rateArgs are the inputs of the policy rate limit.
type rateArgs struct {
	up, down                 *autoscalingv2.HPAScalingRules
	minReplicas, maxReplicas int32
	current, desired         int32
	upEvents, downEvents     []ScaleEvent
}

// convertDesiredReplicasWithBehaviorRate limits the change to what the
// policies allow over their periods, given the recent scale events.
func convertDesiredReplicasWithBehaviorRate(now time.Time, a rateArgs) (int32, string, string) {
	switch {
	case a.desired > a.current:
		limit := scaleUpLimitWithRules(now, a.current, a.upEvents, a.downEvents, a.up)
		if limit < a.current {
			// Recent scale-ups used up the budget; do not shrink because of it.
			limit = a.current
		}
		maxAllowed := a.maxReplicas
		reason, message := "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxAllowed > limit {
			maxAllowed = limit
			reason, message = "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if a.desired > maxAllowed {
			return maxAllowed, reason, message
		}
	case a.desired < a.current:
		limit := scaleDownLimitWithRules(now, a.current, a.upEvents, a.downEvents, a.down)
		if limit > a.current {
			limit = a.current
		}
		minAllowed := a.minReplicas
		reason, message := "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minAllowed < limit {
			minAllowed = limit
			reason, message = "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if a.desired < minAllowed {
			return minAllowed, reason, message
		}
	}
	return a.desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// replicasChangePerPeriod sums the changes of events newer than period.
func replicasChangePerPeriod(now time.Time, periodSeconds int32, events []ScaleEvent) int32 {
	cutoff := now.Add(-time.Second * time.Duration(periodSeconds))
	var n int32
	for _, e := range events {
		if e.Time.After(cutoff) {
			n += abs32(e.To - e.From)
		}
	}
	return n
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

func scaleUpLimitWithRules(now time.Time, current int32, upEvents, downEvents []ScaleEvent, rules *autoscalingv2.HPAScalingRules) int32 {
	var result int32
	var pick func(int32, int32) int32
	switch *rules.SelectPolicy {
	case autoscalingv2.DisabledPolicySelect:
		return current
	case autoscalingv2.MinChangePolicySelect:
		result, pick = math.MaxInt32, minInt32
	default:
		result, pick = math.MinInt32, maxInt32
	}
	for _, p := range rules.Policies {
		added := replicasChangePerPeriod(now, p.PeriodSeconds, upEvents)
		deleted := replicasChangePerPeriod(now, p.PeriodSeconds, downEvents)
		start := current - added + deleted
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = saturate32(float64(start) + float64(p.Value))
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up so that a small percentage still adds a pod.
			proposed = saturate32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

func scaleDownLimitWithRules(now time.Time, current int32, upEvents, downEvents []ScaleEvent, rules *autoscalingv2.HPAScalingRules) int32 {
	var result int32
	var pick func(int32, int32) int32
	switch *rules.SelectPolicy {
	case autoscalingv2.DisabledPolicySelect:
		return current
	case autoscalingv2.MinChangePolicySelect:
		result, pick = math.MinInt32, maxInt32
	default:
		result, pick = math.MaxInt32, minInt32
	}
	for _, p := range rules.Policies {
		added := replicasChangePerPeriod(now, p.PeriodSeconds, upEvents)
		deleted := replicasChangePerPeriod(now, p.PeriodSeconds, downEvents)
		start := current - added + deleted
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = saturate32(float64(start) - float64(p.Value))
		case autoscalingv2.PercentScalingPolicy:
			proposed = saturate32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

func minInt32(a, b int32) int32 { return min(a, b) }
func maxInt32(a, b int32) int32 { return max(a, b) }

func longestPolicyPeriod(rules *autoscalingv2.HPAScalingRules) int32 {
	var longest int32
	if rules == nil {
		return 0
	}
	for _, p := range rules.Policies {
		longest = max(longest, p.PeriodSeconds)
	}
	return longest
}

// storeScaleEvent records a rescale for HPAs with a behavior, reusing the
// last slot older than the direction's longest policy period.
func (r *reconciler) storeScaleEvent(prev, next int32) {
	b := r.hpa.Spec.Behavior
	if b == nil {
		return
	}
	e := ScaleEvent{Time: r.in.Now, From: prev, To: next}
	if next > prev {
		r.upEvents = storeEvent(r.in.Now, r.upEvents, longestPolicyPeriod(b.ScaleUp), e)
	} else {
		r.downEvents = storeEvent(r.in.Now, r.downEvents, longestPolicyPeriod(b.ScaleDown), e)
	}
}

func storeEvent(now time.Time, events []ScaleEvent, longestPeriod int32, e ScaleEvent) []ScaleEvent {
	cutoff := now.Add(-time.Second * time.Duration(longestPeriod))
	old := -1
	for i, ev := range events {
		if ev.Time.Before(cutoff) {
			old = i
		}
	}
	if old >= 0 {
		events[old] = e
		return events
	}
	return append(events, e)
}
