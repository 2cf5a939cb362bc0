package get

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// kindList names the resource types in messages.
const kindList = "pods, svc, hpa, deploy, ingress, events"

// kind is one resource type get can list.
type kind struct {
	// namespaced kinds get a NAMESPACE column with -A.
	namespaced bool
	// list returns the table of the objects v selects and the same objects
	// for -o json.
	list func(s *api.Snapshot, v view) (table, any)
}

// lookupKind resolves kubectl's names, plurals and short names.
func lookupKind(name string) (kind, bool) {
	switch strings.ToLower(name) {
	case "pods", "pod", "po":
		return kind{namespaced: true, list: pods}, true
	case "services", "service", "svc":
		return kind{namespaced: true, list: services}, true
	case "horizontalpodautoscalers", "horizontalpodautoscaler", "hpa", "scaledobjects", "scaledobject", "so":
		return kind{namespaced: true, list: autoscalers}, true
	case "deployments", "deployment", "deploy":
		return kind{namespaced: true, list: deployments}, true
	case "ingresses", "ingress", "ing":
		return kind{namespaced: true, list: ingresses}, true
	case "events", "event", "ev":
		return kind{namespaced: true, list: events}, true
	}
	return kind{}, false
}

// selected returns the items v selects, sorted by namespace and name as
// kubectl lists them.
func selected[T any](items []T, v view, key func(T) (ns, name string)) []T {
	out := []T{}
	for _, it := range items {
		if ns, _ := key(it); v.shows(ns) {
			out = append(out, it)
		}
	}
	slices.SortStableFunc(out, func(a, b T) int {
		ans, an := key(a)
		bns, bn := key(b)
		return cmp.Or(cmp.Compare(ans, bns), cmp.Compare(an, bn))
	})
	return out
}

// age formats how long before the snapshot t was, as kubectl's AGE column.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func millicores(cores float64) string {
	return strconv.FormatInt(int64(cores*1000+0.5), 10) + "m"
}

// latency formats seconds as milliseconds, "-" when unknown.
func latency(s float64) string {
	switch {
	case s <= 0:
		return "-"
	case s < 0.01:
		return fmt.Sprintf("%.1fms", s*1000)
	case s < 10:
		return fmt.Sprintf("%.0fms", s*1000)
	}
	return fmt.Sprintf("%.1fs", s)
}

