//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The lab's own echo service (lab/cmd/labecho) proves the cluster's
// Service routing, autoscaling and rollouts independently of the project's
// services; overlay_test.go runs the same checks on those.

const echoManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: %d
  selector: {matchLabels: {app: echo}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 30
      automountServiceAccountToken: false
      enableServiceLinks: false
      containers:
      - name: echo
        image: docker.io/local/labecho:dev
        imagePullPolicy: Never
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: DRAIN_DELAY, value: 8s}
        - {name: VERSION, value: "1"}
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /readyz, port: http}
          periodSeconds: 1
          failureThreshold: 1
        resources:
          requests: {cpu: 100m, memory: 16Mi}
          limits: {cpu: 400m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
`

const echoHPA = `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: echo}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: echo}
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleUp: {stabilizationWindowSeconds: 0}
`

// deployEcho applies the echo Deployment and Service in a fresh namespace,
// waits for every replica to be Ready and returns the namespace and the
// Service's base URL.
func deployEcho(t *testing.T, l *lab, replicas int, extra string) (string, string) {
	t.Helper()
	ns := l.namespace(t, "e2e-echo")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	manifest := fmt.Sprintf(echoManifest, replicas) + "---\n" + extra
	if _, err := l.kubectl(ctx, []byte(manifest), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply echo: %v", err)
	}
	if err := waitDeploymentReady(ctx, l, ns, "echo"); err != nil {
		t.Fatalf("echo not ready: %v", err)
	}
	svc, err := l.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service: %v", err)
	}
	url := "http://" + svc.Spec.ClusterIP + ":80"
	if err := waitServing(ctx, l, ns, "echo", replicas, httpRequest(newConnClient(), "GET", url+"/", "", nil, 200)); err != nil {
		t.Fatalf("echo service: %v", err)
	}
	return ns, url
}

// waitServing waits until the Service's EndpointSlices list want ready
// endpoints, kube-proxy has written a rule for each of them, and a request
// through the Service succeeds. A Deployment is Ready, and its EndpointSlice
// says so, before kube-proxy has synced its rules: on a busy node that lag
// has been seen to last seconds, during which every new connection still
// goes to the old set.
func waitServing(ctx context.Context, l *lab, ns, svc string, want int, do request) error {
	return poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
		slices, err := l.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: "kubernetes.io/service-name=" + svc,
		})
		if err != nil {
			return false, err
		}
		var ready []string
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ready = append(ready, e.Addresses...)
				}
			}
		}
		if len(ready) < want {
			return false, fmt.Errorf("service %s/%s: %d of %d endpoints ready", ns, svc, len(ready), want)
		}
		programmed, err := kubeProxyEndpoints(ctx, ns, svc)
		if err != nil {
			return false, err
		}
		for _, ip := range ready {
			if !programmed[ip] {
				return false, fmt.Errorf("service %s/%s: kube-proxy has no rule yet for ready endpoint %s (rules for %v)", ns, svc, ip, programmed)
			}
		}
		_, err = do(ctx)
		return err == nil, err
	})
}

// kubeProxyEndpoints returns the endpoint IPs that kube-proxy's rules send
// the Service's new connections to, in the mode the lab runs it in.
func kubeProxyEndpoints(ctx context.Context, ns, svc string) (map[string]bool, error) {
	return budgetProxyEndpoints(ctx, budgetProxyMode(), ns, svc)
}

// iptablesEndpoints reads them from the nat table: kube-proxy's iptables
// rules carry comments "NS/SVC:PORT -> IP:PORT" on the jumps from a
// Service's chain to its endpoints' chains.
func iptablesEndpoints(ctx context.Context, ns, svc string) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, "iptables-save", "-t", "nat").Output()
	if err != nil {
		return nil, fmt.Errorf("read kube-proxy's rules: iptables-save -t nat: %w", err)
	}
	return parseServiceEndpointRules(string(out), ns, svc), nil
}

// parseServiceEndpointRules picks the endpoint IPs of ns/svc out of
// iptables-save output.
func parseServiceEndpointRules(rules, ns, svc string) map[string]bool {
	ips := map[string]bool{}
	prefix := `--comment "` + ns + "/" + svc
	for _, line := range strings.Split(rules, "\n") {
		if !strings.HasPrefix(line, "-A KUBE-SVC-") || !strings.Contains(line, "-j KUBE-SEP-") {
			continue
		}
		_, comment, ok := strings.Cut(line, prefix)
		if !ok {
			continue
		}
		comment, _, _ = strings.Cut(comment, `"`)
		// What follows the name is ":PORTNAME -> IP:PORT", or " -> IP:PORT"
		// for a Service whose only port has no name.
		port, target, ok := strings.Cut(comment, " -> ")
		if !ok || (port != "" && !strings.HasPrefix(port, ":")) {
			continue
		}
		if host, _, err := net.SplitHostPort(target); err == nil {
			ips[host] = true
		}
	}
	return ips
}

