package autoscale

import (
	"errors"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// tolerances is the usage-ratio band inside which no scaling happens.
type tolerances struct {
	scaleDown float64
	scaleUp   float64
}

func (t tolerances) isWithin(usageRatio float64) bool {
	return (1.0-t.scaleDown) <= usageRatio && usageRatio <= (1.0+t.scaleUp)
}

// podSample is one pod's metric value in milli-units.
type podSample struct {
	value     int64
	timestamp time.Time
}

// calculator is the pure counterpart of upstream's ReplicaCalculator: the
// pod list and metric values come from the Input instead of listers and
// metrics clients.
type calculator struct {
	cfg  Config
	in   *Input
	tol  tolerances
	pods []Pod
}

var (
	errNoPods = errors.New("no pods returned by selector while calculating replica count")
	// errNoTargetedMetrics matches upstream's message when only unready or
	// ignored pods had samples.
	errNoTargetedMetrics = errors.New("did not receive metrics for targeted pods (pods might be unready)")
)

// resourceSamples returns each pod's usage of a resource (or of one
// container's), as metrics-server would report it; pods without a sample
// are absent.
func (c *calculator) resourceSamples(res corev1.ResourceName, container string) map[string]podSample {
	out := make(map[string]podSample, len(c.pods))
	for _, p := range c.pods {
		ts := c.in.Now
		if p.MetricTime != nil {
			ts = *p.MetricTime
		}
		if len(p.Containers) == 0 {
			if container != "" {
				continue
			}
			if q, ok := p.Usage[res]; ok {
				out[p.Name] = podSample{value: q.MilliValue(), timestamp: ts}
			}
			continue
		}
		var sum int64
		found, missing := false, false
		for _, ct := range p.Containers {
			if container != "" && ct.Name != container {
				continue
			}
			q, ok := ct.Usage[res]
			if !ok {
				missing = true
				break
			}
			found = true
			sum += q.MilliValue()
		}
		if found && !missing {
			out[p.Name] = podSample{value: sum, timestamp: ts}
		}
	}
	return out
}

// podMetricSamples returns each pod's value of a Pods metric.
func (c *calculator) podMetricSamples(name string) map[string]podSample {
	out := make(map[string]podSample, len(c.pods))
	for _, p := range c.pods {
		if q, ok := p.Metrics[name]; ok {
			out[p.Name] = podSample{value: q.MilliValue(), timestamp: c.in.Now}
		}
	}
	return out
}

// groupPods sorts pods as upstream does: failed and deleted pods are
// ignored; pending pods, and for CPU pods that are unready or whose sample
// may predate readiness, are unready; running pods without a sample are
// missing; the rest are ready.
func (c *calculator) groupPods(samples map[string]podSample, res corev1.ResourceName) (readyCount int, unready, missing, ignored map[string]bool) {
	unready, missing, ignored = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range c.pods {
		phase := p.Phase
		if phase == "" {
			phase = corev1.PodRunning
		}
		if p.Deleted || phase == corev1.PodFailed {
			ignored[p.Name] = true
			continue
		}
		if phase == corev1.PodPending {
			unready[p.Name] = true
			continue
		}
		s, found := samples[p.Name]
		if !found {
			missing[p.Name] = true
			continue
		}
		if res == corev1.ResourceCPU {
			var isUnready bool
			if p.StartTime == nil {
				isUnready = true
			} else if p.StartTime.Add(c.cfg.CPUInitializationPeriod).After(c.in.Now) {
				// Inside the initialization period a sample counts only if
				// the pod is ready and the sample's window starts after the
				// pod turned ready.
				window := c.cfg.MetricWindow
				if p.MetricWindow > 0 {
					window = p.MetricWindow
				}
				isUnready = !p.Ready || s.timestamp.Before(p.ReadyTransitionTime.Add(window))
			} else {
				// Afterwards, only a pod that has never been ready is doubted.
				isUnready = !p.Ready && p.StartTime.Add(c.cfg.InitialReadinessDelay).After(p.ReadyTransitionTime)
			}
			if isUnready {
				unready[p.Name] = true
				continue
			}
		}
		readyCount++
	}
	return readyCount, unready, missing, ignored
}

// requests returns each pod's request of a resource (or one container's).
func (c *calculator) requests(res corev1.ResourceName, container string) (map[string]int64, error) {
	out := make(map[string]int64, len(c.pods))
	for _, p := range c.pods {
		if len(p.Containers) == 0 {
			if container != "" {
				return nil, fmt.Errorf("container %s not found in Pod %s", container, p.Name)
			}
			q, ok := p.Requests[res]
			if !ok {
				return nil, fmt.Errorf("missing pod-level request for %s in Pod %s", res, p.Name)
			}
			out[p.Name] = q.MilliValue()
			continue
		}
		var sum int64
		found := false
		for _, ct := range p.Containers {
			if container != "" && ct.Name != container {
				continue
			}
			q, ok := ct.Requests[res]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", res, ct.Name, p.Name)
			}
			sum += q.MilliValue()
			found = true
		}
		if container != "" && !found {
			return nil, fmt.Errorf("container %s not found in Pod %s", container, p.Name)
		}
		out[p.Name] = sum
	}
	return out, nil
}

