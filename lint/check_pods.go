package lint

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// container is one container of a workload with its field path.
type container struct {
	w     *workload
	c     *corev1.Container
	field string
}

// containers returns the app containers of every workload; with
// servingOnly, those that declare ports: the ones traffic is routed to,
// which therefore need readiness and a graceful stop.
func (s *set) containers(servingOnly bool) []container {
	var cs []container
	for _, w := range s.workloads {
		for i := range w.template.Spec.Containers {
			c := &w.template.Spec.Containers[i]
			if servingOnly && len(c.Ports) == 0 {
				continue
			}
			cs = append(cs, container{w: w, c: c, field: fmt.Sprintf("%s.spec.containers[%d]", w.tplPath, i)})
		}
	}
	return cs
}

func (c container) finding(r Rule, sub, format string, args ...any) []Finding {
	if c.w.doc.ignores(r.ID) {
		return nil
	}
	field := c.field
	if sub != "" {
		field += "." + sub
	}
	msg := fmt.Sprintf("container %q: ", c.c.Name) + fmt.Sprintf(format, args...)
	return []Finding{c.w.doc.finding(r, field, "%s", msg)}
}

func checkReadiness(s *set) []Finding {
	var fs []Finding
	for _, c := range s.containers(true) {
		if c.c.ReadinessProbe == nil {
			fs = append(fs, c.finding(ruleNoReadiness, "", "serves ports but has no readinessProbe")...)
		}
	}
	return fs
}

// dependencyPaths are health paths that, by the conventions of Shoal and
// of Kubernetes' own components, aggregate checks of other services.
var dependencyPaths = map[string]bool{"/readyz": true, "/healthz": true, "/ready": true, "/health/ready": true}

func checkLiveness(s *set) []Finding {
	var fs []Finding
	for _, c := range s.containers(false) {
		live, ready := c.c.LivenessProbe, c.c.ReadinessProbe
		if live == nil {
			continue
		}
		h := live.HTTPGet
		switch {
		case h != nil && ready != nil && ready.HTTPGet != nil &&
			ready.HTTPGet.Path == h.Path && ready.HTTPGet.Port == h.Port:
			fs = append(fs, c.finding(ruleLivenessDeps, "livenessProbe.httpGet.path",
				"livenessProbe checks %s, the same endpoint as readiness", h.Path)...)
		case h != nil && dependencyPaths[pathOnly(h.Path)]:
			fs = append(fs, c.finding(ruleLivenessDeps, "livenessProbe.httpGet.path",
				"livenessProbe checks %s, which includes dependency checks", h.Path)...)
		case h != nil && !isLocalHost(h.Host):
			fs = append(fs, c.finding(ruleLivenessDeps, "livenessProbe.httpGet.host",
				"livenessProbe checks another host, %s", h.Host)...)
		case live.TCPSocket != nil && !isLocalHost(live.TCPSocket.Host):
			fs = append(fs, c.finding(ruleLivenessDeps, "livenessProbe.tcpSocket.host",
				"livenessProbe connects to another host, %s", live.TCPSocket.Host)...)
		case live.Exec != nil:
			if host := remoteURLHost(live.Exec.Command); host != "" {
				fs = append(fs, c.finding(ruleLivenessDeps, "livenessProbe.exec.command",
					"livenessProbe runs a command that calls another host, %s", host)...)
			}
		}
	}
	return fs
}

func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return strings.TrimSuffix(p, "/")
}

func isLocalHost(h string) bool {
	h = strings.Trim(h, "[]")
	if h == "" || h == "localhost" {
		return true
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.IsLoopback()
	}
	return strings.Contains(h, "$(") // the pod's own address from the downward API
}

// remoteURLHost returns the host of the first URL in an exec command that
// is not the pod itself, or "".
func remoteURLHost(cmd []string) string {
	for _, arg := range cmd {
		for _, tok := range strings.Fields(arg) {
			tok = strings.Trim(tok, `"'`)
			if !strings.Contains(tok, "://") {
				continue
			}
			u, err := url.Parse(tok)
			if err != nil || u.Host == "" {
				continue
			}
			if !isLocalHost(u.Hostname()) {
				return u.Hostname()
			}
		}
	}
	return ""
}