// waitDeploymentReady waits until the Deployment's current generation is
// fully rolled out and every wanted replica is Ready.
func waitDeploymentReady(ctx context.Context, l *lab, ns, name string) error {
	return poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
		d, err := l.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return deploymentDone(d), nil
	})
}

func deploymentDone(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want &&
		s.ReadyReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

func TestEchoServiceSpreadsNewConnections(t *testing.T) {
	l := newLab(t)
	_, url := deployEcho(t, l, 3, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checkSpread(ctx, t, httpRequest(newConnClient(), "GET", url+"/", "", nil, 200), 3, 90)
}

// checkSpread sends n requests on new connections and wants every one of
// the replicas to answer a fair share: at least a third of an even split.
// With kube-proxy's random choice the chance of a false failure is below
// one in ten thousand for the sizes used here.
func checkSpread(ctx context.Context, t *testing.T, do request, replicas, n int) {
	t.Helper()
	counts, err := spread(ctx, do, n)
	if err != nil {
		t.Fatalf("spread: %v (so far %v)", err, counts)
	}
	t.Logf("X-Served-By over %d new connections: %v", n, counts)
	if len(counts) != replicas {
		t.Fatalf("replicas answering: got %d (%v), want %d", len(counts), counts, replicas)
	}
	for by, c := range counts {
		if c < n/replicas/3 {
			t.Errorf("replica %s served %d of %d, want at least %d", by, c, n, n/replicas/3)
		}
	}
}

func TestEchoHPAScalesOnCPU(t *testing.T) {
	l := newLab(t)
	ns, url := deployEcho(t, l, 1, echoHPA)
	// Two workers each keep one request burning 200 ms of CPU in flight,
	// far above the 50 m target; the pod's 400 m limit bounds the cost.
	burn := httpRequest(newConnClient(), "GET", url+"/burn?ms=200", "", nil, 200)
	checkHPAScales(t, l, ns, "echo", "echo", 2, true, burn, 2)
}

// checkHPAScales drives load until the HorizontalPodAutoscaler named hpa
// wants at least want replicas and has set them on the Deployment, within
// four minutes; with needReady the new replicas must also be Ready (on a
// node with room for them).
func checkHPAScales(t *testing.T, l *lab, ns, hpa, deploy string, want int32, needReady bool, do request, workers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan loadResult, 1)
	go func() { done <- steadyLoad(ctx, stop, workers, 10*time.Millisecond, do) }()
	var last string
	err := poll(ctx, 3*time.Second, func(ctx context.Context) (bool, error) {
		h, err := l.client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, hpa, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("current=%d desired=%d metrics=%+v conditions=%d", h.Status.CurrentReplicas, h.Status.DesiredReplicas, h.Status.CurrentMetrics, len(h.Status.Conditions))
		if h.Status.DesiredReplicas < want {
			return false, nil
		}
		d, err := l.client.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last += fmt.Sprintf("; deployment replicas=%d ready=%d", *d.Spec.Replicas, d.Status.ReadyReplicas)
		if needReady {
			return d.Status.ReadyReplicas >= want, nil
		}
		return *d.Spec.Replicas >= want, nil
	})
	close(stop)
	res := <-done
	t.Logf("load while scaling: ok=%d failed=%d by=%v; hpa %s", res.OK, res.Failed, res.ServedBy, last)
	if err != nil {
		t.Fatalf("HPA %s did not scale to %d Ready replicas: %v; last status %s", hpa, want, err, last)
	}
}

func TestEchoRollingUpdateLosesNothing(t *testing.T) {
	l := newLab(t)
	ns, url := deployEcho(t, l, 3, "")
	do := httpRequest(newConnClient(), "GET", url+"/", "", nil, 200)
	checkRollingUpdate(t, l, ns, "echo", do, func(ctx context.Context) error {
		_, err := l.kubectl(ctx, nil, "-n", ns, "set", "env", "deployment/echo", "VERSION=2")
		return err
	})
}

// checkRollingUpdate keeps a steady load on the Service while roll starts a
// rollout of the Deployment, and wants every request answered successfully
// and the new replicas to take traffic.
func checkRollingUpdate(t *testing.T, l *lab, ns, deploy string, do request, roll func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before, err := podNames(ctx, l, ns, deploy)
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan loadResult, 1)
	go func() { done <- steadyLoad(ctx, stop, 2, 25*time.Millisecond, do) }()
	stopLoad := func() loadResult { close(stop); return <-done }

	time.Sleep(2 * time.Second) // steady load before the rollout starts
	if err := roll(ctx); err != nil {
		stopLoad()
		t.Fatalf("start rollout: %v", err)
	}
	// Let the Deployment controller see the new template first.
	err = poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
		d, err := l.client.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration >= d.Generation && deploymentDone(d) &&
			d.Status.UnavailableReplicas == 0, nil
	})
	if err == nil {
		// Old pods drain after the rollout reports done: keep the load on
		// until every one of them is gone.
		err = poll(ctx, time.Second, func(ctx context.Context) (bool, error) {
			now, err := podNames(ctx, l, ns, deploy)
			if err != nil {
				return false, err
			}
			for _, p := range before {
				if strings.Contains(strings.Join(now, " "), p) {
					return false, nil
				}
			}
			return true, nil
		})
	}
	time.Sleep(2 * time.Second) // steady load after the last old pod is gone
	res := stopLoad()
	t.Logf("rolling update under load: ok=%d failed=%d by=%v", res.OK, res.Failed, res.ServedBy)
	if err != nil {
		t.Fatalf("rollout did not finish: %v", err)
	}
	if res.Failed != 0 {
		t.Errorf("lost %d of %d requests during the rollout; first errors:\n%s", res.Failed, res.OK+res.Failed, strings.Join(res.Errors, "\n"))
	}
	if res.OK < 100 {
		t.Errorf("only %d requests answered: the load was not steady", res.OK)
	}
	newServed := 0
	for by := range res.ServedBy {
		if !strings.Contains(strings.Join(before, " "), by) {
			newServed++
		}
	}
	if newServed == 0 {
		t.Errorf("no new replica answered: %v (old pods %v)", res.ServedBy, before)
	}
}

