package cluster

import (
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/keda"
	"github.com/shoal-dev/shoal/lint"
)

// validObjects is a Deployment web in namespace shop with its Service,
// Ingress, HPA and ScaledObject, all valid.
func validObjects() *Objects {
	min, max := int32(1), int32(5)
	return &Objects{
		Deployments: []*appsv1.Deployment{newTestDeployment("shop", "web", 2)},
		Services:    []*corev1.Service{newTestService("shop", "web", "web", false)},
		Ingresses:   []*networkingv1.Ingress{newTestIngress("shop", "web", "web")},
		HPAs: []*autoscalingv2.HorizontalPodAutoscaler{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MinReplicas:    &min, MaxReplicas: max,
			},
		}},
		ScaledObjects: []*autoscale.ScaledObject{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-keda"},
			Spec: keda.ScaledObjectSpec{
				ScaleTargetRef: &keda.ScaleTarget{Name: "web"},
				Triggers: []keda.ScaleTrigger{{
					Type:     "prometheus",
					Metadata: map[string]string{"query": "sum(rate(http_requests_total[1m]))", "threshold": "100"},
				}},
			},
		}},
	}
}

func TestValidate(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int) *intstr.IntOrString { v := intstr.FromInt32(int32(n)); return &v }
	tests := []struct {
		name   string
		change func(o *Objects)
		// want are the messages Validate must report, each naming
		// kind, namespace/name and field; none means valid.
		want []string
		// rule is the lint rule Validate asks for the check, which
		// TestWhatShoalUpRefuses in package lint covers too; "" when
		// the check is Validate's own: what this cluster does not model.
		rule string
	}{
		{name: "valid", change: func(*Objects) {}},
		{name: "grpc probes and an h2c Service port are valid", change: func(o *Objects) {
			g := newGRPCDeployment("shop", "web", 1, false)
			o.Deployments[0].Spec.Template.Spec.Containers = g.Spec.Template.Spec.Containers
			h2c := "kubernetes.io/h2c"
			o.Services[0].Spec.Ports = append(o.Services[0].Spec.Ports,
				corev1.ServicePort{Name: "grpc", Port: grpcPort, TargetPort: intstr.FromString("grpc"), AppProtocol: &h2c})
		}},
		{
			name: "namespace defaults to default in messages",
			rule: lint.IDInvalidSpec,
			change: func(o *Objects) {
				o.Deployments[0].Namespace = ""
				o.Deployments[0].Spec.Template.Spec.Containers = nil
				o.Services, o.Ingresses, o.HPAs, o.ScaledObjects = nil, nil, nil, nil
			},
			want: []string{"Deployment default/web: spec.template.spec.containers is empty (lint SH016 invalid-spec)"},
		},
		{
			name:   "deployment declared twice",
			rule:   lint.IDDuplicateObject,
			change: func(o *Objects) { o.Deployments = append(o.Deployments, newTestDeployment("shop", "web", 1)) },
			want:   []string{"Deployment shop/web: declared more than once", "(lint SH017 duplicate-object)"},
		},
		{
			name:   "selector missing",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Deployments[0].Spec.Selector = nil },
			want:   []string{"Deployment shop/web: spec.selector is missing"},
		},
		{
			name: "selector invalid",
			rule: lint.IDInvalidSpec,
			change: func(o *Objects) {
				o.Deployments[0].Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}
			},
			want: []string{"Deployment shop/web: spec.selector: "},
		},
		{
			name:   "selector does not match template",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Deployments[0].Spec.Selector.MatchLabels = map[string]string{"app": "other"} },
			want:   []string{"Deployment shop/web: spec.selector does not match spec.template.metadata.labels"},
		},
		{
			name:   "negative replicas",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Deployments[0].Spec.Replicas = new(int32(-1)) },
			want:   []string{"Deployment shop/web: spec.replicas -1 is negative"},
		},
		{
			name:   "unknown strategy",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Deployments[0].Spec.Strategy.Type = "BlueGreen" },
			want:   []string{`Deployment shop/web: spec.strategy.type "BlueGreen" is neither RollingUpdate nor Recreate`},
		},
		{
			name: "maxSurge not a percentage",
			rule: lint.IDInvalidSpec,
			change: func(o *Objects) {
				o.Deployments[0].Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: pct("25"), MaxUnavailable: pct("10%")}
			},
			want: []string{`Deployment shop/web: spec.strategy.rollingUpdate.maxSurge "25" is neither`},
		},
		{
			name: "negative maxUnavailable",
			rule: lint.IDInvalidSpec,
			change: func(o *Objects) {
				o.Deployments[0].Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: num(-1)}
			},
			want: []string{`Deployment shop/web: spec.strategy.rollingUpdate.maxUnavailable "-1" is neither`},
		},
		{
			name: "rollingUpdate with Recreate",
			rule: lint.IDInvalidSpec,
			change: func(o *Objects) {
				o.Deployments[0].Spec.Strategy = appsv1.DeploymentStrategy{
					Type:          appsv1.RecreateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: num(1)},
				}
			},
			want: []string{"Deployment shop/web: spec.strategy.rollingUpdate may not be set when spec.strategy.type is Recreate"},
		},
		{
			name:   "container without image",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Deployments[0].Spec.Template.Spec.Containers[0].Image = "" },
			want:   []string{`Deployment shop/web: container "app" has no image`},
		},
		{
			name:   "service declared twice",
			rule:   lint.IDDuplicateObject,
			change: func(o *Objects) { o.Services = append(o.Services, newTestService("shop", "web", "web", true)) },
			want:   []string{"Service shop/web: declared more than once", "(lint SH017 duplicate-object)"},
		},
		{
			name: "services of one name in two namespaces",
			change: func(o *Objects) {
				o.Deployments = append(o.Deployments, newTestDeployment("other", "web", 1))
				o.Services = append(o.Services, newTestService("other", "web", "web", false))
			},
		},
		{
			name:   "ExternalName service",
			change: func(o *Objects) { o.Services[0].Spec.Type = corev1.ServiceTypeExternalName },
			want:   []string{"Service shop/web: type ExternalName is not supported"},
		},
		{
			name:   "UDP port",
			change: func(o *Objects) { o.Services[0].Spec.Ports[0].Protocol = corev1.ProtocolUDP },
			want:   []string{"Service shop/web: spec.ports[0].protocol UDP: only TCP is supported"},
		},
		{
			name:   "port out of range",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Services[0].Spec.Ports[0].Port = 70000 },
			want:   []string{"Service shop/web: spec.ports[0].port 70000 is out of range"},
		},
		{
			name:   "targetPort out of range",
			rule:   lint.IDInvalidSpec,
			change: func(o *Objects) { o.Services[0].Spec.Ports[0].TargetPort = intstr.FromInt32(65536) },
			want:   []string{"Service shop/web: spec.ports[0].targetPort 65536 is out of range"},
		},
		{
			name:   "named targetPort no selected container declares",
			rule:   lint.IDServiceTargetPortUnknown,
			change: func(o *Objects) { o.Services[0].Spec.Ports[0].TargetPort = intstr.FromString("admin") },
			want:   []string{`Service shop/web: targetPort "admin" is not the name of a port of any selected container (lint SH011`},
		},
		{
			name: "named targetPort of a Deployment the Service does not select",
			change: func(o *Objects) {
				other := newTestService("shop", "other", "other", false)
				other.Spec.Ports[0].TargetPort = intstr.FromString("admin")
				o.Services = append(o.Services, other)
			},
		},
		{
			name:   "HPA target missing",
			rule:   lint.IDAutoscalerTargetMissing,
			change: func(o *Objects) { o.HPAs[0].Spec.ScaleTargetRef.Name = "api" },
			want:   []string{"HorizontalPodAutoscaler shop/web: scaleTargetRef Deployment/api matches no Deployment", "(lint SH007 autoscaler-target-missing)"},
		},
		{
			name:   "HPA target in another namespace",
			rule:   lint.IDAutoscalerTargetMissing,
			change: func(o *Objects) { o.HPAs[0].Namespace = "other" },
			want:   []string{"HorizontalPodAutoscaler other/web: scaleTargetRef Deployment/web matches no Deployment"},
		},
		{
			name:   "HPA target not a Deployment",
			change: func(o *Objects) { o.HPAs[0].Spec.ScaleTargetRef.Kind = "StatefulSet" },
			want:   []string{"HorizontalPodAutoscaler shop/web: scaleTargetRef.kind StatefulSet: only Deployments are scaled here"},
		},
		{
			name:   "ScaledObject without scaleTargetRef",
			rule:   lint.IDAutoscalerTargetMissing,
			change: func(o *Objects) { o.ScaledObjects[0].Spec.ScaleTargetRef = nil },
			want:   []string{"ScaledObject shop/web-keda: spec.scaleTargetRef names no workload (lint SH007"},
		},
		{
			name:   "ScaledObject without triggers",
			change: func(o *Objects) { o.ScaledObjects[0].Spec.Triggers = nil },
			want:   []string{"ScaledObject shop/web-keda: ", "at least one trigger"},
		},
		{
			name:   "ScaledObject target missing",
			rule:   lint.IDAutoscalerTargetMissing,
			change: func(o *Objects) { o.ScaledObjects[0].Spec.ScaleTargetRef.Name = "api" },
			want:   []string{"ScaledObject shop/web-keda: scaleTargetRef Deployment/api matches no Deployment"},
		},
		{
			name: "Ingress path without service backend",
			change: func(o *Objects) {
				o.Ingresses[0].Spec.Rules[0].HTTP.Paths[0].Backend.Service = nil
			},
			want: []string{`Ingress shop/web: spec.rules[0].http.paths[0] (path "/") has no service backend`},
		},
		{
			name:   "Ingress to a Service in another namespace",
			rule:   lint.IDIngressBackendMissing,
			change: func(o *Objects) { o.Ingresses[0].Namespace = "" },
			want:   []string{`Ingress default/web: path "/" sends to Service "web", which this input does not declare in the Ingress's namespace (lint SH018 ingress-backend-missing)`},
		},
		{
			name: "named targetPort one of two selected Deployments lacks",
			rule: lint.IDServiceTargetPortUnknown,
			change: func(o *Objects) {
				api := newTestDeployment("shop", "api", 1)
				api.Spec.Template.Labels["app"] = "web"
				api.Spec.Selector.MatchLabels["app"] = "web"
				api.Spec.Template.Spec.Containers[0].Ports[0].Name = "api"
				o.Deployments = append(o.Deployments, api)
			},
			want: []string{`Service shop/web: targetPort "http" is not the name of a port of Deployment/shop/api, whose pods the Service selects`},
		},
		{
			name: "Ingress default backend to a missing Service",
			rule: lint.IDIngressBackendMissing,
			change: func(o *Objects) {
				o.Ingresses[0].Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80},
				}}
			},
			want: []string{`Ingress shop/web: spec.defaultBackend sends to Service "api"`},
		},
		{
			name: "a lint-ignore annotation does not make a refused object run",
			rule: lint.IDAutoscalerTargetMissing,
			change: func(o *Objects) {
				o.HPAs[0].Annotations = map[string]string{lint.AnnotationIgnore: lint.IDAutoscalerTargetMissing}
				o.HPAs[0].Spec.ScaleTargetRef.Name = "api"
			},
			want: []string{"HorizontalPodAutoscaler shop/web: scaleTargetRef Deployment/api matches no Deployment"},
		},
		{
			name:   "ScaledObject target not a Deployment",
			change: func(o *Objects) { o.ScaledObjects[0].Spec.ScaleTargetRef.Kind = "StatefulSet" },
			want:   []string{"ScaledObject shop/web-keda: scaleTargetRef.kind StatefulSet: only Deployments are scaled here"},
		},
		{
			name: "every problem in one error",
			change: func(o *Objects) {
				o.Deployments[0].Spec.Template.Spec.Containers[0].Image = ""
				o.Services[0].Spec.Ports[0].Port = 0
				o.HPAs[0].Spec.ScaleTargetRef.Name = "api"
			},
			want: []string{
				`Deployment shop/web: container "app" has no image`,
				"Service shop/web: spec.ports[0].port 0 is out of range",
				"HorizontalPodAutoscaler shop/web: scaleTargetRef Deployment/api matches no Deployment",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validObjects()
			tt.change(o)
			err := o.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want an ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
			if tt.rule != "" && !strings.Contains(err.Error(), "(lint "+tt.rule+" ") {
				t.Errorf("Validate = %q, want it to name lint rule %s", err, tt.rule)
			}
		})
	}
}

