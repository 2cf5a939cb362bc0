package cluster

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RestartedAtAnnotation is the pod template annotation `shoal rollout
// restart` sets, as `kubectl rollout restart` does.
const RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

type deployment struct {
	obj       *appsv1.Deployment
	namespace string
	name      string
	selector  labels.Selector
	replicas  int32
	template  corev1.PodTemplateSpec
	revision  string
}

func newDeployment(d *appsv1.Deployment) (*deployment, error) {
	sel, err := selectorOf(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("%w: Deployment %s/%s: spec.selector: %v", ErrInvalid, nsOf(d.Namespace), d.Name, err)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	dep := &deployment{obj: d, namespace: nsOf(d.Namespace), name: d.Name, selector: sel, replicas: replicas}
	dep.setTemplate(*d.Spec.Template.DeepCopy())
	return dep, nil
}

func (d *deployment) setTemplate(t corev1.PodTemplateSpec) {
	d.template = t
	d.revision = templateHash(t)
}

// templateHash names a pod template as the pod-template-hash label does:
// a short hash in the alphabet Kubernetes uses for generated names.
func templateHash(t corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	h := fnv.New32a()
	h.Write(b)
	return safeEncode(uint64(h.Sum32()), 10)
}

const safeAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func safeEncode(v uint64, n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = safeAlphabet[v%uint64(len(safeAlphabet))]
		v /= uint64(len(safeAlphabet))
		if v == 0 {
			v = uint64(i+1) * 7919
		}
	}
	return string(out)
}

func randomSuffix(r *rand.Rand) string {
	b := make([]byte, 5)
	for i := range b {
		b[i] = safeAlphabet[r.IntN(len(safeAlphabet))]
	}
	return string(b)
}

// rollingParams resolves maxSurge and maxUnavailable against the replica
// count as the deployment controller does: surge rounds up, unavailable
// down, and both zero means one unavailable.
func (d *deployment) rollingParams() (surge, unavailable int) {
	maxSurge := intstr.FromString("25%")
	maxUnavailable := intstr.FromString("25%")
	if ru := d.obj.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			maxSurge = *ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			maxUnavailable = *ru.MaxUnavailable
		}
	}
	n := int(d.replicas)
	surge, _ = intstr.GetScaledValueFromIntOrPercent(&maxSurge, n, true)
	unavailable, _ = intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, n, false)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// reconcileLocked moves d's pods one step toward spec: the replica count
// and, during a rollout, the rolling update's bounds.
func (c *Cluster) reconcileLocked(d *deployment) {
	if c.stopping {
		return
	}
	var cur, old []*pod
	terminating := 0
	for _, p := range c.pods {
		if p.deploy != d {
			continue
		}
		switch {
		case p.terminating:
			terminating++
		case p.revision == d.revision:
			cur = append(cur, p)
		default:
			old = append(old, p)
		}
	}
	want := int(d.replicas)
	if d.obj.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		if len(old) > 0 {
			for _, p := range old {
				c.terminateLocked(p, "Killing")
			}
			c.scaledLocked(d, d.name+"-"+old[0].revision, 0)
			return
		}
		if terminating > 0 {
			return // Recreate starts new pods only once the old are gone
		}
		c.scaleToLocked(d, cur, want)
		return
	}
	if len(old) == 0 {
		c.scaleToLocked(d, cur, want)
		return
	}
	surge, unavailable := d.rollingParams()
	total := len(cur) + len(old)
	if len(cur) < want && total < want+surge {
		n := min(want-len(cur), want+surge-total)
		for range n {
			p, err := c.createPodLocked(d)
			if err != nil {
				break
			}
			cur = append(cur, p)
		}
		c.scaledLocked(d, d.name+"-"+d.revision, len(cur))
	}
	if len(cur) > want {
		c.scaleToLocked(d, cur, want)
		cur = slices.DeleteFunc(cur, func(p *pod) bool { return p.terminating })
	}
	readyCur, readyOld := countReady(cur), countReady(old)
	minAvailable := want - unavailable
	// Old pods that are not ready go first: they serve nothing.
	maxCleanup := len(cur) + len(old) - minAvailable - (len(cur) - readyCur)
	sortVictims(old)
	removed := 0
	for _, p := range old {
		if removed >= maxCleanup {
			break
		}
		if !p.ready() {
			c.terminateLocked(p, "Killing")
			removed++
		}
	}
	if can := readyCur + readyOld - minAvailable; can > 0 {
		for _, p := range old {
			if can == 0 {
				break
			}
			if p.ready() && !p.terminating {
				c.terminateLocked(p, "Killing")
				can--
				removed++
			}
		}
	}
	if removed > 0 {
		left := 0
		for _, p := range old {
			if !p.terminating {
				left++
			}
		}
		c.scaledLocked(d, d.name+"-"+old[0].revision, left)
	}
}

func countReady(ps []*pod) int {
	n := 0
	for _, p := range ps {
		if p.ready() {
			n++
		}
	}
	return n
}

// scaleToLocked creates or terminates pods of the current revision until
// there are want of them.
func (c *Cluster) scaleToLocked(d *deployment, cur []*pod, want int) {
	switch {
	case len(cur) < want:
		for range want - len(cur) {
			if _, err := c.createPodLocked(d); err != nil {
				return
			}
		}
		c.scaledLocked(d, d.name+"-"+d.revision, want)
	case len(cur) > want:
		sortVictims(cur)
		for _, p := range cur[:len(cur)-want] {
			c.terminateLocked(p, "Killing")
		}
		c.scaledLocked(d, d.name+"-"+d.revision, want)
	}
}

func (c *Cluster) scaledLocked(d *deployment, rs string, n int) {
	c.Event(d.namespace, "Normal", "ScalingReplicaSet", "deployment/"+d.name, fmt.Sprintf("Scaled replica set %s to %d", rs, n))
}

// sortVictims orders pods the way the replica set controller picks pods
// to delete: not ready before ready, more restarts before fewer, newer
// before older.
func sortVictims(ps []*pod) {
	slices.SortStableFunc(ps, func(a, b *pod) int {
		if a.ready() != b.ready() {
			if !a.ready() {
				return -1
			}
			return 1
		}
		ra, rb := a.restarts(), b.restarts()
		if ra != rb {
			if ra > rb {
				return -1
			}
			return 1
		}
		return b.created.Compare(a.created)
	})
}