func podNames(ctx context.Context, l *lab, ns, deploy string) ([]string, error) {
	d, err := l.client.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := l.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pods.Items))
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names, nil
}

func TestParseServiceEndpointRules(t *testing.T) {
	rules := `*nat
-A KUBE-SVC-AAA ! -s 10.244.0.0/16 -d 10.96.1.2/32 -p tcp -m comment --comment "shoal/thumbnailer:http cluster IP" -m tcp --dport 8080 -j KUBE-MARK-MASQ
-A KUBE-SVC-AAA -m comment --comment "shoal/thumbnailer:http -> 10.244.0.17:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-B1
-A KUBE-SVC-AAA -m comment --comment "shoal/thumbnailer:http -> 10.244.0.20:8080" -j KUBE-SEP-B2
-A KUBE-SVC-CCC -m comment --comment "shoal/thumbnailer-headless:http -> 10.244.0.99:8080" -j KUBE-SEP-B3
-A KUBE-SVC-DDD -m comment --comment "other/thumbnailer:http -> 10.244.0.98:8080" -j KUBE-SEP-B4
-A KUBE-SVC-EEE -m comment --comment "e2e/echo -> 10.244.0.5:8080" -j KUBE-SEP-B5
-A KUBE-SEP-B1 -p tcp -m comment --comment "shoal/thumbnailer:http" -m tcp -j DNAT --to-destination 10.244.0.17:8080
COMMIT
`
	tests := []struct {
		name, ns, svc string
		want          []string
	}{
		{name: "named port, two endpoints", ns: "shoal", svc: "thumbnailer", want: []string{"10.244.0.17", "10.244.0.20"}},
		{name: "name prefix of another service", ns: "shoal", svc: "thumbnailer-headless", want: []string{"10.244.0.99"}},
		{name: "unnamed port", ns: "e2e", svc: "echo", want: []string{"10.244.0.5"}},
		{name: "no rules", ns: "shoal", svc: "gallery", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseServiceEndpointRules(rules, tt.ns, tt.svc)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for _, ip := range tt.want {
				if !got[ip] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
