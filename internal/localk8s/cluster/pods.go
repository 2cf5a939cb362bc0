package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/shoal-dev/shoal/internal/localk8s/clusterdns"
	"github.com/shoal-dev/shoal/internal/localk8s/ingress"
	"github.com/shoal-dev/shoal/internal/localk8s/kubelet"
)

type pod struct {
	name, namespace string
	deploy          *deployment
	revision        string
	ip              netip.Addr
	labels          map[string]string
	spec            *corev1.PodSpec
	annotations     map[string]string
	run             *kubelet.Pod
	created         time.Time
	terminating     bool
}

func (p *pod) key() string { return p.namespace + "/" + p.name }

func (p *pod) ready() bool { return !p.terminating && p.run.Status().Ready }

func (p *pod) restarts() int32 { return p.run.Status().Restarts }

func (c *Cluster) createPodLocked(d *deployment) (*pod, error) {
	if len(c.pods) >= c.cfg.MaxPods {
		err := fmt.Errorf("cluster: this machine runs at most %d pods (--max-pods), all taken", c.cfg.MaxPods)
		c.Event(d.namespace, "Warning", "FailedCreate", "deployment/"+d.name, err.Error())
		return nil, err
	}
	ip, err := c.podIPs.get()
	if err != nil {
		c.Event(d.namespace, "Warning", "FailedCreate", "deployment/"+d.name, err.Error())
		return nil, err
	}
	var name string
	r := rand.New(rand.NewPCG(uint64(c.cfg.Now().UnixNano()), uint64(len(c.pods))))
	for {
		name = d.name + "-" + d.revision + "-" + randomSuffix(r)
		if c.pods[d.namespace+"/"+name] == nil {
			break
		}
	}
	t := d.template.DeepCopy()
	lbls := map[string]string{}
	for k, v := range t.Labels {
		lbls[k] = v
	}
	lbls["pod-template-hash"] = d.revision
	p := &pod{
		name: name, namespace: d.namespace, deploy: d, revision: d.revision, ip: ip,
		labels: lbls, spec: &t.Spec, annotations: t.Annotations, created: c.cfg.Now(),
	}
	objects := c.cfg.Objects
	obj := "pod/" + name
	run, err := kubelet.Start(kubelet.Config{
		Name:        name,
		Namespace:   d.namespace,
		UID:         name,
		IP:          ip,
		Spec:        t.Spec,
		Labels:      lbls,
		Annotations: t.Annotations,
		Binary:      c.cfg.Binary,
		Lookup: func(kind, n, key string) (string, error) {
			return objects.lookup(d.namespace, kind, n, key)
		},
		LookupAll: func(kind, n string) (map[string]string, error) {
			return objects.lookupAll(d.namespace, kind, n)
		},
		ResolvConf: c.resolvConf[d.namespace],
		LogDir:     filepath.Join(c.cfg.RunDir, "logs"),
		Logger:     c.log,
		OnEvent: func(e kubelet.Event) {
			// kubelet reports events from inside Start, under c.mu; Event
			// takes only the event log's lock.
			c.Event(d.namespace, e.Type, e.Reason, obj, e.Message)
		},
		OnChange:   c.poke,
		BackOff:    c.cfg.BackOff,
		MaxBackOff: c.cfg.MaxBackOff,
	})
	if err != nil {
		c.podIPs.put(ip)
		c.Event(d.namespace, "Warning", "FailedCreate", "deployment/"+d.name, err.Error())
		return nil, fmt.Errorf("cluster: deployment %s/%s: %w", d.namespace, d.name, err)
	}
	p.run = run
	c.pods[p.key()] = p
	c.Event(d.namespace, "Normal", "Scheduled", obj, fmt.Sprintf("Successfully assigned %s/%s to localhost with IP %s", d.namespace, name, ip))
	return p, nil
}

