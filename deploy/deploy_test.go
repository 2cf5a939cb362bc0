package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/deploy"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	kedaapi "github.com/shoal-dev/shoal/keda"
	"github.com/shoal-dev/shoal/lint"
)

// objects builds a kustomization and decodes every object strictly.
func objects(t *testing.T, dir string) []any {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []any
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSONStrict(y)
		if err != nil {
			t.Fatal(err)
		}
		gvk := schema.FromAPIVersionAndKind(r.GetApiVersion(), r.GetKind())
		var obj any
		switch {
		case gvk.Group == "keda.sh" && gvk.Kind == "ScaledObject":
			obj = new(kedaapi.ScaledObject)
		case gvk.Group == gatewayv1.GroupName && gvk.Version == "v1" && gvk.Kind == "Gateway":
			obj = new(gatewayv1.Gateway)
		case gvk.Group == gatewayv1.GroupName && gvk.Version == "v1" && gvk.Kind == "HTTPRoute":
			obj = new(gatewayv1.HTTPRoute)
		default:
			obj, err = scheme.Scheme.New(gvk)
		}
		if err != nil {
			t.Fatalf("%s: %s/%s is neither a k8s.io/api kind nor the kit's Gateway API kinds: %v", dir, gvk, r.GetName(), err)
		}
		strict, err := sigsjson.UnmarshalStrict(js, obj)
		if err != nil || len(strict) > 0 {
			t.Fatalf("%s: %s/%s does not decode strictly: %v %v", dir, r.GetKind(), r.GetName(), err, strict)
		}
		objs = append(objs, obj)
	}
	return objs
}

func find[T any](objs []any, name func(T) string, want string) T {
	var zero T
	for _, o := range objs {
		if v, ok := o.(T); ok && name(v) == want {
			return v
		}
	}
	return zero
}

func deployment(objs []any, name string) *appsv1.Deployment {
	return find(objs, func(d *appsv1.Deployment) string { return d.Name }, name)
}

func count[T any](objs []any) int {
	n := 0
	for _, o := range objs {
		if _, ok := o.(T); ok {
			n++
		}
	}
	return n
}

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// containerPort returns the number of c's port called name, or 0.
func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func TestOverlaysBuildDecodeAndLintClean(t *testing.T) {
	for _, o := range append([]string{"base"}, deploy.Overlays()...) {
		dir := filepath.Join("overlays", o)
		if o == "base" {
			dir = "base"
		}
		t.Run(o, func(t *testing.T) {
			objs := objects(t, dir)
			for _, app := range []string{"thumbnailer", "gallery"} {
				d := deployment(objs, app)
				if d == nil {
					t.Fatalf("no Deployment %s", app)
				}
				checkPodCare(t, d)
			}
			rep, err := (&lint.Linter{}).Lint(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Findings) > 0 || rep.Objects != len(objs) {
				t.Fatalf("shoal lint %s: %d objects of %d, findings %v", dir, rep.Objects, len(objs), rep.Findings)
			}
		})
	}
}

// checkPodCare asserts what every serving Deployment of the kit must have.
func checkPodCare(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	drain, err := time.ParseDuration(env(c, "DRAIN_DELAY").Value)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(env(c, "SHUTDOWN_TIMEOUT").Value)
	if err != nil {
		t.Fatal(err)
	}
	pre := c.Lifecycle.PreStop.Sleep
	if pre == nil || time.Duration(pre.Seconds)*time.Second != drain {
		t.Errorf("%s: preStop sleep %v should equal DRAIN_DELAY %s", d.Name, pre, drain)
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace < drain+drain+stop+3*time.Second {
		t.Errorf("%s: grace %s leaves no margin over preStop+drain+shutdown", d.Name, grace)
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		// Readiness may be a grpc probe on the container's grpc port
		// instead: the gRPC health service answers from /readyz's checker.
		grpcReady := p == c.ReadinessProbe && p != nil && p.GRPC != nil && p.GRPC.Port == containerPort(c, "grpc")
		if p == nil || (!grpcReady && (p.HTTPGet == nil || p.HTTPGet.Port.StrVal != "admin")) || p.TimeoutSeconds < 2 {
			t.Errorf("%s: probe %+v should be an httpGet on the admin port (or, for readiness, a grpc probe on the grpc port) with a timeout of 2s or more", d.Name, p)
		}
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		!slices.Contains(sc.Capabilities.Drop, "ALL") || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: container security context is not restricted: %+v", d.Name, sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: needs CPU and memory requests and limits", d.Name)
	}
	keys := []string{}
	for _, tsc := range spec.TopologySpreadConstraints {
		keys = append(keys, tsc.TopologyKey)
	}
	if !slices.Contains(keys, "kubernetes.io/hostname") || !slices.Contains(keys, "topology.kubernetes.io/zone") {
		t.Errorf("%s: spread over %v, want hostname and zone", d.Name, keys)
	}
	if pod := env(c, "POD_NAME"); pod == nil || pod.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("%s: POD_NAME not from the downward API", d.Name)
	}
}