// probeBudget is the parsed shoal.dev/probe-budget annotation.
type probeBudget struct {
	all    time.Duration
	byPath map[string]time.Duration
}

func parseProbeBudget(v string) (probeBudget, error) {
	var b probeBudget
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		path, dur, ok := strings.Cut(part, "=")
		if !ok {
			path, dur = "", part
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 {
			return b, fmt.Errorf("%q is not a positive duration such as 2s", dur)
		}
		if path == "" {
			b.all = d
			continue
		}
		if b.byPath == nil {
			b.byPath = map[string]time.Duration{}
		}
		b.byPath[pathOnly(strings.TrimSpace(path))] = d
	}
	return b, nil
}

func (b probeBudget) of(p *corev1.Probe) time.Duration {
	if p.HTTPGet != nil {
		if d, ok := b.byPath[pathOnly(p.HTTPGet.Path)]; ok {
			return d
		}
	}
	return b.all
}

// slowCheck reports whether a probe is likely to take longer than the 1s
// default: readiness and startup endpoints that consult dependencies, and
// any exec probe, which starts a process in the container.
func slowCheck(kind string, p *corev1.Probe) bool {
	if p.Exec != nil {
		return true
	}
	if p.HTTPGet == nil || kind == "livenessProbe" {
		return false
	}
	switch pathOnly(p.HTTPGet.Path) {
	case "/readyz", "/healthz", "/startupz", "/ready":
		return true
	}
	return false
}

func checkProbeTimeouts(s *set) []Finding {
	var fs []Finding
	for _, c := range s.containers(false) {
		ann := c.w.doc.annotations[AnnotationProbeBudget]
		if v, ok := c.w.template.Annotations[AnnotationProbeBudget]; ok {
			ann = v
		}
		budget, err := parseProbeBudget(ann)
		if err != nil {
			fs = append(fs, c.finding(ruleProbeTimeout, "", "annotation %s: %v", AnnotationProbeBudget, err)...)
			continue
		}
		for _, p := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"startupProbe", c.c.StartupProbe}, {"readinessProbe", c.c.ReadinessProbe}, {"livenessProbe", c.c.LivenessProbe}} {
			if p.probe == nil {
				continue
			}
			timeout := time.Duration(max(p.probe.TimeoutSeconds, 1)) * time.Second
			if b := budget.of(p.probe); b > 0 {
				if timeout < b {
					fs = append(fs, c.finding(ruleProbeTimeout, p.kind,
						"%s timeout %s is shorter than the handler budget %s", p.kind, timeout, b)...)
				}
				continue
			}
			if p.probe.TimeoutSeconds <= 1 && slowCheck(p.kind, p.probe) {
				fs = append(fs, c.finding(ruleProbeTimeout, p.kind,
					"%s timeout is the 1s default on a check that may be slow", p.kind)...)
			}
		}
	}
	return fs
}

// Drain budgets: the least time a pod told to stop must go on accepting
// requests, preStop + DRAIN_DELAY, so that every client has stopped
// sending it new ones before its server closes. A client learns of the
// change through the kind of Service that selects the pod, so the budget
// is per kind. Both are measured: `make -C lab budgets`
// (lab/e2e/budget_test.go) deletes pods on the lab (Kubernetes v1.37,
// one node, the stock CoreDNS Corefile) and times when traffic stops
// reaching them, in both kube-proxy modes; BENCHMARKS.md (rollout budgets)
// has the runs and docs/rollout-budgets.md explains them. They are what
// one small cluster needed: a larger one's kube-proxy takes longer, which
// is why the kit's own settings keep a margin above them.
const (
	// DrainBudgetClusterIP covers a Service whose clients go through
	// kube-proxy (ClusterIP, NodePort, LoadBalancer): new connections stop
	// reaching a deleted pod once kube-proxy has rewritten its rules. The
	// slowest of 36 deletes over both modes took 1.6 s from the delete to
	// the rules (kube-proxy's own network-programming histogram over the
	// same cycles: every change within 2 s) at load average up to 14, but
	// an e2e run on the same node under heavier load saw kube-proxy's
	// rules trail a Ready endpoint by up to 4 s (lab/README.md): the
	// budget is the slowest seen, not the slowest of one run. Connections
	// already open are the server's to close, which the kit does during
	// DRAIN_DELAY.
	DrainBudgetClusterIP = 4 * time.Second
	// DrainBudgetHeadless covers a headless Service, whose clients
	// balance over the addresses DNS gives them: a deleted pod stays in
	// CoreDNS's cached answer for up to the cache's TTL (measured: up to
	// 29.8 s after the delete; the stock Corefile's ttl 30, cache 30), and
	// a client such as Shoal's balancer or grpcclient reads DNS again
	// every 5 s (balancer.DefaultDNSInterval; the gallery was measured
	// 0–4.5 s behind CoreDNS, at most 31.9 s after the delete): 30 s +
	// 5 s.
	DrainBudgetHeadless = 35 * time.Second
)

