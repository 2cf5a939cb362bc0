//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The project's deploy kit on the lab: deploy/overlays/lab (namespace
// shoal-lab; thumbnailer, gallery, redis; images docker.io/local/<name>:dev
// imported by `make e2e` from `shoal image build`).

const labNamespace = "shoal-lab"

// object is the part of a rendered manifest the tests look at.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// render runs kustomize on an overlay and returns the YAML and its objects.
func render(ctx context.Context, l *lab, dir string) ([]byte, []object, error) {
	out, err := l.kubectl(ctx, nil, "kustomize", dir)
	if err != nil {
		return nil, nil, err
	}
	var objs []object
	for _, doc := range strings.Split(out, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, nil, fmt.Errorf("parse rendered %s: %w", dir, err)
		}
		objs = append(objs, o)
	}
	return []byte(out), objs, nil
}

func overlayDirs(t *testing.T, l *lab) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(l.repo, "deploy", "overlays", "*", "kustomization.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays under %s/deploy/overlays (err %v)", l.repo, err)
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

// TestOverlaysServerDryRun wants the API server to accept every overlay as
// it would be applied, and `shoal lint` to agree: no finding of a rule the
// API server enforces (see serverRules), and an SH035 finding for exactly
// the fields the server drops (see checkDropped). Namespaces the overlays
// put objects in are created first (a dry run creates none) and removed at
// the end if the test made them.
func TestOverlaysServerDryRun(t *testing.T) {
	l := newLab(t)
	installGatewayAPI(t, l)
	shoal := buildShoal(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	manifests := map[string][]byte{}
	dirs := overlayDirs(t, l)
	for _, dir := range dirs {
		manifest, objs, err := render(ctx, l, dir)
		if err != nil {
			t.Fatalf("render %s: %v", dir, err)
		}
		manifests[dir] = manifest
		for _, o := range objs {
			if o.Metadata.Namespace != "" {
				ensureNamespace(t, l, o.Metadata.Namespace)
			}
		}
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, err := l.kubectl(ctx, manifests[dir], "apply", "--dry-run=server", "-o", "json", "-f", "-")
			if err != nil {
				t.Fatalf("server dry run rejected %s: %v", dir, err)
			}
			all := lintFindings(ctx, t, shoal, dir)
			if fs := serverFindings(all); len(fs) > 0 {
				t.Errorf("the API server accepts %s, but shoal lint reports %v", dir, fs)
			}
			checkDropped(t, l, manifests[dir], out, all)
		})
	}
}

// The Gateway API's standard-channel CRDs, from the module go.mod requires:
// the version `shoal lint` checks against.

var gatewayCRDsOnce sync.Mutex

// installGatewayAPI applies the standard-channel CRDs server-side (so a
// second apply changes nothing) and waits until each is Established. The
// CRDs stay: other tests and later runs use them, and the lab has no
// controller that would act on them.
func installGatewayAPI(t *testing.T, l *lab) {
	t.Helper()
	gatewayCRDsOnce.Lock()
	defer gatewayCRDsOnce.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = l.repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("find the Gateway API module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(dir, "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Gateway API CRDs in %s (%v)", dir, err)
	}
	// The validating admission policy that guards upgrades is not a CRD.
	files = slices.DeleteFunc(files, func(f string) bool { return strings.Contains(f, "_vap_") })
	for _, f := range files {
		if _, err := l.kubectl(ctx, nil, "apply", "--server-side", "--force-conflicts", "--field-manager=shoal-e2e", "-f", f); err != nil {
			t.Fatalf("install %s: %v", filepath.Base(f), err)
		}
	}
	for _, f := range files {
		if _, err := l.kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=2m", "-f", f); err != nil {
			t.Fatalf("CRD of %s not Established: %v", filepath.Base(f), err)
		}
	}
}

// lintFinding is the part of `shoal lint -o json`'s findings the tests read.
type lintFinding struct {
	Rule    string `json:"rule"`
	Object  string `json:"object"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

func (f lintFinding) String() string {
	return fmt.Sprintf("%s %s line %d: %s", f.Rule, f.Object, f.Line, f.Message)
}

// lintFindings runs `shoal lint -o json` on path.
func lintFindings(ctx context.Context, t *testing.T, shoal, path string) []lintFinding {
	t.Helper()
	cmd := exec.CommandContext(ctx, shoal, "lint", "-o", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("shoal lint %s: %v: %s", path, err, stderr.String())
	}
	var rep struct {
		Findings []lintFinding `json:"findings"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("shoal lint %s: %v\n%s", path, err, out)
	}
	return rep.Findings
}