func TestAdd(t *testing.T) {
	pdb := &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{Kind: "PodDisruptionBudget", APIVersion: "policy/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
	}
	bareNamespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	tests := []struct {
		name string
		obj  any
		// check inspects the objects after a successful Add.
		check   func(t *testing.T, o *Objects)
		wantErr string
	}{
		{
			name: "deployment without namespace goes to default",
			obj:  newTestDeployment("", "web", 1),
			check: func(t *testing.T, o *Objects) {
				if len(o.Deployments) != 1 || o.Deployments[0].Namespace != "default" {
					t.Errorf("Deployments = %+v, want web in default", o.Deployments)
				}
			},
		},
		{
			name: "namespace kept",
			obj:  newTestService("shop", "web", "web", false),
			check: func(t *testing.T, o *Objects) {
				if len(o.Services) != 1 || o.Services[0].Namespace != "shop" {
					t.Errorf("Services = %+v, want web in shop", o.Services)
				}
			},
		},
		{
			name: "KEDA ScaledObject",
			obj:  &keda.ScaledObject{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
			check: func(t *testing.T, o *Objects) {
				if len(o.ScaledObjects) != 1 || o.ScaledObjects[0].Namespace != "default" {
					t.Errorf("ScaledObjects = %+v, want web in default", o.ScaledObjects)
				}
			},
		},
		{
			name: "secret and configmap",
			obj:  &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}},
			check: func(t *testing.T, o *Objects) {
				if len(o.Secrets) != 1 || o.Secrets[0].Namespace != "default" {
					t.Errorf("Secrets = %+v", o.Secrets)
				}
			},
		},
		{
			name: "ignored kind named by its TypeMeta",
			obj:  pdb,
			check: func(t *testing.T, o *Objects) {
				if !slices.Equal(o.Ignored, []string{"PodDisruptionBudget/web"}) {
					t.Errorf("Ignored = %q, want [PodDisruptionBudget/web]", o.Ignored)
				}
			},
		},
		{
			name: "NetworkPolicy is ignored and listed",
			obj: &networkingv1.NetworkPolicy{
				TypeMeta:   metav1.TypeMeta{Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1"},
				ObjectMeta: metav1.ObjectMeta{Name: "web"},
			},
			check: func(t *testing.T, o *Objects) {
				if !slices.Equal(o.Ignored, []string{"NetworkPolicy/web"}) {
					t.Errorf("Ignored = %q, want [NetworkPolicy/web]", o.Ignored)
				}
			},
		},
		{
			name: "ignored kind named by its Go type without TypeMeta",
			obj:  bareNamespace,
			check: func(t *testing.T, o *Objects) {
				if !slices.Equal(o.Ignored, []string{"Namespace/shop"}) {
					t.Errorf("Ignored = %q, want [Namespace/shop]", o.Ignored)
				}
			},
		},
		{
			name:    "StatefulSet",
			obj:     &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}},
			wantErr: "StatefulSet/db: only Deployments run under shoal up",
		},
		{
			name:    "DaemonSet",
			obj:     &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}},
			wantErr: "DaemonSet/agent: only Deployments",
		},
		{
			name:    "bare Pod",
			obj:     &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "p"}},
			wantErr: "Pod/p: only Deployments",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Objects
			err := o.Add(tt.obj)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Add = %v, want an ErrInvalid containing %q", err, tt.wantErr)
				}
				if len(o.Deployments)+len(o.Ignored) != 0 {
					t.Errorf("Add kept the refused object: %+v", o)
				}
				return
			}
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			tt.check(t, &o)
		})
	}
}