// utilizationRatio mirrors metrics.GetResourceUtilizationRatio: integer
// percent utilization over pods with both a sample and a request.
func utilizationRatio(samples map[string]podSample, requests map[string]int64, target int32) (ratio float64, utilization int32, rawAverage int64, err error) {
	var metricsTotal, requestsTotal int64
	n := 0
	for name, s := range samples {
		req, ok := requests[name]
		if !ok {
			continue
		}
		metricsTotal = addSaturated(metricsTotal, s.value)
		requestsTotal = addSaturated(requestsTotal, req)
		n++
	}
	if requestsTotal == 0 {
		return 0, 0, 0, errors.New("no metrics returned matched known pods")
	}
	// Upstream's int64 percentage, exact while it fits; past it (a demand
	// of millions of pods' worth) the nearest int32, not a wrapped one.
	if metricsTotal <= math.MaxInt64/100 {
		utilization = saturate32(float64((metricsTotal * 100) / requestsTotal))
	} else {
		utilization = saturate32(float64(metricsTotal) / float64(requestsTotal) * 100)
	}
	return float64(utilization) / float64(target), utilization, metricsTotal / int64(n), nil
}

// usageRatio mirrors metrics.GetMetricUsageRatio.
func usageRatio(samples map[string]podSample, target int64) (float64, int64) {
	var total int64
	for _, s := range samples {
		total = addSaturated(total, s.value)
	}
	usage := total / int64(len(samples))
	return float64(usage) / float64(target), usage
}

// resourceReplicas is GetResourceReplicas: a Utilization target.
func (c *calculator) resourceReplicas(current int32, target int32, res corev1.ResourceName, container string) (replicas int32, utilization int32, raw int64, err error) {
	samples := c.resourceSamples(res, container)
	if len(samples) == 0 {
		return 0, 0, 0, fmt.Errorf("unable to get metrics for resource %s: no metrics returned from resource metrics API", res)
	}
	if len(c.pods) == 0 {
		return 0, 0, 0, errNoPods
	}
	readyCount, unready, missing, ignored := c.groupPods(samples, res)
	removeSamples(samples, ignored)
	removeSamples(samples, unready)
	if len(samples) == 0 {
		return 0, 0, 0, errNoTargetedMetrics
	}
	requests, err := c.requests(res, container)
	if err != nil {
		return 0, 0, 0, err
	}
	ratio, utilization, raw, err := utilizationRatio(samples, requests, target)
	if err != nil {
		return 0, 0, 0, err
	}

	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if c.tol.isWithin(ratio) {
			return current, utilization, raw, nil
		}
		return saturate32(math.Ceil(ratio * float64(readyCount))), utilization, raw, nil
	}

	if len(missing) > 0 {
		if ratio < 1.0 {
			// On a scale-down a missing pod counts as using its full request,
			// or the target when the target is above 100%.
			fallback := int64(max(100, target))
			for name := range missing {
				samples[name] = podSample{value: requests[name] * fallback / 100}
			}
		} else if ratio > 1.0 {
			for name := range missing {
				samples[name] = podSample{}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			samples[name] = podSample{}
		}
	}

	newRatio, _, _, err := utilizationRatio(samples, requests, target)
	if err != nil {
		return 0, utilization, raw, err
	}
	if c.tol.isWithin(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return current, utilization, raw, nil
	}
	newReplicas := saturate32(math.Ceil(newRatio * float64(len(samples))))
	if (newRatio < 1.0 && newReplicas > current) || (newRatio > 1.0 && newReplicas < current) {
		return current, utilization, raw, nil
	}
	return newReplicas, utilization, raw, nil
}

