//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// gRPC on real Kubernetes: the thumbnailer's Resize on GRPC_PORT, Ready by
// a native gRPC probe (grpc.health.v1, which the kit turns NOT_SERVING at
// SIGTERM), driven by `shoal load` from the host, in two set-ups:
//
//   - headless: a headless Service, and the client balancing itself over
//     the pod addresses that grpcclient's dns:/// resolver reads from the
//     lab's CoreDNS (10.96.0.10) and re-reads every resolver interval.
//     The servers' MaxConnectionAge is off, so that only the resolver can
//     bring new pods in: the case where a client that never re-resolves
//     leaves them idle.
//   - clusterip: a ClusterIP Service, where kube-proxy picks a pod per
//     connection and the servers' MaxConnectionAge (on by default; short
//     here) makes every connection reconnect, and so be placed afresh.
//
// For each, a scale-up from 2 to 4 under load must give each pod its
// share within a bound derived from those intervals, and a rolling update
// under load must lose no call.

const (
	grpcPort = 8082
	// grpcRate is the load, calls per second: 100 gives 25 calls a second
	// to each of 4 pods, cheap calls (a 64x64 PNG, cached after the
	// first) on a 2-core node.
	grpcRate = 100
	// grpcWindow is the report's share window.
	grpcWindow = time.Second
)

const grpcManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: %[1]s}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {shoal.dev/e2e-revision: "1"}
    spec:
      # preStop + DRAIN_DELAY 3s + SHUTDOWN_TIMEOUT 10s, plus margin.
      terminationGracePeriodSeconds: %[5]d
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: thumbnailer
        image: docker.io/local/thumbnailer:dev
        imagePullPolicy: Never
        env:
        - {name: PORT, value: "8080"}
        - {name: ADMIN_PORT, value: "9090"}
        - {name: GRPC_PORT, value: "%[2]d"}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: DRAIN_DELAY, value: 3s}
        - {name: SHUTDOWN_TIMEOUT, value: 10s}
        - {name: MAX_CONN_AGE, value: "%[3]s"}
        - {name: GOMAXPROCS, value: "1"}
        # Sized for this test's 600-byte images. The kit reserves the
        # largest message (plus a 64 KiB window) of its receive budget, an
        # eighth of the memory limit (32 MiB here), for each call before
        # reading it, and refuses a call UNAVAILABLE when that is spent:
        # at the 4 MiB default, 7 calls at once; a CPU stall on the loaded
        # node once made 13 of 6,174 calls at 100/s refused. 64 KiB
        # uploads (the thumbnailer wants 64 bytes more for the message)
        # leave room for about 250.
        - {name: MAX_BODY_BYTES, value: "65536"}
        - {name: GRPC_MAX_RECV_MSG_SIZE, value: "65600"}
        - {name: LOG_LEVEL, value: warn}
        ports:
        - {name: http, containerPort: 8080}
        - {name: grpc, containerPort: %[2]d}
        - {name: admin, containerPort: 9090}
        readinessProbe:
          grpc: {port: %[2]d}
          periodSeconds: 1
          failureThreshold: 1
          timeoutSeconds: 2
        lifecycle:
          preStop: {sleep: {seconds: %[6]d}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 50m, memory: 32Mi}
          limits: {cpu: 500m, memory: 256Mi}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  %[4]s
  selector: {app: %[1]s}
  ports: [{name: grpc, port: %[2]d, targetPort: grpc, appProtocol: kubernetes.io/h2c}]
