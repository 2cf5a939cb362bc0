//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Rollout budgets, measured: how long an endpoint change takes to reach
// traffic, and how long a new pod takes to get its fair share. These are
// long experiments, run only with SHOAL_LAB_BUDGETS=1 (`make -C lab
// budgets`), never in CI; they print their tables (and write them as
// Markdown to SHOAL_LAB_BUDGETS_OUT when set) rather than hold the
// cluster to bounds. docs/rollout-budgets.md explains the figures and how
// `shoal lint` uses them.
//
// propagation: a 4-replica thumbnailer behind a ClusterIP and a headless
// Service; its pods are deleted two at a time (each keeps serving through
// a long preStop, so that the time measured is the routing's, not the
// pod's death) and the Deployment replaces them. For each pod leaving,
// from the delete, and each pod joining, from the watch seeing it Ready:
// when the EndpointSlice changed (watch delivery), when kube-proxy's
// rules changed (polled every 200 ms), when CoreDNS's answer for the
// headless name changed (polled every 250 ms), and when traffic stopped
// or started reaching the pod, for a client opening a connection per
// request to the ClusterIP and for the gallery (run on the host) calling
// the thumbnailer through Shoal's balancer over the headless name
// (THUMBNAILER_DNS, round_robin, so that every pod gets every fourth
// call).
//
// fair-share: the thumbnailer scaled 2 → 4 under load; time from the new
// pods Ready to the first 1 s window in which each new pod serves at least
// 90% of its fair share (and to the first 5 s whose mean does), for
// keep-alive clients of a ClusterIP with and without MAX_CONN_AGE (1m, the
// kit's default) and for the gallery's three policies over the headless
// Service.

const budgetManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: %[4]d
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
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: DRAIN_DELAY, value: 1s}
        - {name: SHUTDOWN_TIMEOUT, value: 5s}
        - {name: MAX_CONN_AGE, value: "%[5]s"}
        - {name: GOMAXPROCS, value: "1"}
        - {name: LOG_LEVEL, value: warn}
        - {name: REQUEST_LOG_SAMPLE, value: "-1"}
        # The kit refuses a memory limit that leaves less than two of the
        # largest upload (10 MiB by default); these are 16x16 PNGs.
        - {name: MAX_BODY_BYTES, value: "65536"}
        ports:
        - {name: http, containerPort: 8080}
        - {name: admin, containerPort: 9090}
        readinessProbe:
          httpGet: {path: /readyz, port: admin}
          periodSeconds: 1
          failureThreshold: 1
          timeoutSeconds: 2
        lifecycle:
          preStop: {sleep: {seconds: %[3]d}}
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
  selector: {app: %[1]s}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s-headless}
spec:
  clusterIP: None
  selector: {app: %[1]s}
  ports: [{name: http, port: 8080, targetPort: http}]