// serverRules are the lint rules whose findings the API server would
// refuse too: a document that does not decode against the kind's schema
// (SH000) and values it rejects (SH016). The others are about what the
// objects do together, which a dry run does not check.
var serverRules = []string{"SH000", "SH016"}

func serverFindings(fs []lintFinding) []lintFinding {
	return slices.DeleteFunc(slices.Clone(fs), func(f lintFinding) bool { return !slices.Contains(serverRules, f.Rule) })
}

// TestGatewayAPILintAgreesWithServerDryRun applies Gateway API manifests
// with a server-side dry run against the standard-channel CRDs and wants
// `shoal lint` to find a fault the server enforces exactly when the server
// refuses the manifest. Faults only lint sees (references between objects)
// are asserted as such: the server takes them, lint reports their rule.
func TestGatewayAPILintAgreesWithServerDryRun(t *testing.T) {
	l := newLab(t)
	installGatewayAPI(t, l)
	shoal := buildShoal(t, l)
	ns := l.namespace(t, "gwapi")
	const gateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: any
  listeners:
    - {name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
`
	route := func(rule string) string {
		return gateway + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  hostnames: [web.example.com]
  rules:
    - ` + rule + "\n"
	}
	tests := []struct {
		name     string
		manifest string
		serverOK bool
		lintRule string // a rule only lint enforces, expected when serverOK
	}{
		{name: "valid", serverOK: true, manifest: route(`matches:
        - path: {type: PathPrefix, value: /api}
          headers: [{name: X-Canary, value: "1"}]
          queryParams: [{type: RegularExpression, name: v, value: "^2"}]
          method: GET
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: X-From, value: edge}]}
      backendRefs: [{name: web, port: 80, weight: 3}, {name: web, port: 80, weight: 0}]
      timeouts: {request: 10s, backendRequest: 2s}`)},
		{name: "v1beta1 route", serverOK: true, manifest: strings.Replace(route(`backendRefs: [{name: web, port: 80}]`),
			"gateway.networking.k8s.io/v1\nkind: HTTPRoute", "gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute", 1)},
		{name: "misspelt field", manifest: route(`backendRefs: [{name: web, port: 80, wieght: 1}]`)},
		{name: "experimental retry", manifest: route(`backendRefs: [{name: web, port: 80}]
      retry: {attempts: 2, codes: [503]}`)},
		{name: "experimental session persistence", manifest: route(`backendRefs: [{name: web, port: 80}]
      sessionPersistence: {type: Cookie, sessionName: s}`)},
		{name: "port as a string", manifest: route(`backendRefs: [{name: web, port: "80"}]`)},
		{name: "listener field misspelt", manifest: strings.Replace(route(`backendRefs: [{name: web, port: 80}]`), "hostname:", "hostnam:", 1)},
		{name: "version not served", manifest: gateway + `---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: GRPCRoute
metadata: {name: rpc}
spec:
  parentRefs: [{name: edge}]
`},
		{name: "backend Service missing", serverOK: true, lintRule: "SH025", manifest: route(`backendRefs: [{name: api, port: 80}]`)},
		{name: "backend port missing", serverOK: true, lintRule: "SH025", manifest: route(`backendRefs: [{name: web, port: 81}]`)},
		{name: "weights sum to zero", serverOK: true, lintRule: "SH026", manifest: route(`backendRefs: [{name: web, port: 80, weight: 0}]`)},
		{name: "parent Gateway missing", serverOK: true, lintRule: "SH027", manifest: strings.Replace(route(`backendRefs: [{name: web, port: 80}]`),
			"parentRefs: [{name: edge, sectionName: http}]", "parentRefs: [{name: public}]", 1)},
		{name: "hostname outside the listener", serverOK: true, lintRule: "SH029", manifest: strings.Replace(route(`backendRefs: [{name: web, port: 80}]`),
			"hostnames: [web.example.com]", "hostnames: [web.example.org]", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			path := filepath.Join(t.TempDir(), "manifest.yaml")
			if err := os.WriteFile(path, []byte(tt.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			_, serverErr := l.kubectl(ctx, []byte(tt.manifest), "apply", "-n", ns, "--dry-run=server", "-f", "-")
			all := lintFindings(ctx, t, shoal, path)
			lintErrs := serverFindings(all)
			t.Logf("server: %v; lint: %v", serverErr, all)
			if (serverErr == nil) != tt.serverOK {
				t.Fatalf("server dry run: err %v, want accepted %v", serverErr, tt.serverOK)
			}
			if (len(lintErrs) == 0) != (serverErr == nil) {
				t.Fatalf("disagree: server err %v, shoal lint %v", serverErr, lintErrs)
			}
			if tt.lintRule != "" && !slices.ContainsFunc(all, func(f lintFinding) bool { return f.Rule == tt.lintRule }) {
				t.Errorf("shoal lint reports %v, want a %s finding", all, tt.lintRule)
			}
		})
	}
}

// ensureNamespace creates ns unless it exists, and deletes it at the end of
// the test only if this call created it.
func ensureNamespace(t *testing.T, l *lab, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := l.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return
	case err != nil:
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	// Wait until it is gone: a later test may apply into the same name.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete namespace %s: %v", ns, err)
			return
		}
		if err := l.waitNamespaceGone(ctx, ns); err != nil {
			t.Errorf("namespace %s not gone: %v", ns, err)
		}
	})
}