`

// grpcCase is one of the two set-ups.
type grpcCase struct {
	name     string
	headless bool
	// maxConnAge is the servers' MAX_CONN_AGE ("-1s": off); the kit adds
	// ±10% jitter.
	maxConnAge time.Duration
	// clients is how many `shoal load` processes share the load, each
	// with one channel: through a ClusterIP, one connection each, placed
	// on one pod by kube-proxy; as many clients as a Service has callers.
	clients int
	// preStop is how long a pod told to stop keeps serving, before its
	// SIGTERM: as long as a client may still be sent to it.
	preStop time.Duration
	// routeLag bounds the time from the new pods being Ready (in the
	// EndpointSlices) until a new client reaches them: in CoreDNS's
	// answer, or in kube-proxy's rules.
	routeLag time.Duration
	// bound is the time from the new pods being routable until each must
	// have its share.
	bound time.Duration
	// measure is how long the shares are measured after bound.
	measure time.Duration
	// low is the least share of the calls over measure each new pod must
	// serve, as a fraction of a fair share (1/replicas).
	low float64
}

// The two cases, with their bounds derived:
//
// headless: CoreDNS answers from its watch of the EndpointSlices through
// its cache, which holds an answer up to 30 s (the lab's Corefile is the
// stock one: ttl 30, cache 30), so routeLag = 30 s + 5 s of polling and
// CoreDNS's own watch. The test asks CoreDNS as the client does and
// starts the clock when its answer lists all four pods. grpcclient's
// resolver reads DNS again every DNSInterval (5 s), dials the new pods,
// and peak-EWMA ramps them in over the slow start (10 s): bound = 5 s +
// 10 s + one window = 16 s, so 51 s from Ready at worst. From then on
// peak-EWMA's two random choices send each call to the quicker of two
// pods: on a shared 2-core node, where pods stall on CPU in turn, the
// shares follow their latencies rather than an even split (0.12 to 0.41
// of the calls over 15 s were seen), so each new pod is held to low =
// 1/3 of fair (0.083) over the next 15 s (1,500 calls; sampling noise
// ±0.011): far above what a client that never re-resolves gives it, 0.
// The same DNS delay sets preStop: a pod leaving a rollout must serve for
// as long as a client may not yet know its replacements, DNS cache +
// resolver interval = 35 s, +1 s. With the 2 s that suffices behind a
// ClusterIP, a rollout of four pods outran CoreDNS's cache and lost a
// third of the calls: the client knew only stopped pods.
//
// clusterip: kube-proxy has written its rules a few seconds after Ready
// (routeLag 10 s, README: up to 4 s seen). The servers send GOAWAY at
// MAX_CONN_AGE ±10%, so 1.1×age after the clock starts every connection
// has been replaced, and kube-proxy placed the replacement among the
// four. bound = 1.1×5 s + one window = 6.5 s. Each of the 16 clients then
// sits on a pod chosen at random for one age at a time, so over measure
// = 30 s (6 ages) a pod's share is about Binomial(96, 1/4)/96: mean 0.25,
// deviation 0.044. low = 1/3 of fair (0.083) is 3.8 deviations below the
// mean (about 1e-4 per pod of failing by bad luck). The age is 5 s rather than the kit's 1 m default only to
// keep the test short: the default needs 12 times as long for the same
// confidence. preStop 2 s: kube-proxy stops sending new connections
// within it, and the GOAWAY at SIGTERM moves the open ones.
var grpcCases = []grpcCase{
	{
		name: "headless", headless: true, maxConnAge: -time.Second, clients: 1,
		preStop:  36 * time.Second,
		routeLag: 35 * time.Second,
		bound:    5*time.Second + 10*time.Second + grpcWindow,
		measure:  15 * time.Second,
		low:      1.0 / 3,
	},
	{
		name: "clusterip", maxConnAge: 5 * time.Second, clients: 16,
		preStop:  2 * time.Second,
		routeLag: 10 * time.Second,
		bound:    5500*time.Millisecond + grpcWindow,
		measure:  30 * time.Second,
		low:      1.0 / 3,
	},
}

func TestGRPCThumbnailer(t *testing.T) {
	l := newLab(t)
	bin := buildShoal(t, l)
	msg := filepath.Join(t.TempDir(), "resize.binpb")
	if err := os.WriteFile(msg, resizeRequest(testPNG(t, 64, 64), 32, 32), 0o600); err != nil {
		t.Fatalf("write request: %v", err)
	}
	for _, tc := range grpcCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := deployGRPC(t, l, tc, bin, msg)
			t.Run("scale-up spreads", g.checkScaleUp)
			t.Run("rolling update loses nothing", g.checkRollingUpdate)
		})
	}
}

// grpcDeployment is one case's Deployment and Service in its namespace.
type grpcDeployment struct {
	l        *lab
	tc       grpcCase
	ns, name string
	bin, msg string
	target   string // for shoal load
	svcIP    string // ClusterIP; "" when headless
}

func deployGRPC(t *testing.T, l *lab, tc grpcCase, bin, msg string) *grpcDeployment {
	t.Helper()
	g := &grpcDeployment{l: l, tc: tc, ns: l.namespace(t, "e2e-grpc-"+tc.name), name: "thumbnailer", bin: bin, msg: msg}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	svcType := "type: ClusterIP"
	if tc.headless {
		svcType = "clusterIP: None"
	}
	grace := int((tc.preStop + 3*time.Second + 10*time.Second + 5*time.Second).Seconds())
	manifest := fmt.Sprintf(grpcManifest, g.name, grpcPort, tc.maxConnAge, svcType, grace, int(tc.preStop.Seconds()))
	if _, err := l.kubectl(ctx, []byte(manifest), "-n", g.ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := waitDeploymentReady(ctx, l, g.ns, g.name); err != nil {
		t.Fatalf("deployment not ready: %v\n%s", err, podReport(l, g.ns))
	}
	if tc.headless {
		// The client asks the cluster's DNS Service itself (reachable from
		// the host through kube-proxy), for the Service's pod addresses.
		g.target = fmt.Sprintf("dns://10.96.0.10:53/%s.%s.svc.cluster.local:%d", g.name, g.ns, grpcPort)
	} else {
		svc, err := l.client.CoreV1().Services(g.ns).Get(ctx, g.name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("service: %v", err)
		}
		g.svcIP = svc.Spec.ClusterIP
		g.target = net.JoinHostPort(g.svcIP, fmt.Sprint(grpcPort))
	}
	if _, err := g.waitReady(ctx, 2); err != nil {
		t.Fatalf("service: %v", err)
	}
	if err := g.waitRoutable(ctx, 2); err != nil {
		t.Fatalf("service: %v", err)
	}
	return g
}

// waitReady waits until the Service's EndpointSlices list want Ready
// endpoints, and returns their addresses.
func (g *grpcDeployment) waitReady(ctx context.Context, want int) ([]string, error) {
	var ready []string
	err := poll(ctx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		ready, err = readyEndpoints(ctx, g.l, g.ns, g.name)
		if err != nil {
			return false, err
		}
		if len(ready) != want {
			return false, fmt.Errorf("%d ready endpoints (%v), want %d", len(ready), ready, want)
		}
		return true, nil
	})
	return ready, err
}

// waitRoutable waits until the want Ready endpoints are what a new client
// reaches: for a headless Service, the addresses CoreDNS answers (after
// its cache); for a ClusterIP, kube-proxy's rules.
func (g *grpcDeployment) waitRoutable(ctx context.Context, want int) error {
	return poll(ctx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		ready, err := readyEndpoints(ctx, g.l, g.ns, g.name)
		if err != nil {
			return false, err
		}
		var routed map[string]bool
		if g.tc.headless {
			routed, err = clusterDNSAddrs(ctx, fmt.Sprintf("%s.%s.svc.cluster.local", g.name, g.ns))
		} else {
			routed, err = kubeProxyEndpoints(ctx, g.ns, g.name)
		}
		if err != nil {
			return false, err
		}
		if len(routed) != want || len(ready) != want {
			return false, fmt.Errorf("routed to %v, ready %v, want %d", routed, ready, want)
		}
		for _, ip := range ready {
			if !routed[ip] {
				return false, fmt.Errorf("ready endpoint %s not routed yet (routed to %v)", ip, routed)
			}
		}
		return true, nil
	})
}

func readyEndpoints(ctx context.Context, l *lab, ns, svc string) ([]string, error) {
	slices, err := l.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: "kubernetes.io/service-name=" + svc,
	})
	if err != nil {
		return nil, err
	}
	var ready []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready = append(ready, e.Addresses...)
			}
		}
	}
	sort.Strings(ready)
	return ready, nil
}

// clusterDNSAddrs asks the lab's CoreDNS for a name's addresses.
func clusterDNSAddrs(ctx context.Context, host string) (map[string]bool, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, "10.96.0.10:53")
	}}
	addrs, err := r.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range addrs {
		out[a] = true
	}
	return out, nil
}

// load starts the case's clients, each a `shoal load` process with one
// channel to the target: Resize of a 64x64 PNG to 32x32, grpcRate calls a
// second in all, shares per grpcWindow. The duration only caps a run the
// test forgets to stop.
func (g *grpcDeployment) load(ctx context.Context, t *testing.T) loadClients {
	t.Helper()
	args := []string{
		g.target,
		"--grpc", "/shoal.thumbnailer.v1.Thumbnailer/Resize",
		"--body", "@" + g.msg,
		"--rate", fmt.Sprint(float64(grpcRate) / float64(g.tc.clients)),
		"--window", grpcWindow.String(),
		"--duration", "4m",
		"--timeout", "5s",
	}
	cs := make(loadClients, g.tc.clients)
	for i := range cs {
		cs[i] = startLoad(ctx, t, g.bin, args...)
	}
	return cs
}

// loadClients are `shoal load` processes run together.
type loadClients []*loadProc

// stop interrupts them all and returns their reports.
func (cs loadClients) stop(t *testing.T) []*loadReport {
	t.Helper()
	reps := make([]*loadReport, len(cs))
	for i, p := range cs {
		reps[i] = p.stop(t)
	}
	return reps
}

func (g *grpcDeployment) scale(ctx context.Context, replicas int) error {
	_, err := g.l.kubectl(ctx, nil, "-n", g.ns, "scale", "deployment/"+g.name, fmt.Sprintf("--replicas=%d", replicas))
	return err
}

// checkScaleUp scales 2 → 4 under load and wants each new pod to serve at
// least low of a fair share over measure, starting bound after the new
// pods became routable.
func (g *grpcDeployment) checkScaleUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const from, to = 2, 4
	old, err := podNames(ctx, g.l, g.ns, g.name)
	if err != nil {
		t.Fatalf("pods: %v", err)
	}
	load := g.load(ctx, t)
	// Steady load on the two pods first, so the clients have their
	// connections and the picker its history when the new pods come.
	if err := waitCtx(ctx, 3*time.Second); err != nil {
		load.stop(t)
		t.Fatal(err)
	}
	scaled := time.Now()
	if err := g.scale(ctx, to); err != nil {
		load.stop(t)
		t.Fatalf("scale to %d: %v", to, err)
	}
	ready, err := g.waitReady(ctx, to)
	readyAt := time.Now()
	if err != nil {
		load.stop(t)
		t.Fatalf("scaled to %d but not Ready: %v\n%s", to, err, podReport(g.l, g.ns))
	}
	rctx, rcancel := context.WithTimeout(ctx, g.tc.routeLag)
	err = g.waitRoutable(rctx, to)
	rcancel()
	routable := time.Now()
	if err != nil {
		load.stop(t)
		t.Fatalf("%d pods Ready but not routable within %s: %v", to, g.tc.routeLag, err)
	}
	measureFrom := routable.Add(g.tc.bound)
	measureTo := measureFrom.Add(g.tc.measure)
	if err := waitCtx(ctx, time.Until(measureTo)+grpcWindow); err != nil {
		load.stop(t)
		t.Fatal(err)
	}
	reps := load.stop(t)
	pods, err := podNames(ctx, g.l, g.ns, g.name)
	if err != nil {
		t.Fatalf("pods: %v", err)
	}
	tot := sumReports(reps...)
	t.Logf("scaled %d → %d under load: Ready %s after the scale (%v), routable %s after that; %d calls, %d OK; shares measured %s..%s after routable",
		from, to, readyAt.Sub(scaled).Round(100*time.Millisecond), ready, routable.Sub(readyAt).Round(100*time.Millisecond),
		tot.Scheduled, tot.OK, g.tc.bound, g.tc.bound+g.tc.measure)
	if tot.Lost > 0 {
		t.Errorf("lost %d of %d calls while scaling up: %s", tot.Lost, tot.Scheduled, tot.LostKinds)
	}
	series := mergeReports(reps...)
	counts, span := series.counts(measureFrom, measureTo)
	if span < g.tc.measure-grpcWindow {
		t.Fatalf("the reports cover %s of the %s measured", span, g.tc.measure)
	}
	fair := 1.0 / float64(to)
	var total int64
	for _, n := range counts {
		total += n
	}
	arrived := series.firstShare(pods, routable, g.tc.low*fair)
	newPods := 0
	for _, pod := range pods {
		share := float64(counts[pod]) / float64(max(total, 1))
		at := "never"
		if arrived[pod] >= 0 {
			at = fmt.Sprintf("%s after routable", arrived[pod])
		}
		age := "old"
		if !slices.Contains(old, pod) {
			age = "new"
			newPods++
		}
		t.Logf("  %s pod %s: %d of %d calls, share %.3f (fair %.3f); first window at ≥ %.0f%% of fair: %s",
			age, pod, counts[pod], total, share, fair, 100*g.tc.low, at)
		if age == "new" && share < g.tc.low*fair {
			t.Errorf("new pod %s served %.3f of the calls %s..%s after routable, want at least %.3f",
				pod, share, g.tc.bound, g.tc.bound+g.tc.measure, g.tc.low*fair)
		}
	}
	if t.Failed() {
		t.Logf("calls per pod per window, from the scale on:\n%s", series.timeline(pods, scaled))
	}
	if newPods != to-from {
		t.Errorf("%d new pods (%v, before %v), want %d", newPods, pods, old, to-from)
	}
	for name := range counts {
		if !slices.Contains(pods, name) {
			t.Errorf("calls served by %s, not one of the Deployment's pods %v", name, pods)
		}
	}
	if float64(total) < 0.8*grpcRate*g.tc.measure.Seconds() {
		t.Errorf("only %d calls answered in %s: the load was not steady", total, g.tc.measure)
	}
}

// checkRollingUpdate changes the pod template's annotation under load,
// waits for the rollout and every old pod to be gone, and wants no call
// lost and the new pods to have served.
func (g *grpcDeployment) checkRollingUpdate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before, err := podNames(ctx, g.l, g.ns, g.name)
	if err != nil {
		t.Fatalf("pods: %v", err)
	}
	load := g.load(ctx, t)
	if err := waitCtx(ctx, 2*time.Second); err != nil {
		load.stop(t)
		t.Fatal(err)
	}
	started := time.Now()
	patch := `{"spec":{"template":{"metadata":{"annotations":{"shoal.dev/e2e-revision":"2"}}}}}`
	if _, err := g.l.kubectl(ctx, nil, "-n", g.ns, "patch", "deployment/"+g.name, "-p", patch); err != nil {
		load.stop(t)
		t.Fatalf("patch: %v", err)
	}
	err = poll(ctx, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		d, err := g.l.client.AppsV1().Deployments(g.ns).Get(ctx, g.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if !deploymentDone(d) || d.Status.UnavailableReplicas != 0 {
			return false, nil
		}
		// Old pods drain after the rollout reports done: keep the load on
		// until every one of them is gone.
		now, err := podNames(ctx, g.l, g.ns, g.name)
		if err != nil {
			return false, err
		}
		for _, p := range before {
			if slices.Contains(now, p) {
				return false, nil
			}
		}
		return true, nil
	})
	rolled := time.Since(started)
	if err == nil {
		err = waitCtx(ctx, 2*time.Second) // steady load after the last old pod is gone
	}
	tot := sumReports(load.stop(t)...)
	after, _ := podNames(context.Background(), g.l, g.ns, g.name)
	t.Logf("rolling update under load: old pods gone %s after the patch; %d calls, %d OK; served by %v",
		rolled.Round(100*time.Millisecond), tot.Scheduled, tot.OK, tot.Replicas)
	if err != nil {
		t.Fatalf("rollout did not finish: %v\n%s", err, podReport(g.l, g.ns))
	}
	if tot.Lost > 0 {
		t.Errorf("lost %d of %d calls during the rollout: %s", tot.Lost, tot.Scheduled, tot.LostKinds)
	}
	if float64(tot.OK) < 0.8*grpcRate*rolled.Seconds() {
		t.Errorf("only %d calls answered OK in %s: the load was not steady", tot.OK, rolled)
	}
	var newServed []string
	for name, n := range tot.Replicas {
		if slices.Contains(after, name) && n > 0 {
			newServed = append(newServed, name)
		}
	}
	if len(newServed) == 0 {
		t.Errorf("no new pod served: %v (new pods %v)", tot.Replicas, after)
	}
}

// waitCtx waits d, or less if ctx ends first (then its error). It paces
// the load's phases; it never stands in for a condition.
func waitCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// resizeRequest encodes a shoal.thumbnailer.v1.ResizeRequest in protobuf's
// wire format (image = 1, width = 2, height = 3; fit left unset), the
// message `shoal load` sends as is. Written out by hand so that the lab's
// module needs neither the repository's generated code nor protobuf's.
func resizeRequest(image []byte, width, height uint64) []byte {
	varint := func(b []byte, v uint64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	const bytesType, varintType = 2, 0 // wire types
	b := varint([]byte{1<<3 + bytesType}, uint64(len(image)))
	b = append(b, image...)
	b = varint(append(b, 2<<3+varintType), width)
	return varint(append(b, 3<<3+varintType), height)
}
