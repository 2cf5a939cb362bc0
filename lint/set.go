package lint

import (
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/shoal-dev/shoal/keda"
)

// set is the decoded objects of one input, indexed for rules that relate
// objects to each other.
//
// Rules ask the same questions of a set again and again (which workloads
// a Service selects, which workload an autoscaler scales), so the answers
// are indexed or kept: asked by scanning, thousands of Services over
// thousands of workloads took minutes.
type set struct {
	docs        []*Document
	workloads   []*workload
	autoscalers []*autoscaler

	byTarget   map[targetKey]*workload     // scalable workloads, the first of each key
	byNS       map[string][]*workload      // workloads per namespace
	byLabel    map[string][]*workload      // per namespace and template label, ns+"\x00"+key+"="+value
	selections map[string][]*workload      // selecting's answers, by ns+"\x00"+selector
	ownersOf   map[*workload][]*autoscaler // nil until owners is first asked
	grpc       grpcPorts                   // nil until grpcPorts is first asked
}

// targetKey names a workload as a scaleTargetRef does.
type targetKey struct{ kind, namespace, name string }

// workload is an object with a pod template.
type workload struct {
	doc      *Document
	template *corev1.PodTemplateSpec
	tplPath  string // field path of the template, "spec.template"
	replicas *int32 // nil when unset or not applicable (DaemonSet)
	scalable bool   // Deployment, StatefulSet or ReplicaSet
	selector *metav1.LabelSelector
	deploy   *appsv1.Deployment
}

// autoscaler is an HPA or a ScaledObject reduced to what the rules need.
type autoscaler struct {
	doc         *Document
	targetKind  string
	targetName  string // "" when scaleTargetRef is missing or names nothing
	minReplicas int32
	// utilization lists resources scaled on utilization, each with the
	// container it is limited to ("" for all) and the field path declaring it.
	utilization []resourceMetric
}

type resourceMetric struct {
	resource  corev1.ResourceName
	container string
	field     string
}

func newSet(docs []*Document) *set {
	s := &set{docs: docs}
	for _, d := range docs {
		switch o := d.Object.(type) {
		case *appsv1.Deployment:
			s.workloads = append(s.workloads, &workload{doc: d, template: &o.Spec.Template, tplPath: "spec.template",
				replicas: o.Spec.Replicas, scalable: true, selector: o.Spec.Selector, deploy: o})
		case *appsv1.StatefulSet:
			s.workloads = append(s.workloads, &workload{doc: d, template: &o.Spec.Template, tplPath: "spec.template",
				replicas: o.Spec.Replicas, scalable: true, selector: o.Spec.Selector})
		case *appsv1.ReplicaSet:
			s.workloads = append(s.workloads, &workload{doc: d, template: &o.Spec.Template, tplPath: "spec.template",
				replicas: o.Spec.Replicas, scalable: true, selector: o.Spec.Selector})
		case *appsv1.DaemonSet:
			s.workloads = append(s.workloads, &workload{doc: d, template: &o.Spec.Template, tplPath: "spec.template",
				selector: o.Spec.Selector})
		case *autoscalingv2.HorizontalPodAutoscaler:
			s.autoscalers = append(s.autoscalers, hpaV2(d, o))
		case *autoscalingv1.HorizontalPodAutoscaler:
			a := &autoscaler{doc: d, targetKind: o.Spec.ScaleTargetRef.Kind, targetName: o.Spec.ScaleTargetRef.Name,
				minReplicas: deref(o.Spec.MinReplicas, 1)}
			if o.Spec.TargetCPUUtilizationPercentage != nil {
				a.utilization = append(a.utilization, resourceMetric{resource: corev1.ResourceCPU, field: "spec.targetCPUUtilizationPercentage"})
			}
			s.autoscalers = append(s.autoscalers, a)
		case *keda.ScaledObject:
			s.autoscalers = append(s.autoscalers, scaledObject(d, o))
		}
	}
	s.byTarget = map[targetKey]*workload{}
	s.byNS = map[string][]*workload{}
	s.byLabel = map[string][]*workload{}
	s.selections = map[string][]*workload{}
	for _, w := range s.workloads {
		ns := w.doc.Namespace
		if k := (targetKey{w.doc.Kind, ns, w.doc.Name}); w.scalable && s.byTarget[k] == nil {
			s.byTarget[k] = w
		}
		s.byNS[ns] = append(s.byNS[ns], w)
		for k, v := range w.template.Labels {
			key := ns + "\x00" + k + "=" + v
			s.byLabel[key] = append(s.byLabel[key], w)
		}
	}
	return s
}

