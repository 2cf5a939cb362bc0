package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/kubeproxy"
)

// ErrNotFound reports a Deployment that is not in the cluster; it wraps
// api.ErrNotFound, which the API answers with 404.
var ErrNotFound = fmt.Errorf("cluster: %w", api.ErrNotFound)

type service struct {
	obj       *corev1.Service
	namespace string
	ip        netip.Addr
	proxies   []*kubeproxy.Proxy // one per spec.ports entry, when ip is valid
	endpoints []netip.AddrPort
}

func portNumber(n int32) networkingv1.ServiceBackendPort {
	return networkingv1.ServiceBackendPort{Number: n}
}

func portName(s string) networkingv1.ServiceBackendPort {
	return networkingv1.ServiceBackendPort{Name: s}
}

// eventLog keeps the latest events, folding repeats into a count as the
// event recorder does.
type eventLog struct {
	mu     sync.Mutex
	max    int
	events []api.Event
}

func (l *eventLog) add(e api.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.events) - 1; i >= 0 && i >= len(l.events)-20; i-- {
		p := &l.events[i]
		if p.Namespace == e.Namespace && p.Object == e.Object && p.Reason == e.Reason && p.Message == e.Message && p.Type == e.Type {
			p.Count++
			p.Time = e.Time
			ev := *p
			l.events = append(slices.Delete(l.events, i, i+1), ev)
			return
		}
	}
	e.Count = 1
	l.events = append(l.events, e)
	if len(l.events) > l.max {
		l.events = slices.Delete(l.events, 0, len(l.events)-l.max)
	}
}

func (l *eventLog) list() []api.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// Event records an event, from the cluster or from outside it (an
// autoscaler's). It takes only the event log's own lock, so it may be
// called with the cluster's lock held, as kubelet's callbacks are.
func (c *Cluster) Event(namespace, typ, reason, object, message string) {
	c.events.add(api.Event{Time: c.cfg.Now(), Namespace: namespace, Type: typ, Reason: reason, Object: object, Message: message})
	c.log.Debug("event", "namespace", namespace, "type", typ, "reason", reason, "object", object, "message", message)
}

// Scale sets a Deployment's replica count, as an autoscaler or `kubectl
// scale` does.
func (c *Cluster) Scale(namespace, name string, replicas int32) error {
	if replicas < 0 {
		return fmt.Errorf("cluster: scale %s/%s: negative replicas %d", namespace, name, replicas)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.deploymentLocked(namespace, name)
	if d == nil {
		return fmt.Errorf("%w: deployment %s/%s", ErrNotFound, namespace, name)
	}
	d.replicas = replicas
	c.poke()
	return nil
}

// Restart starts a rolling restart of a Deployment by stamping its pod
// template, as `kubectl rollout restart` does.
func (c *Cluster) Restart(namespace, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.deploymentLocked(namespace, name)
	if d == nil {
		return fmt.Errorf("%w: deployment %s/%s", ErrNotFound, namespace, name)
	}
	t := *d.template.DeepCopy()
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[RestartedAtAnnotation] = c.cfg.Now().Format(time.RFC3339Nano)
	d.setTemplate(t)
	c.Event(namespace, "Normal", "RolloutRestart", "deployment/"+name, "Restarting pods with revision "+d.revision)
	c.poke()
	return nil
}

func (c *Cluster) deploymentLocked(namespace, name string) *deployment {
	for _, d := range c.deploys {
		if d.name == name && (d.namespace == namespace || namespace == "") {
			return d
		}
	}
	return nil
}

// PodState is one pod as autoscalers and metrics collectors see it.
type PodState struct {
	Namespace, Name string
	Deployment      string
	IP              netip.Addr
	Ready           bool
	Terminating     bool
	Created         time.Time
	StartTime       time.Time
	ReadyTime       time.Time
	// CPURequest is the sum of the containers' CPU requests, in cores.
	CPURequest float64
	// CPUTime is the CPU the pod's processes used so far.
	CPUTime time.Duration
	// MetricsURL is where the pod serves Prometheus metrics: from the
	// prometheus.io/port and /path annotations, else a container port
	// named "admin" or "metrics"; empty when there is none.
	MetricsURL string
}

// Pods returns the Deployment's replica count and its pods.
func (c *Cluster) Pods(namespace, deployment string) (int32, []PodState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.deploymentLocked(namespace, deployment)
	if d == nil {
		return 0, nil, fmt.Errorf("%w: deployment %s/%s", ErrNotFound, namespace, deployment)
	}
	var out []PodState
	for _, p := range c.sortedPodsLocked() {
		if p.deploy == d {
			out = append(out, c.podStateLocked(p))
		}
	}
	return d.replicas, out, nil
}

// AllPods returns every pod.
func (c *Cluster) AllPods() []PodState {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []PodState
	for _, p := range c.sortedPodsLocked() {
		out = append(out, c.podStateLocked(p))
	}
	return out
}

func (c *Cluster) podStateLocked(p *pod) PodState {
	st := p.run.Status()
	return PodState{
		Namespace: p.namespace, Name: p.name, Deployment: p.deploy.name, IP: p.ip,
		Ready: st.Ready && !p.terminating, Terminating: p.terminating, Created: p.created,
		StartTime: st.StartTime, ReadyTime: st.ReadyTime,
		CPURequest: cpuRequest(p.spec), CPUTime: p.run.CPUTime(), MetricsURL: metricsURL(p),
	}
}

func (c *Cluster) sortedPodsLocked() []*pod {
	ps := make([]*pod, 0, len(c.pods))
	for _, p := range c.pods {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *pod) int {
		if a.namespace != b.namespace {
			return compare(a.namespace, b.namespace)
		}
		return compare(a.name, b.name)
	})
	return ps
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cpuRequest(spec *corev1.PodSpec) float64 {
	var sum float64
	for _, ct := range spec.Containers {
		if q, ok := ct.Resources.Requests[corev1.ResourceCPU]; ok {
			sum += q.AsApproximateFloat64()
		}
	}
	return sum
}

func metricsURL(p *pod) string {
	path := "/metrics"
	if v := p.annotations["prometheus.io/path"]; v != "" {
		path = v
	}
	if v := p.annotations["prometheus.io/port"]; v != "" {
		if n, err := strconv.ParseUint(v, 10, 16); err == nil && n > 0 {
			return "http://" + netip.AddrPortFrom(p.ip, uint16(n)).String() + path
		}
	}
	for _, ct := range p.spec.Containers {
		for _, cp := range ct.Ports {
			if cp.Name == "admin" || cp.Name == "metrics" {
				return "http://" + netip.AddrPortFrom(p.ip, uint16(cp.ContainerPort)).String() + path
			}
		}
	}
	return ""
}