func TestOverlayDifferences(t *testing.T) {
	hpaCount := count[*autoscalingv2.HorizontalPodAutoscaler]
	soCount := count[*kedaapi.ScaledObject]
	image := func(objs []any, name string) corev1.Container {
		return deployment(objs, name).Spec.Template.Spec.Containers[0]
	}

	base := objects(t, "base")
	if got := image(base, "thumbnailer").Image; got != "ko://github.com/shoal-dev/shoal/cmd/thumbnailer" {
		t.Errorf("base image %s", got)
	}
	hpa := find(base, func(h *autoscalingv2.HorizontalPodAutoscaler) string { return h.Name }, "thumbnailer")
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 || hpa.Spec.Behavior == nil ||
		*hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
		t.Errorf("thumbnailer HPA: %+v", hpa.Spec)
	}
	gh := find(base, func(h *autoscalingv2.HorizontalPodAutoscaler) string { return h.Name }, "gallery")
	if len(gh.Spec.Metrics) != 2 || gh.Spec.Metrics[1].Pods.Metric.Name != "http_requests_per_second" {
		t.Errorf("gallery HPA should scale on CPU and http_requests_per_second: %+v", gh.Spec.Metrics)
	}
	headless := find(base, func(s *corev1.Service) string { return s.Name }, "thumbnailer-headless")
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || headless.Spec.PublishNotReadyAddresses {
		t.Errorf("thumbnailer-headless: %+v", headless)
	}
	if v := env(image(base, "gallery"), "THUMBNAILER_DNS"); v == nil || v.Value != "thumbnailer-headless:8080" {
		t.Errorf("gallery THUMBNAILER_DNS = %+v", v)
	}
	checkThumbnailerGRPC(t, base)
	if v := env(image(base, "gallery"), "THUMBNAILER_GRPC"); v != nil {
		t.Errorf("base gallery should call the thumbnailer over HTTP; THUMBNAILER_GRPC = %+v", v)
	}
	if count[*networkingv1.Ingress](base) != 0 {
		t.Error("base: the gallery's front door is a Gateway and an HTTPRoute, not an Ingress")
	}
	checkGatewayRoute(t, "base", base, "gallery.example.com", 2)

	ingressKit := objects(t, "overlays/ingress")
	ing := find(ingressKit, func(i *networkingv1.Ingress) string { return i.Name }, "gallery")
	if ing == nil || *ing.Spec.IngressClassName != "nginx" || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName == "" || ing.Namespace != "shoal" {
		t.Errorf("ingress overlay: %+v", ing)
	}
	if count[*gatewayv1.Gateway](ingressKit) != 0 || count[*gatewayv1.HTTPRoute](ingressKit) != 0 {
		t.Error("ingress overlay: the Ingress replaces the Gateway and the HTTPRoute")
	}

	lab := objects(t, "overlays/lab")
	for _, app := range []string{"thumbnailer", "gallery"} {
		c := image(lab, app)
		if c.Image != "docker.io/local/"+app+":dev" || c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("lab %s: image %s pull %s", app, c.Image, c.ImagePullPolicy)
		}
	}
	if deployment(lab, "redis") == nil || env(image(lab, "gallery"), "REDIS_URL").Value != "redis://redis:6379/0" {
		t.Error("lab: want an in-cluster Redis the gallery points at")
	}
	labHPA := find(lab, func(h *autoscalingv2.HorizontalPodAutoscaler) string { return h.Name }, "gallery")
	if *labHPA.Spec.Behavior.ScaleDown.StabilizationWindowSeconds > 60 {
		t.Errorf("lab: scale-down window %d, want short", *labHPA.Spec.Behavior.ScaleDown.StabilizationWindowSeconds)
	}

	keda := objects(t, "overlays/keda")
	if hpaCount(keda) != 0 || soCount(keda) != 2 {
		t.Errorf("keda: %d HPAs and %d ScaledObjects, want 0 and 2", hpaCount(keda), soCount(keda))
	}
	for _, o := range keda {
		if so, ok := o.(*kedaapi.ScaledObject); ok && !slices.ContainsFunc(so.Spec.Triggers, func(tr kedaapi.ScaleTrigger) bool { return tr.Type == "prometheus" }) {
			t.Errorf("keda: ScaledObject %s has no prometheus trigger", so.Name)
		}
	}

	prod := objects(t, "overlays/production")
	ref := env(image(prod, "gallery"), "REDIS_URL")
	if ref == nil || ref.ValueFrom == nil || ref.ValueFrom.SecretKeyRef == nil || ref.ValueFrom.SecretKeyRef.Name != "gallery-redis" {
		t.Errorf("production: REDIS_URL should come from Secret gallery-redis: %+v", ref)
	}
	if deployment(prod, "redis") != nil {
		t.Error("production: no in-cluster Redis")
	}
	if h := find(prod, func(h *autoscalingv2.HorizontalPodAutoscaler) string { return h.Name }, "thumbnailer"); *h.Spec.MinReplicas <= 2 {
		t.Errorf("production: thumbnailer minReplicas %d, want more than the base", *h.Spec.MinReplicas)
	}

	local := objects(t, "overlays/local")
	if hpaCount(local) != 2 {
		t.Errorf("local: shoal up reconciles the base's two HPAs; got %d", hpaCount(local))
	}
	for _, app := range []string{"thumbnailer", "gallery"} {
		d := deployment(local, app)
		if d.Spec.Replicas != nil || d.Spec.Template.Spec.Containers[0].Image != "ko://github.com/shoal-dev/shoal/cmd/"+app {
			t.Errorf("local %s: replicas %v (the HPA owns them) image %s", app, d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
		}
	}
	if r := env(image(local, "gallery"), "REDIS_URL"); r == nil || r.Value != "redis://redis:6379/0" || deployment(local, "redis") == nil {
		t.Errorf("local: sessions in the overlay's Redis by its Service name; REDIS_URL %+v", r)
	}
	checkGatewayRoute(t, "local", local, "gallery.localhost", 1)
	checkGatewayRoute(t, "lab", lab, "gallery.lab.localhost", 2)
}