func pods(s *api.Snapshot, v view) (table, any) {
	items := selected(s.Pods, v, func(p api.PodInfo) (string, string) { return p.Namespace, p.Name })
	t := table{header: []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"}}
	if v.wide {
		t.header = append(t.header, "CPU", "RPS", "P50", "P99")
	}
	for _, p := range items {
		// The snapshot knows readiness per pod, not per container: a ready
		// pod has all its containers ready.
		containers := max(len(p.PIDs), 1)
		ready := 0
		if p.Ready {
			ready = containers
		}
		ip := p.IP
		if ip == "" {
			ip = "<none>"
		}
		cells := []string{p.Name, fmt.Sprintf("%d/%d", ready, containers), p.Status,
			strconv.Itoa(int(p.Restarts)), age(s.Time, p.Created), ip}
		if v.wide {
			cpu := millicores(p.CPU) + "/"
			if p.CPURequest > 0 {
				cpu += millicores(p.CPURequest)
			} else {
				cpu += "-"
			}
			cells = append(cells, cpu, fmt.Sprintf("%.1f", p.RPS), latency(p.LatencyP50), latency(p.LatencyP99))
		}
		t.rows = append(t.rows, row{p.Namespace, cells})
	}
	return t, items
}

// maxEndpoints is how many endpoints a table cell lists before it
// abbreviates, as `kubectl get endpoints` does.
const maxEndpoints = 3

func services(s *api.Snapshot, v view) (table, any) {
	items := selected(s.Services, v, func(sv api.ServiceInfo) (string, string) { return sv.Namespace, sv.Name })
	t := table{header: []string{"NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "ENDPOINTS"}}
	for _, sv := range items {
		ip := sv.ClusterIP
		if ip == "" {
			ip = "None"
		}
		ports := strings.Join(sv.Ports, ",")
		if ports == "" {
			ports = "<none>"
		}
		eps := "<none>"
		switch n := len(sv.Endpoints); {
		case n > maxEndpoints && !v.wide:
			eps = strings.Join(sv.Endpoints[:maxEndpoints], ",") + fmt.Sprintf(" + %d more...", n-maxEndpoints)
		case n > 0:
			eps = strings.Join(sv.Endpoints, ",")
		}
		t.rows = append(t.rows, row{sv.Namespace, []string{sv.Name, sv.Type, ip, ports, eps}})
	}
	return t, items
}

// reference turns "deployment/NAME" into kubectl's "Deployment/NAME".
func reference(target string) string {
	kind, name, ok := strings.Cut(target, "/")
	if !ok || kind == "" {
		return target
	}
	return strings.ToUpper(kind[:1]) + kind[1:] + "/" + name
}

func autoscalers(s *api.Snapshot, v view) (table, any) {
	items := selected(s.Autoscalers, v, func(a api.AutoscalerInfo) (string, string) { return a.Namespace, a.Name })
	// The snapshot has no creation time for autoscalers, so DESIRED takes
	// the place of kubectl's AGE.
	t := table{header: []string{"NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "DESIRED"}}
	if v.wide {
		t.header = append(t.header, "KIND", "REASON")
	}
	for _, a := range items {
		targets := a.Metrics
		if targets == "" {
			targets = "<unknown>"
		}
		cells := []string{a.Name, reference(a.Target), targets, strconv.Itoa(int(a.Min)),
			strconv.Itoa(int(a.Max)), strconv.Itoa(int(a.Current)), strconv.Itoa(int(a.Desired))}
		if v.wide {
			reason := a.Reason
			if a.MetricError != "" {
				reason = strings.TrimSpace(reason + " (metrics: " + a.MetricError + ")")
			}
			if reason == "" {
				reason = "<none>"
			}
			cells = append(cells, a.Kind, reason)
		}
		t.rows = append(t.rows, row{a.Namespace, cells})
	}
	return t, items
}

func deployments(s *api.Snapshot, v view) (table, any) {
	items := selected(s.Deployments, v, func(d api.DeploymentInfo) (string, string) { return d.Namespace, d.Name })
	t := table{header: []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE"}}
	if v.wide {
		t.header = append(t.header, "CURRENT", "REVISION")
	}
	for _, d := range items {
		cells := []string{d.Name, fmt.Sprintf("%d/%d", d.Ready, d.Replicas),
			strconv.Itoa(int(d.Updated)), strconv.Itoa(int(d.Available))}
		if v.wide {
			cells = append(cells, strconv.Itoa(int(d.Current)), cmp.Or(d.Revision, "<none>"))
		}
		t.rows = append(t.rows, row{d.Namespace, cells})
	}
	return t, items
}

func ingresses(s *api.Snapshot, v view) (table, any) {
	items := selected(s.Ingresses, v, func(in api.IngressInfo) (string, string) { return in.Namespace, in.Name })
	t := table{header: []string{"NAME", "HOST", "PATH", "BACKEND", "URL"}}
	for _, in := range items {
		t.rows = append(t.rows, row{in.Namespace, []string{in.Name, cmp.Or(in.Host, "*"),
			cmp.Or(in.Path, "/"), in.Backend, cmp.Or(in.URL, "<none>")}})
	}
	return t, items
}

func events(s *api.Snapshot, v view) (table, any) {
	t := table{header: []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}}
	if v.wide {
		t.header = append(t.header, "COUNT")
	}
	// Events keep the log's order, oldest first, not kubectl's order by name.
	items := []api.Event{}
	for _, e := range s.Events {
		if !v.shows(e.Namespace) {
			continue
		}
		items = append(items, e)
		// Messages are single-line in a table.
		msg := strings.Join(strings.Fields(e.Message), " ")
		cells := []string{age(s.Time, e.Time), e.Type, e.Reason, e.Object, msg}
		if v.wide {
			cells = append(cells, strconv.Itoa(max(e.Count, 1)))
		}
		t.rows = append(t.rows, row{e.Namespace, cells})
	}
	return t, items
}
