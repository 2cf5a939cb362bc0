package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/keda"
	"github.com/shoal-dev/shoal/lint"
)

// ErrInvalid reports objects that cannot be run: a Deployment without
// containers, a Service whose port names no container port, an autoscaler
// whose target is missing. The message names the object and the field.
var ErrInvalid = errors.New("cluster: invalid object")

// Objects are the Kubernetes objects a cluster runs. Objects without a
// namespace are in "default".
type Objects struct {
	Deployments []*appsv1.Deployment
	Services    []*corev1.Service
	Ingresses   []*networkingv1.Ingress
	// Gateways and HTTPRoutes are Gateway API objects (v1beta1 ones are
	// converted to v1, the same type under another name).
	Gateways      []*gatewayv1.Gateway
	HTTPRoutes    []*gatewayv1.HTTPRoute
	HPAs          []*autoscalingv2.HorizontalPodAutoscaler
	ScaledObjects []*autoscale.ScaledObject
	Secrets       []*corev1.Secret
	ConfigMaps    []*corev1.ConfigMap
	// Ignored names the objects of kinds that have no meaning on one
	// machine (PodDisruptionBudget; NetworkPolicy, since nothing here
	// filters traffic between pods; Namespace, ServiceMonitor, ...), as
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
	case *gatewayv1.Gateway:
		o.Gateways = append(o.Gateways, v)
	case *gatewayv1beta1.Gateway:
		o.Gateways = append(o.Gateways, (*gatewayv1.Gateway)(v))
	case *gatewayv1.HTTPRoute:
		o.HTTPRoutes = append(o.HTTPRoutes, v)
	case *gatewayv1beta1.HTTPRoute:
		o.HTTPRoutes = append(o.HTTPRoutes, (*gatewayv1.HTTPRoute)(v))
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

// refusedRules are the lint rules whose findings Validate refuses: each
// marks objects that would not run as written on a real cluster either,
// and that the cluster here has no sensible way to run.
var refusedRules = []string{
	lint.IDInvalidSpec,              // spec values the API server refuses
	lint.IDDuplicateObject,          // two objects where state holds one
	lint.IDAutoscalerTargetMissing,  // an autoscaler of nothing
	lint.IDServiceTargetPortUnknown, // pods that can be no endpoint
	lint.IDIngressBackendMissing,    // a route to nowhere
	lint.IDRouteBackendMissing,      // an HTTPRoute backend to nowhere
}

// Validate reports what would stop the objects from running, every problem
// in one error. What Kubernetes itself would not run is asked of package
// lint's rules (refusedRules), so each check is written once; Validate
// checks here only what a real cluster runs but this one does not model.
func (o *Objects) Validate() error {
	var errs []error
	rep := (&lint.Linter{Only: refusedRules}).LintDocuments(o.documents()...)
	for _, f := range rep.Findings {
		kind, nsName, _ := strings.Cut(f.Object, "/") // Kind/namespace/name: documents gives every object a namespace
		errs = append(errs, fmt.Errorf("%w: %s %s: %s (lint %s %s)", ErrInvalid, kind, nsName, f.Message, f.Rule, f.Name))
	}
	bad := func(kind, ns, name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s/%s: %s", ErrInvalid, kind, nsOf(ns), name, fmt.Sprintf(format, args...)))
	}
	for _, s := range o.Services {
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			bad("Service", s.Namespace, s.Name, "type ExternalName is not supported")
			continue
		}
		for i, p := range s.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				bad("Service", s.Namespace, s.Name, "spec.ports[%d].protocol %s: only TCP is supported", i, p.Protocol)
			}
		}
	}
	targetKind := func(kind, ns, name, refKind string) {
		if refKind != "" && refKind != "Deployment" {
			bad(kind, ns, name, "scaleTargetRef.kind %s: only Deployments are scaled here", refKind)
		}
	}
	for _, h := range o.HPAs {
		targetKind("HorizontalPodAutoscaler", h.Namespace, h.Name, h.Spec.ScaleTargetRef.Kind)
	}
	for _, so := range o.ScaledObjects {
		if err := so.Validate(); err != nil {
			bad("ScaledObject", so.Namespace, so.Name, "%v", err)
		}
		if ref := so.Spec.ScaleTargetRef; ref != nil {
			targetKind("ScaledObject", so.Namespace, so.Name, ref.Kind)
		}
	}
	for _, ing := range o.Ingresses {
		for i, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for j, p := range r.HTTP.Paths {
				if p.Backend.Service == nil {
					bad("Ingress", ing.Namespace, ing.Name, "spec.rules[%d].http.paths[%d] (path %q) has no service backend: resource backends are not supported", i, j, p.Path)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// documents presents the objects to package lint as one set, each in its
// namespace as Add would put it.
func (o *Objects) documents() []*lint.Document {
	var docs []*lint.Document
	add := func(kind string, m metav1.Object, obj any) {
		docs = append(docs, &lint.Document{Kind: kind, Name: m.GetName(), Namespace: nsOf(m.GetNamespace()), Object: obj})
	}
	for _, d := range o.Deployments {
		add("Deployment", d, d)
	}
	for _, s := range o.Services {
		add("Service", s, s)
	}
	for _, ing := range o.Ingresses {
		add("Ingress", ing, ing)
	}
	for _, g := range o.Gateways {
		add("Gateway", g, g)
	}
	for _, r := range o.HTTPRoutes {
		add("HTTPRoute", r, r)
	}
	for _, h := range o.HPAs {
		add("HorizontalPodAutoscaler", h, h)
	}
	for _, so := range o.ScaledObjects {
		add("ScaledObject", so, (*keda.ScaledObject)(so))
	}
	for _, s := range o.Secrets {
		add("Secret", s, s)
	}
	for _, c := range o.ConfigMaps {
		add("ConfigMap", c, c)
	}
	return docs
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