// checkGatewayRoute asserts the gallery's Gateway (listeners, the first
// plain HTTP) and the HTTPRoute attached to it that sends host to the
// gallery Service's port.
func checkGatewayRoute(t *testing.T, kit string, objs []any, host string, listeners int) {
	t.Helper()
	gw := find(objs, func(g *gatewayv1.Gateway) string { return g.Name }, "gallery")
	if gw == nil || len(gw.Spec.Listeners) != listeners || gw.Spec.Listeners[0].Protocol != gatewayv1.HTTPProtocolType {
		t.Fatalf("%s: Gateway gallery %+v, want %d listeners, the first HTTP", kit, gw, listeners)
	}
	rt := find(objs, func(r *gatewayv1.HTTPRoute) string { return r.Name }, "gallery")
	if rt == nil || len(rt.Spec.ParentRefs) != 1 || rt.Spec.ParentRefs[0].Name != "gallery" ||
		!slices.Equal(rt.Spec.Hostnames, []gatewayv1.Hostname{gatewayv1.Hostname(host)}) || len(rt.Spec.Rules) != 1 {
		t.Fatalf("%s: HTTPRoute gallery %+v", kit, rt)
	}
	svc := find(objs, func(s *corev1.Service) string { return s.Name }, "gallery")
	b := rt.Spec.Rules[0].BackendRefs
	if len(b) != 1 || b[0].Name != "gallery" || b[0].Port == nil || svc == nil || int32(*b[0].Port) != svc.Spec.Ports[0].Port {
		t.Errorf("%s: HTTPRoute backendRefs %+v, want the gallery Service's port", kit, b)
	}
}