// plainReplicas is calcPlainMetricReplicas: an AverageValue target over
// pod samples (resource AverageValue or a Pods metric).
func (c *calculator) plainReplicas(samples map[string]podSample, current int32, target int64, res corev1.ResourceName) (int32, int64, error) {
	if len(c.pods) == 0 {
		return 0, 0, errNoPods
	}
	readyCount, unready, missing, ignored := c.groupPods(samples, res)
	removeSamples(samples, ignored)
	removeSamples(samples, unready)
	if len(samples) == 0 {
		return 0, 0, errNoTargetedMetrics
	}
	ratio, usage := usageRatio(samples, target)

	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if c.tol.isWithin(ratio) {
			return current, usage, nil
		}
		return saturate32(math.Ceil(ratio * float64(readyCount))), usage, nil
	}
	if len(missing) > 0 {
		if ratio < 1.0 {
			for name := range missing {
				samples[name] = podSample{value: target}
			}
		} else if ratio > 1.0 {
			for name := range missing {
				samples[name] = podSample{}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			samples[name] = podSample{}
		}
	}
	newRatio, _ := usageRatio(samples, target)
	if c.tol.isWithin(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return current, usage, nil
	}
	newReplicas := saturate32(math.Ceil(newRatio * float64(len(samples))))
	if (newRatio < 1.0 && newReplicas > current) || (newRatio > 1.0 && newReplicas < current) {
		return current, usage, nil
	}
	return newReplicas, usage, nil
}

// readyPodsCount counts running pods whose Ready condition is true.
func (c *calculator) readyPodsCount() (int64, error) {
	if len(c.pods) == 0 {
		return 0, errNoPods
	}
	var n int64
	for _, p := range c.pods {
		if (p.Phase == "" || p.Phase == corev1.PodRunning) && p.Ready {
			n++
		}
	}
	return n, nil
}

// usageRatioReplicas is getUsageRatioReplicaCount: Object and External
// Value targets. From zero replicas it ignores pods and tolerance so the
// target can scale up from, and down to, zero.
func (c *calculator) usageRatioReplicas(current int32, ratio float64) (int32, error) {
	if current == 0 {
		return saturate32(math.Ceil(ratio)), nil
	}
	if c.tol.isWithin(ratio) {
		return current, nil
	}
	ready, err := c.readyPodsCount()
	if err != nil {
		return 0, fmt.Errorf("unable to calculate ready pods: %s", err)
	}
	f := ratio * float64(ready)
	if f > math.MaxInt32 {
		return math.MaxInt32, nil
	}
	return int32(math.Ceil(f)), nil
}

// perPodReplicas is the AverageValue form of Object and External targets:
// the total divided by the target per pod, against status replicas.
func (c *calculator) perPodReplicas(statusReplicas int32, usage int64, targetPerPod int64) (int32, int64) {
	replicas := statusReplicas
	ratio := float64(usage) / (float64(targetPerPod) * float64(replicas))
	if !c.tol.isWithin(ratio) {
		f := math.Ceil(float64(usage) / float64(targetPerPod))
		if f > float64(math.MaxInt32) {
			replicas = math.MaxInt32
		} else {
			replicas = int32(f)
		}
	}
	if float64(usage) >= float64(math.MaxInt64) {
		return replicas, math.MaxInt64
	}
	if statusReplicas == 0 {
		return replicas, usage
	}
	return replicas, int64(math.Ceil(float64(usage) / float64(statusReplicas)))
}

func removeSamples(samples map[string]podSample, pods map[string]bool) {
	for name := range pods {
		delete(samples, name)
	}
}