// applyLabOverlay applies deploy/overlays/lab and waits until every
// Deployment in it is rolled out and every pod of the namespace is Ready.
func applyLabOverlay(t *testing.T, l *lab) {
	t.Helper()
	installGatewayAPI(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(l.repo, "deploy", "overlays", "lab")
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		t.Fatalf("lab overlay: %v", err)
	}
	manifest, objs, err := render(ctx, l, dir)
	if err != nil {
		t.Fatalf("render lab overlay: %v", err)
	}
	if _, err := l.kubectl(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply lab overlay: %v", err)
	}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		if err := waitDeploymentReady(ctx, l, labNamespace, o.Metadata.Name); err != nil {
			t.Fatalf("deployment %s not ready: %v\n%s", o.Metadata.Name, err, podReport(l, labNamespace))
		}
	}
	err = poll(ctx, 2*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := l.client.CoreV1().Pods(labNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if len(pods.Items) == 0 {
			return false, errors.New("no pods")
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && !podReady(&p) {
				return false, fmt.Errorf("pod %s not Ready (%s)", p.Name, p.Status.Phase)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("lab overlay pods: %v\n%s", err, podReport(l, labNamespace))
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podReport lists the namespace's pods with their states, for failures.
func podReport(l *lab, ns string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.kubectl(ctx, nil, "-n", ns, "get", "pods", "-o", "wide")
	if err != nil {
		return err.Error()
	}
	ev, _ := l.kubectl(ctx, nil, "-n", ns, "get", "events", "--sort-by=.lastTimestamp")
	lines := strings.Split(strings.TrimSpace(ev), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return out + strings.Join(lines, "\n")
}

func TestLabOverlayAllPodsReady(t *testing.T) {
	applyLabOverlay(t, newLab(t))
}

// serviceURL returns http://<ClusterIP>:<port named http> of a Service.
func serviceURL(t *testing.T, l *lab, ns, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := l.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("service %s/%s: %v", ns, name, err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" {
			return fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, p.Port)
		}
	}
	t.Fatalf("service %s/%s has no port named http", ns, name)
	return ""
}

// testPNG encodes a w×h image with enough detail that resizing it costs CPU.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), uint8((x * y) >> 3), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatalf("encode png: %v", err)
	}
	return buf.Bytes()
}

func thumbnailRequest(t *testing.T, l *lab, side int) request {
	t.Helper()
	body := testPNG(t, side, side)
	url := serviceURL(t, l, labNamespace, "thumbnailer") + "/v1/thumbnails?width=64&height=64&fit=contain"
	return httpRequest(newConnClient(), "POST", url, "image/png", func() io.Reader { return bytes.NewReader(body) }, 200)
}

// uncachedThumbnailRequest asks for a different size each time: the
// thumbnailer caches by image digest and options, and a cache hit costs no
// CPU, so load meant to raise CPU must miss.
func uncachedThumbnailRequest(t *testing.T, l *lab, side int) request {
	t.Helper()
	body := testPNG(t, side, side)
	base := serviceURL(t, l, labNamespace, "thumbnailer")
	c := newConnClient()
	var n atomic.Int64
	return func(ctx context.Context) (string, error) {
		i := n.Add(1)
		url := fmt.Sprintf("%s/v1/thumbnails?width=%d&height=%d&fit=contain", base, 16+i%480, 16+(i/480)%480)
		return httpRequest(c, "POST", url, "image/png", func() io.Reader { return bytes.NewReader(body) }, 200)(ctx)
	}
}

func readyReplicas(t *testing.T, l *lab, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := l.client.AppsV1().Deployments(labNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment %s: %v", name, err)
	}
	return int(d.Status.ReadyReplicas)
}

func TestLabOverlayServicesSpreadNewConnections(t *testing.T) {
	l := newLab(t)
	applyLabOverlay(t, l)
	tests := []struct {
		name    string
		service string
		do      func(t *testing.T) request
	}{
		{name: "thumbnailer", service: "thumbnailer", do: func(t *testing.T) request { return thumbnailRequest(t, l, 64) }},
		{name: "gallery login", service: "gallery", do: func(t *testing.T) request {
			url := serviceURL(t, l, labNamespace, "gallery") + "/v1/login"
			return httpRequest(newConnClient(), "POST", url, "application/json",
				func() io.Reader { return strings.NewReader(`{"user":"e2e"}`) }, 200, 201, 204)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// The Deployments carry no spec.replicas (their HPAs own it), so
			// a fresh apply starts with one pod until the HPA raises it to
			// minReplicas.
			replicas := 0
			err := poll(ctx, time.Second, func(context.Context) (bool, error) {
				replicas = readyReplicas(t, l, tt.service)
				return replicas >= 2, nil
			})
			if err != nil {
				t.Fatalf("%s has %d Ready replicas; spreading needs at least 2: %v", tt.service, replicas, err)
			}
			do := tt.do(t)
			if err := waitServing(ctx, l, labNamespace, tt.service, replicas, do); err != nil {
				t.Fatalf("%s: %v", tt.service, err)
			}
			checkSpread(ctx, t, do, replicas, 45*replicas)
		})
	}
}

func TestLabOverlayThumbnailerHPAScalesOnCPU(t *testing.T) {
	l := newLab(t)
	applyLabOverlay(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := l.client.AutoscalingV2().HorizontalPodAutoscalers(labNamespace).Get(ctx, "thumbnailer", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("thumbnailer HPA: %v", err)
	}
	minReplicas := int32(1) // the API's default
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	want := min(minReplicas+1, h.Spec.MaxReplicas)
	// The lab is one 2-core node: the overlay's requests may leave no room
	// for the new replicas, so the check is the autoscaler's decision, set
	// on the Deployment; where they stay Pending the log says so.
	checkHPAScales(t, l, labNamespace, "thumbnailer", "thumbnailer", want, false, uncachedThumbnailRequest(t, l, 768), 2)
	t.Logf("thumbnailer pods after scaling:\n%s", podReport(l, labNamespace))
}

func TestLabOverlayThumbnailerRollingUpdateLosesNothing(t *testing.T) {
	l := newLab(t)
	applyLabOverlay(t, l)
	// A rollout that cannot finish (no room for the surge pod) would leave
	// the overlay unready for the tests after this one: roll it back.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := l.kubectl(ctx, nil, "-n", labNamespace, "rollout", "undo", "deployment/thumbnailer"); err != nil {
			t.Logf("roll back thumbnailer: %v", err)
		}
	})
	checkRollingUpdate(t, l, labNamespace, "thumbnailer", thumbnailRequest(t, l, 64), func(ctx context.Context) error {
		_, err := l.kubectl(ctx, nil, "-n", labNamespace, "rollout", "restart", "deployment/thumbnailer")
		return err
	})
}

