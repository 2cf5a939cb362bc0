package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/keda"
)

// ErrInvalid reports objects that cannot be run: a Deployment without
// containers, a Service whose port names no container port, an autoscaler
// whose target is missing. The message names the object and the field.
var ErrInvalid = errors.New("cluster: invalid object")

// Objects are the Kubernetes objects a cluster runs. Objects without a
// namespace are in "default".
type Objects struct {
	Deployments   []*appsv1.Deployment
	Services      []*corev1.Service
	Ingresses     []*networkingv1.Ingress
	HPAs          []*autoscalingv2.HorizontalPodAutoscaler
	ScaledObjects []*autoscale.ScaledObject
	Secrets       []*corev1.Secret
	ConfigMaps    []*corev1.ConfigMap
	// Ignored names the objects of kinds that have no meaning on one
	// machine (PodDisruptionBudget, Namespace, ServiceMonitor, ...), as
	// Kind/name.
	Ignored []string
}

// Add sorts one decoded object into o: a pointer to a k8s.io/api type or a
// *keda.ScaledObject. An object without a namespace is put in "default", as
// kubectl apply does. Kinds that cannot run here but would change what runs
// in a cluster (StatefulSet, DaemonSet, Job, bare Pods) are an error.
func (o *Objects) Add(obj any) error {
	if m, ok := obj.(interface {
		GetNamespace() string
		SetNamespace(string)
	}); ok && m.GetNamespace() == "" {
		m.SetNamespace("default")
	}
	switch v := obj.(type) {
	case *appsv1.Deployment:
		o.Deployments = append(o.Deployments, v)
	case *corev1.Service:
		o.Services = append(o.Services, v)
	case *networkingv1.Ingress:
		o.Ingresses = append(o.Ingresses, v)
	case *autoscalingv2.HorizontalPodAutoscaler:
		o.HPAs = append(o.HPAs, v)
	case *keda.ScaledObject:
		o.ScaledObjects = append(o.ScaledObjects, (*autoscale.ScaledObject)(v))
	case *autoscale.ScaledObject:
		o.ScaledObjects = append(o.ScaledObjects, v)
	case *corev1.Secret:
		o.Secrets = append(o.Secrets, v)
	case *corev1.ConfigMap:
		o.ConfigMaps = append(o.ConfigMaps, v)
	case *appsv1.StatefulSet, *appsv1.DaemonSet, *appsv1.ReplicaSet, *corev1.Pod:
		return fmt.Errorf("%w: %s: only Deployments run under shoal up", ErrInvalid, kindName(obj))
	default:
		o.Ignored = append(o.Ignored, kindName(obj))
	}
	return nil
}

// kindName names a decoded object as Kind/name: the kind from its TypeMeta,
// or from its Go type when the decoder left TypeMeta empty.
func kindName(obj any) string {
	kind := ""
	if k, ok := obj.(interface{ GetObjectKind() schema.ObjectKind }); ok {
		kind = k.GetObjectKind().GroupVersionKind().Kind
	}
	if kind == "" {
		t := reflect.TypeOf(obj)
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t != nil {
			kind = t.Name()
		}
	}
	if kind == "" {
		kind = fmt.Sprintf("%T", obj)
	}
	if n, ok := obj.(interface{ GetName() string }); ok {
		return kind + "/" + n.GetName()
	}
	return kind
}

