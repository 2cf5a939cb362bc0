package cluster

import (
	"cmp"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// podLoad is a pod's recent load as a metrics collector measured it.
type podLoad struct {
	CPU, RPS, P50, P99 float64
}

// SetLoad records a pod's recent load for snapshots: CPU in cores, requests
// per second and latency quantiles in seconds.
func (c *Cluster) SetLoad(namespace, pod string, cpu, rps, p50, p99 float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pods[namespace+"/"+pod] != nil {
		c.loads[namespace+"/"+pod] = podLoad{CPU: cpu, RPS: rps, P50: p50, P99: p99}
	}
}

const maxHistory = 1800 // an hour of points every 2s per deployment

func (c *Cluster) recordHistory() {
	desired := map[string]int32{}
	if c.cfg.Autoscalers != nil {
		for _, a := range c.cfg.Autoscalers() {
			desired[a.Namespace+"/"+strings.TrimPrefix(a.Target, "deployment/")] = a.Desired
		}
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.deploys {
		info := c.deploymentInfoLocked(d)
		c.history = append(c.history, api.HistoryPoint{
			Time: now, Namespace: d.namespace, Deployment: d.name,
			Replicas: info.Current, Ready: info.Ready, Desired: desired[d.namespace+"/"+d.name],
		})
	}
	if over := len(c.history) - maxHistory*max(1, len(c.deploys)); over > 0 {
		c.history = c.history[over:]
	}
}

func (c *Cluster) deploymentInfoLocked(d *deployment) api.DeploymentInfo {
	info := api.DeploymentInfo{Namespace: d.namespace, Name: d.name, Replicas: d.replicas, Revision: d.revision}
	for _, p := range c.pods {
		if p.deploy != d || p.terminating {
			continue
		}
		info.Current++
		if p.revision == d.revision {
			info.Updated++
		}
		if p.ready() {
			info.Ready++
			info.Available++
		}
	}
	return info
}

// Snapshot returns the cluster's state now.
func (c *Cluster) Snapshot() api.Snapshot {
	var autoscalers []api.AutoscalerInfo
	if c.cfg.Autoscalers != nil {
		autoscalers = c.cfg.Autoscalers()
	}
	s := api.Snapshot{Time: c.cfg.Now(), Autoscalers: autoscalers, Events: c.events.list()}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.deploys {
		s.Deployments = append(s.Deployments, c.deploymentInfoLocked(d))
	}
	for _, p := range c.sortedPodsLocked() {
		st := p.run.Status()
		info := api.PodInfo{
			Namespace: p.namespace, Name: p.name, Deployment: p.deploy.name, Revision: p.revision,
			IP: p.ip.String(), Phase: string(st.Phase), Status: st.Reason, Ready: st.Ready && !p.terminating,
			Terminating: p.terminating, Restarts: st.Restarts, Created: p.created,
			CPURequest: cpuRequest(p.spec),
		}
		if p.terminating {
			info.Status = "Terminating"
		}
		for _, ct := range st.Containers {
			info.PIDs = append(info.PIDs, ct.PID)
		}
		if l, ok := c.loads[p.key()]; ok {
			info.CPU, info.RPS, info.LatencyP50, info.LatencyP99 = l.CPU, l.RPS, l.P50, l.P99
		}
		s.Pods = append(s.Pods, info)
	}
	for _, svc := range c.services {
		info := api.ServiceInfo{Namespace: svc.namespace, Name: svc.obj.Name, Type: "ClusterIP", ClusterIP: "None"}
		if svc.ip.IsValid() {
			info.ClusterIP = svc.ip.String()
		} else {
			info.Type = "Headless"
		}
		for _, sp := range svc.obj.Spec.Ports {
			// An unset targetPort is the port itself, as the API server defaults it.
			tp := sp.TargetPort.String()
			if sp.TargetPort.StrVal == "" && sp.TargetPort.IntVal == 0 {
				tp = strconv.Itoa(int(sp.Port))
			}
			info.Ports = append(info.Ports, fmt.Sprintf("%d->%s/TCP", sp.Port, tp))
		}
		for _, ep := range svc.endpoints {
			info.Endpoints = append(info.Endpoints, ep.String())
		}
		s.Services = append(s.Services, info)
	}
	if c.ing != nil {
		_, port, _ := net.SplitHostPort(c.IngressAddr())
		for _, r := range c.ing.Routes() {
			host := r.Host
			if host == "" {
				host = "127.0.0.1"
			}
			svcPort := r.Backend.Port.Name
			if svcPort == "" {
				svcPort = strconv.Itoa(int(r.Backend.Port.Number))
			}
			s.Ingresses = append(s.Ingresses, api.IngressInfo{
				Namespace: r.Namespace, Name: r.Ingress, Host: r.Host, Path: r.Path,
				Backend: r.Backend.Service + ":" + svcPort,
				URL:     "http://" + host + ":" + port + r.Path,
			})
		}
		for _, r := range c.ing.HTTPRoutes() {
			host := r.Hostname
			if host == "" || strings.HasPrefix(host, "*.") {
				host = strings.Replace(cmp.Or(host, "127.0.0.1"), "*", "any", 1)
			}
			info := api.HTTPRouteInfo{Namespace: r.Namespace, Name: r.Name, Rule: r.Rule, Hostname: r.Hostname, Match: r.MatchText}
			for _, b := range r.Backends {
				info.Backends = append(info.Backends, fmt.Sprintf("%s:%d weight=%d", b.Service, b.Port.Number, b.Weight))
			}
			if path, ok := strings.CutPrefix(r.MatchText, "PathPrefix "); ok {
				info.URL = "http://" + host + ":" + port + path
			} else if path, ok := strings.CutPrefix(r.MatchText, "Exact "); ok {
				info.URL = "http://" + host + ":" + port + strings.Fields(path)[0]
			}
			s.HTTPRoutes = append(s.HTTPRoutes, info)
		}
	}
	s.History = append(s.History, c.history...)
	return s
}