// drainBudgetMeasured names the runs the budgets come from, for the
// rule's text.
const drainBudgetMeasured = "2026-12-02, iptables and nftables"

// drainBudget returns the largest drain budget among the Services that
// send w's pods application traffic, and the Service that sets it; none
// gives 0. A Service of admin ports only (a metrics Service, scraped
// again at the next interval whatever it finds) is not one.
func (s *set) drainBudget(w *workload) (time.Duration, string) {
	var budget time.Duration
	var by string
	for _, sv := range allServices(s) {
		if !slices.Contains(s.selected(sv), w) || adminOnly(w, sv.svc) {
			continue
		}
		b, kind := DrainBudgetClusterIP, "ClusterIP"
		if sv.svc.Spec.ClusterIP == corev1.ClusterIPNone {
			b, kind = DrainBudgetHeadless, "headless"
		}
		if b > budget {
			budget, by = b, fmt.Sprintf("%s Service %q", kind, sv.svc.Name)
		}
	}
	return budget, by
}

// recreates reports whether w is a Deployment with strategy Recreate.
func recreates(w *workload) bool {
	return w.deploy != nil && w.deploy.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType
}

// adminOnly reports whether every port of svc reaches an admin port of
// w's pods.
func adminOnly(w *workload, svc *corev1.Service) bool {
	for _, p := range svc.Spec.Ports {
		if !isAdminPortName(containerPortName(w, p)) {
			return false
		}
	}
	return len(svc.Spec.Ports) > 0
}

// checkPreStop wants every serving container to go on accepting requests
// for the drain budget of the Services that select it: preStop +
// DRAIN_DELAY at least the budget. A container no Service selects (its
// Service may live elsewhere), or of a Deployment that recreates its pods,
// must still have a preStop hook. A hook
// whose length the manifest does not tell (an exec without sleep, an
// httpGet) is taken to be long enough.
func checkPreStop(s *set) []Finding {
	var fs []Finding
	for _, c := range s.containers(true) {
		hook := c.c.Lifecycle != nil && c.c.Lifecycle.PreStop != nil
		pre, known := preStopDuration(c.c), preStopKnown(c.c)
		drain := envDuration(c.c, "DRAIN_DELAY")
		budget, by := s.drainBudget(c.w)
		if recreates(c.w) {
			// A rollout stops every pod before it starts one: there is no
			// other pod for clients to move to, however long this one waits.
			budget = 0
		}
		switch {
		case !hook && budget == 0:
			fs = append(fs, c.finding(ruleNoPreStop, "", "serves ports but has no preStop hook")...)
		case !hook && drain < budget:
			fs = append(fs, c.finding(ruleNoPreStop, "",
				"serves ports but has no preStop hook, and DRAIN_DELAY %s is below the %s drain budget of the %s that selects it", drain, budget, by)...)
		case hook && known && pre+drain < budget:
			fs = append(fs, c.finding(ruleNoPreStop, "lifecycle.preStop",
				"preStop %s + DRAIN_DELAY %s = %s is below the %s drain budget of the %s that selects it", pre, drain, pre+drain, budget, by)...)
		}
	}
	return fs
}

var sleepRE = regexp.MustCompile(`\bsleep\s+(\d+(?:\.\d+)?)`)