// terminateLocked takes p out of every endpoint set at once and terminates
// it in the background as the kubelet does; the pod leaves the cluster when
// its processes have exited.
func (c *Cluster) terminateLocked(p *pod, reason string) {
	if p.terminating {
		return
	}
	p.terminating = true
	c.Event(p.namespace, "Normal", reason, "pod/"+p.name, "Stopping container(s)")
	c.publishLocked()
	c.podWG.Go(func() {
		if err := p.run.Terminate(context.Background()); err != nil {
			c.log.Warn("terminate pod", "pod", p.name, "err", err)
		}
		<-p.run.Done()
		c.mu.Lock()
		delete(c.pods, p.key())
		delete(c.loads, p.key())
		c.podIPs.put(p.ip)
		c.mu.Unlock()
		c.poke()
	})
}

// publishLocked turns ready pods into endpoints and hands them to the
// Service front doors, the DNS server and the Ingress.
func (c *Cluster) publishLocked() {
	table := clusterdns.Table{}
	backends := map[ingress.Backend][]netip.AddrPort{}
	for _, s := range c.services {
		ready := c.readyPodsLocked(s.namespace, s.obj.Spec.Selector)
		rec := clusterdns.Record{Headless: !s.ip.IsValid()}
		if s.ip.IsValid() {
			rec.Addrs = []netip.Addr{s.ip}
		} else {
			for _, p := range ready {
				rec.Addrs = append(rec.Addrs, p.ip)
			}
		}
		s.endpoints = s.endpoints[:0]
		for i, sp := range s.obj.Spec.Ports {
			var eps []netip.AddrPort
			for _, p := range ready {
				if port, ok := targetPort(p.spec, sp); ok {
					eps = append(eps, netip.AddrPortFrom(p.ip, port))
				}
			}
			// SRV answers carry the port a client connects to: the
			// Service's, or for a headless Service the endpoints'.
			srvPort := uint16(sp.Port)
			if !s.ip.IsValid() && len(eps) > 0 {
				srvPort = eps[0].Port()
			}
			rec.Ports = append(rec.Ports, clusterdns.Port{Name: sp.Name, Protocol: "TCP", Port: srvPort})
			if i < len(s.proxies) {
				s.proxies[i].SetEndpoints(eps)
			}
			s.endpoints = append(s.endpoints, eps...)
			backends[ingress.Backend{Namespace: s.namespace, Service: s.obj.Name, Port: portNumber(sp.Port)}] = eps
			if sp.Name != "" {
				backends[ingress.Backend{Namespace: s.namespace, Service: s.obj.Name, Port: portName(sp.Name)}] = eps
			}
		}
		table[clusterdns.Key{Namespace: s.namespace, Service: s.obj.Name}] = rec
	}
	c.backends.Store(&backends)
	if c.dns != nil {
		c.dns.Update(table)
	}
}

func (c *Cluster) readyPodsLocked(ns string, selector map[string]string) []*pod {
	if len(selector) == 0 {
		return nil // a Service without selector has endpoints managed elsewhere
	}
	sel := labels.SelectorFromSet(selector)
	var out []*pod
	for _, p := range c.pods {
		if p.namespace == ns && p.ready() && sel.Matches(labels.Set(p.labels)) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *pod) int { return a.ip.Compare(b.ip) })
	return out
}

// targetPort finds the container port a Service port sends to.
func targetPort(spec *corev1.PodSpec, sp corev1.ServicePort) (uint16, bool) {
	tp := sp.TargetPort
	if tp.StrVal == "" && tp.IntVal == 0 {
		return uint16(sp.Port), true
	}
	if tp.StrVal == "" {
		if tp.IntVal <= 0 || tp.IntVal > 65535 {
			return 0, false
		}
		return uint16(tp.IntVal), true
	}
	if n, err := strconv.ParseUint(tp.StrVal, 10, 16); err == nil && n > 0 {
		return uint16(n), true
	}
	for _, ct := range spec.Containers {
		for _, cp := range ct.Ports {
			if cp.Name == tp.StrVal {
				return uint16(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}