// checkThumbnailerGRPC asserts the thumbnailer's gRPC port, its readiness
// over gRPC and the Services that carry the port.
func checkThumbnailerGRPC(t *testing.T, objs []any) {
	t.Helper()
	c := deployment(objs, "thumbnailer").Spec.Template.Spec.Containers[0]
	if containerPort(c, "grpc") != 8082 {
		t.Errorf("thumbnailer: container ports %+v, want grpc 8082", c.Ports)
	}
	if v := env(c, "GRPC_PORT"); v == nil || v.Value != "8082" {
		t.Errorf("thumbnailer: GRPC_PORT %+v, want 8082", v)
	}
	// The thumbnailer refuses to start when gRPC would refuse uploads HTTP
	// takes (thumbnailer.Add).
	maxBody := int64(thumbnailer.DefaultMaxBodyBytes)
	if v := env(c, "MAX_BODY_BYTES"); v != nil {
		maxBody, _ = strconv.ParseInt(v.Value, 10, 64)
	}
	api, err := thumbnailer.New(thumbnailer.Config{MaxBodyBytes: maxBody}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if v := env(c, "GRPC_MAX_RECV_MSG_SIZE"); v == nil || v.Value != strconv.Itoa(api.MaxRecvMsgSize()) {
		t.Errorf("thumbnailer: GRPC_MAX_RECV_MSG_SIZE %+v, want %d for MAX_BODY_BYTES %d", v, api.MaxRecvMsgSize(), maxBody)
	}
	if age := env(c, "MAX_CONN_AGE"); age == nil || age.Value == "" || age.Value[0] == '-' {
		t.Errorf("thumbnailer: MAX_CONN_AGE %+v, want a max connection age for clients of the ClusterIP Service", age)
	}
	if p := c.ReadinessProbe; p == nil || p.GRPC == nil || p.GRPC.Port != 8082 {
		t.Errorf("thumbnailer: readiness %+v, want a grpc probe on 8082", p)
	}
	for _, name := range []string{"thumbnailer", "thumbnailer-headless"} {
		svc := find(objs, func(s *corev1.Service) string { return s.Name }, name)
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "grpc" })
		if i < 0 {
			t.Errorf("Service %s has no grpc port: %+v", name, svc.Spec.Ports)
			continue
		}
		p := svc.Spec.Ports[i]
		if p.Port != 8082 || p.TargetPort.StrVal != "grpc" || p.AppProtocol == nil || *p.AppProtocol != "kubernetes.io/h2c" {
			t.Errorf("Service %s: grpc port %+v, want 8082 to the grpc port, appProtocol kubernetes.io/h2c", name, p)
		}
	}
}

// TestGRPCOverlay checks that overlays/grpc is overlays/local with one
// change: the gallery calls the thumbnailer over gRPC through the headless
// Service.
func TestGRPCOverlay(t *testing.T) {
	local, grpc := objects(t, "overlays/local"), objects(t, "overlays/grpc")
	checkThumbnailerGRPC(t, grpc)
	gallery := deployment(grpc, "gallery")
	c := &gallery.Spec.Template.Spec.Containers[0]
	if v := env(*c, "THUMBNAILER_GRPC"); v == nil || v.Value != "dns:///thumbnailer-headless:8082" {
		t.Fatalf("grpc: gallery THUMBNAILER_GRPC = %+v, want dns:///thumbnailer-headless:8082", v)
	}
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "THUMBNAILER_GRPC" })
	if !reflect.DeepEqual(local, grpc) {
		t.Errorf("overlays/grpc differs from overlays/local beyond the gallery's THUMBNAILER_GRPC")
	}
}

func TestEmbeddedFSHoldsOverlays(t *testing.T) {
	for _, o := range deploy.Overlays() {
		if _, err := deploy.FS.ReadFile("overlays/" + o + "/kustomization.yaml"); err != nil {
			t.Errorf("overlay %s: %v", o, err)
		}
	}
	if _, err := os.Stat(filepath.Join("monitoring", "servicemonitor.yaml")); err != nil {
		t.Fatal(err)
	}
}

func ExampleOverlays() {
	for _, o := range deploy.Overlays() {
		fmt.Println("deploy/overlays/" + o)
	}
	// Output:
	// deploy/overlays/lab
	// deploy/overlays/keda
	// deploy/overlays/production
	// deploy/overlays/local
	// deploy/overlays/grpc
	// deploy/overlays/ingress
	// deploy/overlays/headroom
	// deploy/overlays/keda-headroom
}