// TestLabOverlayGalleryCustomMetric follows a custom metric end to end: the
// gallery's http_requests_total, scraped by Prometheus, turned into
// http_requests_per_second by prometheus-adapter, read by the gallery's HPA.
func TestLabOverlayGalleryCustomMetric(t *testing.T) {
	l := newLab(t)
	applyLabOverlay(t, l)
	url := serviceURL(t, l, labNamespace, "gallery") + "/v1/login"
	login := httpRequest(newConnClient(), "POST", url, "application/json",
		func() io.Reader { return strings.NewReader(`{"user":"e2e"}`) }, 200, 201, 204)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan loadResult, 1)
	go func() { done <- steadyLoad(ctx, stop, 1, 50*time.Millisecond, login) }()
	var last string
	err := poll(ctx, 3*time.Second, func(ctx context.Context) (bool, error) {
		h, err := l.client.AutoscalingV2().HorizontalPodAutoscalers(labNamespace).Get(ctx, "gallery", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, m := range h.Status.CurrentMetrics {
			if m.Pods != nil && m.Pods.Metric.Name == "http_requests_per_second" {
				last = m.Pods.Current.AverageValue.String()
				return m.Pods.Current.AverageValue.MilliValue() > 0, nil
			}
		}
		return false, fmt.Errorf("gallery HPA has no http_requests_per_second yet (%d metrics)", len(h.Status.CurrentMetrics))
	})
	close(stop)
	res := <-done
	t.Logf("logins: ok=%d failed=%d; HPA sees http_requests_per_second=%s per pod", res.OK, res.Failed, last)
	if err != nil {
		t.Fatalf("custom metric never reached the HPA: %v", err)
	}
}