`

const (
	// budgetRate is each client's requests per second.
	budgetRate = 40
	// budgetSilence is how long a client must not have reached a pod for
	// the pod to count as no longer reached: at budgetRate over at most
	// 4 pods a reached pod answers every 100 ms or so.
	budgetSilence = 3 * time.Second
	// budgetPreStop keeps a deleted pod serving well past CoreDNS's
	// cache (30 s) and the resolver's interval (5 s).
	budgetPreStop = 60
	// budgetDNSCache is how long the lab's CoreDNS caches an answer
	// (lab/manifests/coredns.yaml: ttl 30, cache 30).
	budgetDNSCache = 30 * time.Second
	// budgetSamples is the default number of pods deleted (and as many
	// replaced) by the propagation experiment; SHOAL_LAB_BUDGET_SAMPLES
	// sets another. A cycle waits up to budgetDNSCache, deletes two and
	// waits until the gallery's DNS view has followed, 25–60 s in all.
	budgetSamples = 20
	// budgetPropagationFor bounds the propagation experiment: no cycle
	// starts after it, and the figures are those of the cycles done, their
	// number in the table. With budgetSamples it keeps a run of
	// `make -C lab budgets` within about 15 minutes on a loaded node.
	budgetPropagationFor = 8 * time.Minute
)

func TestBudgets(t *testing.T) {
	if os.Getenv("SHOAL_LAB_BUDGETS") != "1" {
		t.Skip("long experiment: set SHOAL_LAB_BUDGETS=1 (make -C lab budgets)")
	}
	l := newLab(t)
	gallery := buildBudgetGallery(t, l)
	imgs := budgetImages(t, 256)
	mode := budgetProxyMode()
	var report strings.Builder
	fmt.Fprintf(&report, "kube-proxy mode: %s; %s\n\n", mode, budgetLoadAverage())
	t.Run("propagation", func(t *testing.T) {
		samples := budgetSamples
		if v, err := strconv.Atoi(os.Getenv("SHOAL_LAB_BUDGET_SAMPLES")); err == nil && v > 0 {
			samples = v
		}
		report.WriteString(measurePropagation(t, l, gallery, imgs, mode, samples))
	})
	t.Run("fair-share", func(t *testing.T) {
		report.WriteString(measureFairShare(t, l, gallery, imgs))
	})
	fmt.Fprintf(&report, "\nat the end: %s\n", budgetLoadAverage())
	t.Logf("results:\n%s", report.String())
	if out := os.Getenv("SHOAL_LAB_BUDGETS_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
}

func budgetLoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}

// budgetNamespace is a fresh namespace for one experiment. When the test
// ends its Deployments are scaled to zero and their pods deleted at once
// (they would otherwise sleep out a preStop of up to a minute), then the
// namespace is deleted, and the test waits until it is gone, so that the
// next experiment on the shared lab starts on a quiet node.
func budgetNamespace(t *testing.T, l *lab, prefix string) string {
	t.Helper()
	var ns string
	// Cleanups run last first: this one after the namespace's deletion.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.waitNamespaceGone(ctx, ns); err != nil {
			t.Errorf("namespace %s not gone: %v", ns, err)
		}
	})
	ns = l.namespace(t, prefix)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := l.kubectl(ctx, nil, "-n", ns, "scale", "deployment", "--all", "--replicas=0"); err != nil {
			t.Logf("scale %s's deployments to 0: %v", ns, err)
		}
		now := int64(0)
		if err := l.client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &now}, metav1.ListOptions{}); err != nil {
			t.Logf("delete %s's pods: %v", ns, err)
		}
	})
	return ns
}

// budgetDeploy applies the manifest and waits for every replica.
func budgetDeploy(t *testing.T, l *lab, ns, name string, replicas, preStop int, maxConnAge string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := fmt.Sprintf(budgetManifest, name, replicas, preStop, preStop+15, maxConnAge)
	if _, err := l.kubectl(ctx, []byte(m), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := waitDeploymentReady(ctx, l, ns, name); err != nil {
		t.Fatalf("%s not ready: %v\n%s", name, err, podReport(l, ns))
	}
}

// servingPods lists the Ready pods of app that are not terminating.
func budgetServingPods(ctx context.Context, l *lab, ns, app string) ([]corev1.Pod, error) {
	list, err := l.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out, nil
}

// budgetStages are the places a change is observed, in the order it
// travels; the budgetStage constants index them.
var budgetStages = []string{"EndpointSlice", "kube-proxy rules", "ClusterIP client (new conn per request)", "CoreDNS answer (headless)", "gallery via balancer (DNS, round_robin)"}

const (
	budgetStageSlice = iota
	budgetStageProxy
	budgetStageClusterIPClient
	budgetStageDNS
	budgetStageGallery
)

func measurePropagation(t *testing.T, l *lab, galleryBin string, imgs [][]byte, mode string, samples int) string {
	const app, replicas, perCycle = "prop", 4, 2
	ns := budgetNamespace(t, l, "e2e-budget-prop")
	budgetDeploy(t, l, ns, app, replicas, budgetPreStop, "-1s")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	svcIP := strings.TrimPrefix(serviceURL(t, l, ns, app), "http://")
	headless := fmt.Sprintf("%s-headless.%s.svc.cluster.local", app, ns)
	sw := l.budgetWatchSlices(ctx, &wg, ns, app, app+"-headless")
	pw := l.budgetWatchPods(ctx, &wg, ns)
	proxy, dns := &budgetTimeline{}, &budgetTimeline{}
	budgetPoll(ctx, &wg, 200*time.Millisecond, proxy, func(ctx context.Context) (map[string]bool, error) {
		return budgetProxyEndpoints(ctx, mode, ns, app)
	})
	budgetPoll(ctx, &wg, 250*time.Millisecond, dns, func(ctx context.Context) (map[string]bool, error) {
		return budgetDNSAddrs(ctx, headless)
	})
	send, _, closeIdle := budgetThumbnailerSender("http://"+svcIP, 0, imgs)
	defer closeIdle()
	direct := budgetDrive(ctx, &wg, budgetRate, send)
	g := startBudgetGallery(t, galleryBin, headless+":8080", "round_robin")
	viaGallery := budgetDrive(ctx, &wg, budgetRate, g.budgetSender(imgs[:1]))

	leave := make([][]time.Duration, len(budgetStages))
	join := make([][]time.Duration, len(budgetStages))
	known := map[string]bool{}
	// kube-proxy's own view of the same changes, as a cross-check of
	// the polled rules: its histogram before and after the cycles.
	les, progBefore, progErr := budgetReadProgramming(ctx)
	start := time.Now()
	for cycle := 0; len(leave[0]) < samples && time.Since(start) < budgetPropagationFor; cycle++ {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
		pods, err := budgetServingPods(cctx, l, ns, app)
		if err != nil || len(pods) < replicas {
			ccancel()
			t.Fatalf("cycle %d: %d serving pods (%v), want %d\n%s", cycle, len(pods), err, replicas, podReport(l, ns))
		}
		for _, p := range pods {
			known[p.Name] = true
		}
		// Every pod reached by both clients before the cycle starts.
		err = poll(cctx, 250*time.Millisecond, func(context.Context) (bool, error) {
			for _, p := range pods {
				if _, ok := direct.first(p.Name, time.Time{}); !ok {
					return false, fmt.Errorf("ClusterIP client never reached %s", p.Name)
				}
				if _, ok := viaGallery.first(p.Name, time.Time{}); !ok {
					return false, fmt.Errorf("gallery never reached %s", p.Name)
				}
			}
			return true, nil
		})
		if err != nil {
			ccancel()
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		// A cycle ends when CoreDNS's cache has just been refilled, so
		// deleting at once would time every cycle from the same phase of
		// the cache (the first run of this experiment saw CoreDNS follow
		// in 22–29 s, never sooner, never the whole 30 s). The delete
		// waits a different part of the cache's TTL each cycle (the
		// golden-ratio sequence: any first cycles, however many the
		// time bound leaves, spread evenly over the phase).
		_, frac := math.Modf(float64(cycle) * 0.6180339887)
		if err := waitCtx(cctx, time.Duration(frac*float64(budgetDNSCache))); err != nil {
			ccancel()
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		gone := pods[:perCycle]
		deleted := time.Now()
		for _, p := range gone {
			if err := l.client.CoreV1().Pods(ns).Delete(cctx, p.Name, metav1.DeleteOptions{}); err != nil {
				ccancel()
				t.Fatalf("delete %s: %v", p.Name, err)
			}
		}
		var fresh []string
		err = poll(cctx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
			now := time.Now()
			for _, p := range gone {
				ip := p.Status.PodIP
				switch {
				case sw.ready[app].now(ip) || sw.ready[app+"-headless"].now(ip):
					return false, fmt.Errorf("%s still ready in the EndpointSlices", p.Name)
				case proxy.now(ip):
					return false, fmt.Errorf("%s still in kube-proxy's rules", p.Name)
				case dns.now(ip):
					return false, fmt.Errorf("%s still in CoreDNS's answer", p.Name)
				}
				for _, c := range []*budgetHits{direct, viaGallery} {
					mine, latest := c.last(p.Name)
					if now.Sub(mine) < budgetSilence || now.Sub(latest) > time.Second {
						return false, fmt.Errorf("%s still reached (last %s ago)", p.Name, now.Sub(mine).Round(time.Millisecond))
					}
				}
			}
			serving, err := budgetServingPods(ctx, l, ns, app)
			if err != nil {
				return false, err
			}
			fresh = fresh[:0]
			for _, p := range serving {
				if !known[p.Name] {
					fresh = append(fresh, p.Name)
				}
			}
			if len(fresh) < perCycle {
				return false, fmt.Errorf("%d replacement pods Ready, want %d", len(fresh), perCycle)
			}
			for _, name := range fresh {
				_, ip, ok := pw.ready(name)
				switch {
				case !ok || ip == "":
					return false, fmt.Errorf("watch has not seen %s Ready", name)
				case !sw.ready[app].now(ip) || !sw.ready[app+"-headless"].now(ip):
					return false, fmt.Errorf("%s not ready in the EndpointSlices", name)
				case !proxy.now(ip):
					return false, fmt.Errorf("%s not in kube-proxy's rules", name)
				case !dns.now(ip):
					return false, fmt.Errorf("%s not in CoreDNS's answer", name)
				}
				for _, c := range []*budgetHits{direct, viaGallery} {
					if _, ok := c.first(name, time.Time{}); !ok {
						return false, fmt.Errorf("%s not reached yet", name)
					}
				}
			}
			return true, nil
		})
		ccancel()
		if err != nil {
			t.Fatalf("cycle %d: %v\n%s", cycle, err, podReport(l, ns))
		}
		for _, p := range gone {
			ip := p.Status.PodIP
			d0, _ := sw.ready[app].since(ip, false, deleted)
			d1, _ := proxy.since(ip, false, deleted)
			d3, _ := dns.since(ip, false, deleted)
			mine, _ := direct.last(p.Name)
			viaG, _ := viaGallery.last(p.Name)
			for i, d := range []time.Duration{d0, d1, max(mine.Sub(deleted), 0), d3, max(viaG.Sub(deleted), 0)} {
				leave[i] = append(leave[i], d)
			}
			t.Logf("cycle %d: %s (%s) left: slice %s, kube-proxy %s, ClusterIP client %s, CoreDNS %s, gallery %s after the delete",
				cycle, p.Name, ip, d0, d1, max(mine.Sub(deleted), 0), d3, max(viaG.Sub(deleted), 0))
		}
		for _, name := range fresh[:perCycle] {
			known[name] = true
			readyAt, ip, _ := pw.ready(name)
			d0, _ := sw.ready[app].since(ip, true, readyAt)
			d1, _ := proxy.since(ip, true, readyAt)
			d3, _ := dns.since(ip, true, readyAt)
			a, _ := direct.first(name, time.Time{})
			b, _ := viaGallery.first(name, time.Time{})
			for i, d := range []time.Duration{d0, d1, max(a.Sub(readyAt), 0), d3, max(b.Sub(readyAt), 0)} {
				join[i] = append(join[i], d)
			}
			t.Logf("cycle %d: %s (%s) joined: slice %s, kube-proxy %s, ClusterIP client %s, CoreDNS %s, gallery %s after Ready",
				cycle, name, ip, d0, d1, max(a.Sub(readyAt), 0), d3, max(b.Sub(readyAt), 0))
		}
	}
	cancel()
	wg.Wait()
	if n := direct.errors.Load() + viaGallery.errors.Load(); n > 0 {
		t.Logf("%d requests failed or were skipped (a deleted pod keeps serving through its preStop, so none should): ClusterIP client %q, gallery %q",
			n, direct.failed(), viaGallery.failed())
	}
	if len(leave[0]) == 0 {
		t.Fatalf("no pod deleted and replaced within %v", budgetPropagationFor)
	}
	var b strings.Builder
	bound := ""
	if len(leave[0]) < samples {
		bound = fmt.Sprintf(", of %d asked: the experiment's %v bound ended it", samples, budgetPropagationFor)
	}
	fmt.Fprintf(&b, "Endpoint change to traffic, kube-proxy %s, %d samples per kind%s (pods deleted %d at a time, %.1f min; p50 / p99 / max):\n\n",
		mode, len(leave[0]), bound, perCycle, time.Since(start).Minutes())
	b.WriteString("| observed at | pod deleted → gone (from the delete) | pod Ready → reached (from the watch's Ready) |\n| --- | --- | --- |\n")
	for i, s := range budgetStages {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s, budgetPctl(leave[i]), budgetPctl(join[i]))
	}
	if progErr == nil {
		var progAfter []float64
		var les2 []float64
		les2, progAfter, progErr = budgetReadProgramming(context.Background())
		if progErr == nil && !slices.Equal(les, les2) {
			progErr = fmt.Errorf("%s's buckets changed", budgetProgrammingName)
		}
		if progErr == nil {
			n, p99, all := budgetHistogramSince(les, progBefore, progAfter)
			fmt.Fprintf(&b, "\nkube-proxy's own %s over the cycles (every endpoint change of the node, from its trigger time): %d changes, 99%% within %g s, all within %g s (its buckets' bounds).\n",
				budgetProgrammingName, n, p99, all)
		}
	}
	if progErr != nil {
		fmt.Fprintf(&b, "\nkube-proxy's own %s: unread (%v).\n", budgetProgrammingName, progErr)
	}
	safeClusterIP, safeHeadless := budgetSafeDrain(leave)
	fmt.Fprintf(&b, "\nSmallest safe preStop + DRAIN_DELAY, kube-proxy %s (the slowest sample, rounded up to a second): ClusterIP %s, headless %s.\n\n",
		mode, safeClusterIP, safeHeadless)
	return b.String()
}

// budgetSafeDrain reads the smallest safe preStop + DRAIN_DELAY off the
// propagation's pods-leaving samples (indexed as budgetStages): a pod
// must accept requests until the last client has stopped sending it new
// ones, which for a ClusterIP Service is when kube-proxy's rules dropped
// it and the client opening a connection per request last reached it,
// and for a headless one when the gallery, balancing over CoreDNS's
// answer, last reached it. The slowest sample, rounded up to a whole
// second: a floor measured on this node, not a bound.
func budgetSafeDrain(leave [][]time.Duration) (clusterIP, headless time.Duration) {
	slowest := func(stages ...int) time.Duration {
		var m time.Duration
		for _, i := range stages {
			_, _, mx := budgetPercentiles(leave[i])
			m = max(m, mx)
		}
		return (m + time.Second - 1).Truncate(time.Second)
	}
	return slowest(budgetStageProxy, budgetStageClusterIPClient), slowest(budgetStageGallery)
}

func budgetPctl(ds []time.Duration) string {
	p50, p99, mx := budgetPercentiles(ds)
	r := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	return r(p50) + " / " + r(p99) + " / " + r(mx)
}

// budgetShareCase is one client of the fair-share experiment; dials is
// nil for a client that balances per request.
type budgetShareCase struct {
	name  string
	app   string
	log   *budgetHits
	dials *budgetDials
}

// budgetShareConns is the number of keep-alive connections of each
// ClusterIP client: each a 1/16 share, placed at random by kube-proxy.
const budgetShareConns = 16

func measureFairShare(t *testing.T, l *lab, galleryBin string, imgs [][]byte) string {
	const from, to, rate = 2, 4, 30
	const measure = 100 * time.Second
	ns := budgetNamespace(t, l, "e2e-budget-share")
	budgetDeploy(t, l, ns, "noage", from, 5, "-1s")
	budgetDeploy(t, l, ns, "age", from, 5, "1m")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	pw := l.budgetWatchPods(ctx, &wg, ns)
	headless := fmt.Sprintf("noage-headless.%s.svc.cluster.local:8080", ns)
	var cases []budgetShareCase
	for _, c := range []struct{ name, app string }{
		{fmt.Sprintf("ClusterIP, keep-alive (%d conns), no MAX_CONN_AGE", budgetShareConns), "noage"},
		{fmt.Sprintf("ClusterIP, keep-alive (%d conns), MAX_CONN_AGE 1m", budgetShareConns), "age"},
	} {
		send, dials, closeIdle := budgetThumbnailerSender(serviceURL(t, l, ns, c.app), budgetShareConns, imgs)
		defer closeIdle()
		cases = append(cases, budgetShareCase{c.name, c.app, budgetDrive(ctx, &wg, rate, send), dials})
	}
	for _, policy := range []string{"round_robin", "peak_ewma", "consistent_hash"} {
		g := startBudgetGallery(t, galleryBin, headless, policy)
		cases = append(cases, budgetShareCase{"headless, gallery " + policy + " (256 keys)", "noage", budgetDrive(ctx, &wg, rate, g.budgetSender(imgs)), nil})
	}
	loadFrom := time.Now()
	if err := waitCtx(ctx, 10*time.Second); err != nil { // steady load first
		t.Fatal(err)
	}
	old := map[string]bool{}
	for _, app := range []string{"noage", "age"} {
		pods, err := budgetServingPods(ctx, l, ns, app)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			old[p.Name] = true
		}
		if _, err := l.kubectl(ctx, nil, "-n", ns, "scale", "deployment/"+app, fmt.Sprintf("--replicas=%d", to)); err != nil {
			t.Fatalf("scale: %v", err)
		}
	}
	newPods := map[string][]string{}
	readyAt := map[string]time.Time{}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	err := poll(rctx, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		for _, app := range []string{"noage", "age"} {
			pods, err := budgetServingPods(ctx, l, ns, app)
			if err != nil {
				return false, err
			}
			var fresh []string
			for _, p := range pods {
				if at, _, ok := pw.ready(p.Name); ok && !old[p.Name] {
					fresh = append(fresh, p.Name)
					if at.After(readyAt[app]) {
						readyAt[app] = at
					}
				}
			}
			if len(fresh) < to-from {
				return false, fmt.Errorf("%s: %d new pods Ready", app, len(fresh))
			}
			newPods[app] = fresh
		}
		return true, nil
	})
	rcancel()
	if err != nil {
		t.Fatalf("scale-up: %v\n%s", err, podReport(l, ns))
	}
	end := readyAt["noage"]
	if readyAt["age"].After(end) {
		end = readyAt["age"]
	}
	if err := waitCtx(ctx, time.Until(end.Add(measure))+time.Second); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "Time to fair share after a scale-up %d → %d (%d requests/s per client, the load on from %.0f s before the new pods were Ready; from the last new pod Ready to the end of the first 1 s window in which every new pod serves ≥ 90%% of a fair share, and of the first 5 s whose mean does; when every keep-alive connection had been dialled again, so placed afresh by kube-proxy; then the new pods' share over the last 20 s of %s, fair %.2f):\n\n",
		from, to, rate, readyAt["age"].Sub(loadFrom).Seconds(), measure, 1.0/to)
	b.WriteString("| client | first 1 s window | first 5 s mean | every connection placed afresh | new pods' share, last 20 s |\n| --- | --- | --- | --- | --- |\n")
	for _, c := range cases {
		ws := c.log.windows(readyAt[c.app], time.Second, int(measure/time.Second))
		first, sustained, late := budgetShareTimes(ws, newPods[c.app], 1.0/to, 0.9, 5, 20)
		redial := "– (per request)"
		if c.dials != nil {
			redial = fmt.Sprintf("never in %.0f s", measure.Seconds())
			if d, ok := c.dials.redialled(readyAt[c.app]); ok && d <= measure {
				redial = fmt.Sprintf("%.0f s", d.Seconds())
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", c.name, first, sustained, redial, late)
		t.Logf("%s: errors %d %q, new pods %v", c.name, c.log.errors.Load(), c.log.failed(), newPods[c.app])
	}
	b.WriteString("\n")
	return b.String()
}

// fairShareTimes reads windows of per-replica counts: the end of the
// first window in which every one of pods has at least frac of fair, the
// end of the first span of span windows whose summed shares do, and each
// pod's share over the last tail windows.
func budgetShareTimes(ws []map[string]int, pods []string, fair, frac float64, span, tail int) (first, sustained, late string) {
	share := func(from, to int, pod string) float64 {
		var mine, all int
		for _, w := range ws[from:to] {
			for name, n := range w {
				all += n
				if name == pod {
					mine += n
				}
			}
		}
		if all == 0 {
			return 0
		}
		return float64(mine) / float64(all)
	}
	reached := func(from, to int) bool {
		for _, p := range pods {
			if share(from, to, p) < frac*fair {
				return false
			}
		}
		return true
	}
	never := fmt.Sprintf("never in %d s", len(ws))
	first, sustained = never, never
	for i := range ws {
		if reached(i, i+1) {
			first = fmt.Sprintf("%d s", i+1)
			break
		}
	}
	for i := 0; i+span <= len(ws); i++ {
		if reached(i, i+span) {
			sustained = fmt.Sprintf("%d s", i+span)
			break
		}
	}
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%.2f", share(max(len(ws)-tail, 0), len(ws), p)))
	}
	return first, sustained, strings.Join(parts, ", ")
}