func hpaV2(d *Document, o *autoscalingv2.HorizontalPodAutoscaler) *autoscaler {
	a := &autoscaler{doc: d, targetKind: o.Spec.ScaleTargetRef.Kind, targetName: o.Spec.ScaleTargetRef.Name,
		minReplicas: deref(o.Spec.MinReplicas, 1)}
	for i, m := range o.Spec.Metrics {
		field := "spec.metrics[" + itoa(i) + "]"
		switch {
		case m.Resource != nil && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType:
			a.utilization = append(a.utilization, resourceMetric{resource: m.Resource.Name, field: field})
		case m.ContainerResource != nil && m.ContainerResource.Target.Type == autoscalingv2.UtilizationMetricType:
			a.utilization = append(a.utilization, resourceMetric{resource: m.ContainerResource.Name,
				container: m.ContainerResource.Container, field: field})
		}
	}
	return a
}

func scaledObject(d *Document, o *keda.ScaledObject) *autoscaler {
	a := &autoscaler{doc: d, targetKind: "Deployment", minReplicas: deref(o.Spec.MinReplicaCount, 0)}
	if ref := o.Spec.ScaleTargetRef; ref != nil {
		a.targetName = ref.Name
		if ref.Kind != "" {
			a.targetKind = ref.Kind
		}
	}
	for i, t := range o.Spec.Triggers {
		if (t.Type == "cpu" || t.Type == "memory") && (t.MetricType == "" || t.MetricType == "Utilization") {
			a.utilization = append(a.utilization, resourceMetric{resource: corev1.ResourceName(t.Type),
				container: t.Metadata["containerName"], field: "spec.triggers[" + itoa(i) + "]"})
		}
	}
	return a
}

// target returns the workload an autoscaler scales, or nil.
func (s *set) target(a *autoscaler) *workload {
	return s.byTarget[targetKey{a.targetKind, a.doc.Namespace, a.targetName}]
}

// owners returns the autoscalers that scale w.
func (s *set) owners(w *workload) []*autoscaler {
	if s.ownersOf == nil {
		s.ownersOf = map[*workload][]*autoscaler{}
		for _, a := range s.autoscalers {
			if t := s.target(a); t != nil {
				s.ownersOf[t] = append(s.ownersOf[t], a)
			}
		}
	}
	return s.ownersOf[w]
}

// minReplicas is the fewest pods w runs in steady state: the autoscaler's
// minimum when one owns it, else spec.replicas (default 1). Scale to zero
// counts as one pod, the state in which disruption matters.
func (s *set) minReplicas(w *workload) int {
	if as := s.owners(w); len(as) > 0 {
		return max(1, int(as[0].minReplicas))
	}
	return int(deref(w.replicas, 1))
}

// selecting returns the workloads in ns whose pod template labels sel
// matches, in the set's order. The slice is shared: callers must not
// change it.
func (s *set) selecting(ns string, sel labels.Selector) []*workload {
	key := ns + "\x00" + sel.String()
	if ws, ok := s.selections[key]; ok {
		return ws
	}
	// Only workloads carrying one of the selector's key=value pairs can
	// match it; the fewest such are the ones to test.
	candidates := s.byNS[ns]
	if reqs, ok := sel.Requirements(); ok {
		for _, r := range reqs {
			if op := r.Operator(); (op == selection.Equals || op == selection.DoubleEquals || op == selection.In) && r.Values().Len() == 1 {
				if c := s.byLabel[ns+"\x00"+r.Key()+"="+r.Values().List()[0]]; len(c) < len(candidates) {
					candidates = c
				}
			}
		}
	}
	var ws []*workload
	for _, w := range candidates {
		if sel.Matches(labels.Set(w.template.Labels)) {
			ws = append(ws, w)
		}
	}
	ws = slices.Clip(ws)
	s.selections[key] = ws
	return ws
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
