package lint

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/shoal-dev/shoal/keda"
)

// set is the decoded objects of one input, indexed for rules that relate
// objects to each other.
type set struct {
	docs        []*Document
	workloads   []*workload
	autoscalers []*autoscaler
}

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
	for _, w := range s.workloads {
		if w.scalable && w.doc.Kind == a.targetKind && w.doc.Name == a.targetName && w.doc.Namespace == a.doc.Namespace {
			return w
		}
	}
	return nil
}

// owners returns the autoscalers that scale w.
func (s *set) owners(w *workload) []*autoscaler {
	var as []*autoscaler
	for _, a := range s.autoscalers {
		if s.target(a) == w {
			as = append(as, a)
		}
	}
	return as
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

// selecting returns the workloads in ns whose pod template labels sel matches.
func (s *set) selecting(ns string, sel labels.Selector) []*workload {
	var ws []*workload
	for _, w := range s.workloads {
		if w.doc.Namespace == ns && sel.Matches(labels.Set(w.template.Labels)) {
			ws = append(ws, w)
		}
	}
	return ws
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