func TestLookup(t *testing.T) {
	o := &Objects{
		Secrets: []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "creds"},
			Data:       map[string][]byte{"password": []byte("old"), "token": []byte("t0k")},
			StringData: map[string]string{"user": "ann", "password": "s3cret"},
		}},
		ConfigMaps: []*corev1.ConfigMap{{
			ObjectMeta: metav1.ObjectMeta{Name: "settings"}, // namespace "default"
			Data:       map[string]string{"LOG_LEVEL": "debug"},
		}},
	}
	tests := []struct {
		name, ns, kind, obj, key string
		want, wantErr            string
	}{
		{name: "secret data", ns: "shop", kind: "Secret", obj: "creds", key: "token", want: "t0k"},
		{name: "secret stringData overrides data", ns: "shop", kind: "Secret", obj: "creds", key: "password", want: "s3cret"},
		{name: "secret stringData", ns: "shop", kind: "Secret", obj: "creds", key: "user", want: "ann"},
		{name: "secret key missing", ns: "shop", kind: "Secret", obj: "creds", key: "ca.crt", wantErr: `cluster: secret shop/creds has no key "ca.crt"`},
		{name: "secret in another namespace", ns: "default", kind: "Secret", obj: "creds", key: "user", wantErr: "cluster: secret default/creds not found"},
		{name: "configmap in default", ns: "default", kind: "ConfigMap", obj: "settings", key: "LOG_LEVEL", want: "debug"},
		{name: "configmap key missing", ns: "default", kind: "ConfigMap", obj: "settings", key: "PORT", wantErr: `cluster: configmap default/settings has no key "PORT"`},
		{name: "unknown kind", ns: "default", kind: "Volume", obj: "settings", key: "x", wantErr: "cluster: volume default/settings not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := o.lookup(tt.ns, tt.kind, tt.obj, tt.key)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("lookup = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("lookup = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	all, err := o.lookupAll("shop", "Secret", "creds")
	if err != nil {
		t.Fatal(err)
	}
	if all["user"] != "ann" || all["password"] != "s3cret" || all["token"] != "t0k" || len(all) != 3 {
		t.Errorf("lookupAll = %v, want user=ann password=s3cret token=t0k (stringData over data)", all)
	}
	if _, err := o.lookupAll("shop", "ConfigMap", "settings"); err == nil {
		t.Error("lookupAll found a ConfigMap of another namespace")
	}
}