func nsOf(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// Validate reports what would stop the objects from running, every problem
// in one error.
func (o *Objects) Validate() error {
	var errs []error
	bad := func(kind, ns, name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s/%s: %s", ErrInvalid, kind, nsOf(ns), name, fmt.Sprintf(format, args...)))
	}
	seen := map[string]bool{}
	deploys := map[string]*appsv1.Deployment{}
	for _, d := range o.Deployments {
		key := nsOf(d.Namespace) + "/" + d.Name
		if seen["deploy/"+key] {
			bad("Deployment", d.Namespace, d.Name, "declared twice")
		}
		seen["deploy/"+key] = true
		deploys[key] = d
		if len(d.Spec.Template.Spec.Containers) == 0 {
			bad("Deployment", d.Namespace, d.Name, "spec.template.spec.containers is empty")
		}
		if d.Spec.Selector == nil {
			bad("Deployment", d.Namespace, d.Name, "spec.selector is missing")
			continue
		}
		sel, err := selectorOf(d.Spec.Selector)
		if err != nil {
			bad("Deployment", d.Namespace, d.Name, "spec.selector: %v", err)
		} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			bad("Deployment", d.Namespace, d.Name, "spec.selector does not match spec.template.metadata.labels")
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas < 0 {
			bad("Deployment", d.Namespace, d.Name, "spec.replicas %d is negative", *d.Spec.Replicas)
		}
		switch s := d.Spec.Strategy.Type; s {
		case "", appsv1.RollingUpdateDeploymentStrategyType:
			if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
				for _, f := range []struct {
					field string
					v     *intstr.IntOrString
				}{{"maxSurge", ru.MaxSurge}, {"maxUnavailable", ru.MaxUnavailable}} {
					if f.v == nil {
						continue
					}
					// Scaling 100 replicas turns a percentage into its own number.
					if n, err := intstr.GetScaledValueFromIntOrPercent(f.v, 100, true); err != nil || n < 0 {
						bad("Deployment", d.Namespace, d.Name, "spec.strategy.rollingUpdate.%s %q is neither a non-negative number nor a percentage", f.field, f.v.String())
					}
				}
			}
		case appsv1.RecreateDeploymentStrategyType:
			if d.Spec.Strategy.RollingUpdate != nil {
				bad("Deployment", d.Namespace, d.Name, "spec.strategy.rollingUpdate may not be set when spec.strategy.type is Recreate")
			}
		default:
			bad("Deployment", d.Namespace, d.Name, "spec.strategy.type %q is neither RollingUpdate nor Recreate", s)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Image == "" {
				bad("Deployment", d.Namespace, d.Name, "container %q has no image", c.Name)
			}
		}
	}
	for _, s := range o.Services {
		// Two Services of one name would share a DNS name and a
		// front door; kubectl apply would keep only the last.
		if key := "svc/" + nsOf(s.Namespace) + "/" + s.Name; seen[key] {
			bad("Service", s.Namespace, s.Name, "declared twice")
		} else {
			seen[key] = true
		}
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			bad("Service", s.Namespace, s.Name, "type ExternalName is not supported")
			continue
		}
		for i, p := range s.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				bad("Service", s.Namespace, s.Name, "spec.ports[%d].protocol %s: only TCP is supported", i, p.Protocol)
			}
			if p.Port <= 0 || p.Port > 65535 {
				bad("Service", s.Namespace, s.Name, "spec.ports[%d].port %d is out of range", i, p.Port)
			}
			if p.TargetPort.Type == intstr.Int && (p.TargetPort.IntVal < 0 || p.TargetPort.IntVal > 65535) {
				bad("Service", s.Namespace, s.Name, "spec.ports[%d].targetPort %d is out of range", i, p.TargetPort.IntVal)
			}
			if name := p.TargetPort.StrVal; p.TargetPort.Type == intstr.String && name != "" {
				// A named targetPort must be declared by every
				// Deployment whose pods the Service selects, or those
				// pods would never be its endpoints.
				for _, d := range o.Deployments {
					if nsOf(d.Namespace) != nsOf(s.Namespace) || len(s.Spec.Selector) == 0 ||
						!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
						continue
					}
					if _, ok := targetPort(&d.Spec.Template.Spec, p); !ok {
						bad("Service", s.Namespace, s.Name, "spec.ports[%d].targetPort %q names no container port of Deployment %q", i, name, d.Name)
					}
				}
			}
		}
	}
	target := func(kind, ns, name string, ref string, refKind string) {
		if refKind != "" && refKind != "Deployment" {
			bad(kind, ns, name, "scaleTargetRef.kind %s: only Deployments are scaled here", refKind)
			return
		}
		if deploys[nsOf(ns)+"/"+ref] == nil {
			bad(kind, ns, name, "scaleTargetRef names Deployment %q, which is not among the objects", ref)
		}
	}
	for _, h := range o.HPAs {
		target("HorizontalPodAutoscaler", h.Namespace, h.Name, h.Spec.ScaleTargetRef.Name, h.Spec.ScaleTargetRef.Kind)
	}
	for _, so := range o.ScaledObjects {
		if so.Spec.ScaleTargetRef == nil {
			bad("ScaledObject", so.Namespace, so.Name, "spec.scaleTargetRef is missing")
			continue
		}
		if err := so.Validate(); err != nil {
			bad("ScaledObject", so.Namespace, so.Name, "%v", err)
			continue
		}
		target("ScaledObject", so.Namespace, so.Name, so.Spec.ScaleTargetRef.Name, so.Spec.ScaleTargetRef.Kind)
	}
	for _, ing := range o.Ingresses {
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service == nil {
					bad("Ingress", ing.Namespace, ing.Name, "path %q has no service backend", p.Path)
					continue
				}
				if !slices.ContainsFunc(o.Services, func(s *corev1.Service) bool {
					return s.Name == p.Backend.Service.Name && nsOf(s.Namespace) == nsOf(ing.Namespace)
				}) {
					bad("Ingress", ing.Namespace, ing.Name, "path %q sends to Service %q, which is not among the objects", p.Path, p.Backend.Service.Name)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func selectorOf(ls *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(ls)
}

// lookup looks up key in the named Secret or ConfigMap of namespace ns.
func (o *Objects) lookup(ns, kind, name, key string) (string, error) {
	switch kind {
	case "Secret":
		for _, s := range o.Secrets {
			if s.Name == name && nsOf(s.Namespace) == ns {
				// stringData overrides data, as the API server merges
				// it on write.
				if v, ok := s.StringData[key]; ok {
					return v, nil
				}
				if v, ok := s.Data[key]; ok {
					return string(v), nil
				}
				return "", fmt.Errorf("cluster: secret %s/%s has no key %q", ns, name, key)
			}
		}
	case "ConfigMap":
		for _, c := range o.ConfigMaps {
			if c.Name == name && nsOf(c.Namespace) == ns {
				if v, ok := c.Data[key]; ok {
					return v, nil
				}
				return "", fmt.Errorf("cluster: configmap %s/%s has no key %q", ns, name, key)
			}
		}
	}
	return "", fmt.Errorf("cluster: %s %s/%s not found", strings.ToLower(kind), ns, name)
}

// lookupAll returns every key of the named Secret or ConfigMap, for envFrom.
func (o *Objects) lookupAll(ns, kind, name string) (map[string]string, error) {
	out := map[string]string{}
	switch kind {
	case "Secret":
		for _, s := range o.Secrets {
			if s.Name == name && nsOf(s.Namespace) == ns {
				for k, v := range s.Data {
					out[k] = string(v)
				}
				for k, v := range s.StringData {
					out[k] = v
				}
				return out, nil
			}
		}
	case "ConfigMap":
		for _, c := range o.ConfigMaps {
			if c.Name == name && nsOf(c.Namespace) == ns {
				for k, v := range c.Data {
					out[k] = v
				}
				return out, nil
			}
		}
	}
	return nil, fmt.Errorf("cluster: %s %s/%s not found", strings.ToLower(kind), ns, name)
}