// preStopDuration is how long a preStop hook holds the container before
// SIGTERM, as far as the manifest tells.
func preStopDuration(c *corev1.Container) time.Duration {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return 0
	}
	h := c.Lifecycle.PreStop
	switch {
	case h.Sleep != nil:
		return time.Duration(h.Sleep.Seconds) * time.Second
	case h.Exec != nil:
		if m := sleepRE.FindStringSubmatch(strings.Join(h.Exec.Command, " ")); m != nil {
			f, _ := strconv.ParseFloat(m[1], 64)
			return time.Duration(f * float64(time.Second))
		}
	}
	return 0
}

// preStopKnown reports whether preStopDuration is the hook's whole
// length: a sleep action, or an exec whose command sleeps.
func preStopKnown(c *corev1.Container) bool {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return true
	}
	h := c.Lifecycle.PreStop
	return h.Sleep != nil || (h.Exec != nil && sleepRE.MatchString(strings.Join(h.Exec.Command, " ")))
}

// envDuration reads a literal duration from a container's env.
func envDuration(c *corev1.Container, name string) time.Duration {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			if d, err := time.ParseDuration(e.Value); err == nil {
				return d
			}
		}
	}
	return 0
}

func checkGracePeriod(s *set) []Finding {
	var fs []Finding
	for _, c := range s.containers(false) {
		pre := preStopDuration(c.c)
		drain := envDuration(c.c, "DRAIN_DELAY")
		stop := envDuration(c.c, "SHUTDOWN_TIMEOUT")
		need := pre + drain + stop
		grace := time.Duration(deref(c.w.template.Spec.TerminationGracePeriodSeconds, corev1.DefaultTerminationGracePeriodSeconds)) * time.Second
		if need > grace {
			field := fmt.Sprintf("%s.spec.terminationGracePeriodSeconds", c.w.tplPath)
			if c.w.template.Spec.TerminationGracePeriodSeconds == nil {
				field = c.field
			}
			if c.w.doc.ignores(ruleGraceShort.ID) {
				continue
			}
			fs = append(fs, c.w.doc.finding(ruleGraceShort, field,
				"container %q: terminationGracePeriodSeconds %s is shorter than preStop %s + DRAIN_DELAY %s + SHUTDOWN_TIMEOUT %s = %s",
				c.c.Name, grace, pre, drain, stop, need))
		}
	}
	return fs
}

func checkHardcodedIPs(s *set) []Finding {
	var fs []Finding
	for _, w := range s.workloads {
		spec := &w.template.Spec
		groups := []struct {
			name string
			cs   []corev1.Container
		}{{"containers", spec.Containers}, {"initContainers", spec.InitContainers}}
		for _, g := range groups {
			for i := range g.cs {
				c := container{w: w, c: &g.cs[i], field: fmt.Sprintf("%s.spec.%s[%d]", w.tplPath, g.name, i)}
				for j, e := range c.c.Env {
					if ip := findIP(e.Value); ip != "" {
						fs = append(fs, c.finding(ruleHardcodedIP, fmt.Sprintf("env[%d].value", j), "env %s holds the IP address %s", e.Name, ip)...)
					}
				}
				for _, a := range []struct {
					name string
					vs   []string
				}{{"command", c.c.Command}, {"args", c.c.Args}} {
					for j, v := range a.vs {
						if ip := findIP(v); ip != "" {
							fs = append(fs, c.finding(ruleHardcodedIP, fmt.Sprintf("%s[%d]", a.name, j), "%s holds the IP address %s", a.name, ip)...)
						}
					}
				}
			}
		}
	}
	return fs
}

var ipTokenRE = regexp.MustCompile(`[0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*`)

// findIP returns the first IP literal in v that names a specific remote
// host; loopback and unspecified addresses (listen addresses) are fine.
func findIP(v string) string {
	for _, tok := range ipTokenRE.FindAllString(v, -1) {
		tok = strings.Trim(tok, ".:")
		if host, _, ok := strings.Cut(tok, ":"); ok && strings.Count(tok, ":") == 1 {
			tok = host // 10.0.0.1:6379
		}
		a, err := netip.ParseAddr(tok)
		if err != nil || a.IsLoopback() || a.IsUnspecified() {
			continue
		}
		if a.Is6() && !a.Is4In6() && strings.Count(tok, ":") < 2 {
			continue
		}
		return a.String()
	}
	return ""
}
