package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// The process tests' addresses, used by no other package's tests.
var (
	testPodNet = netip.MustParsePrefix("127.0.41.0/24")
	testSvcNet = netip.MustParsePrefix("127.0.42.0/24")
)

// waitTimeout bounds every wait of the process tests; generous, for a
// loaded machine.
const waitTimeout = 90 * time.Second

// testBinary maps the test image to the testpod program.
func testBinary(image string) (string, error) {
	if strings.HasPrefix(image, "shoal.test/testpod:") {
		return testpodBin, nil
	}
	return "", fmt.Errorf("no binary for image %q", image)
}

func testConfig(t *testing.T, objs *Objects) Config {
	return Config{
		Objects:     objs,
		Binary:      testBinary,
		RunDir:      t.TempDir(),
		PodNet:      testPodNet,
		ServiceNet:  testSvcNet,
		IngressAddr: "127.0.0.1:0",
		BackOff:     200 * time.Millisecond,
		MaxBackOff:  time.Second,
	}
}

// testCluster is a started cluster whose Run loop the test owns.
type testCluster struct {
	t      *testing.T
	c      *Cluster
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returns
	client *http.Client
	once   sync.Once
	runErr error
}

// startCluster creates, starts and runs a cluster of objs; it is stopped
// when the test ends.
func startCluster(t *testing.T, objs *Objects) *testCluster {
	t.Helper()
	return startClusterWith(t, testConfig(t, objs))
}

// startClusterWith is startCluster with a config of the test's own.
func startClusterWith(t *testing.T, cfg Config) *testCluster {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testCluster{
		t: t, c: c, cancel: cancel, done: make(chan struct{}),
		// New connections for every request: the front doors balance
		// connections, not requests.
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second},
	}
	go func() {
		defer close(tc.done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		if err := tc.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		tc.client.CloseIdleConnections()
	})
	return tc
}

// stop ends Run's context and waits for Run to return.
func (tc *testCluster) stop() error {
	tc.once.Do(func() {
		tc.cancel()
		select {
		case <-tc.done:
		case <-time.After(waitTimeout):
			tc.runErr = errors.New("Run did not return after its context ended")
		}
	})
	return tc.runErr
}

// waitFor polls the snapshot until cond holds.
func (tc *testCluster) waitFor(what string, cond func(api.Snapshot) bool) api.Snapshot {
	tc.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := tc.c.Snapshot()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("timed out waiting for %s\nsnapshot: %s", what, describe(s))
		}
		<-tick.C
	}
}

// waitReady waits until deployment name has want ready pods, no others,
// and every Service selecting them lists them as endpoints.
func (tc *testCluster) waitReady(name string, want int) api.Snapshot {
	tc.t.Helper()
	return tc.waitFor(fmt.Sprintf("%d ready pods of %s", want, name), func(s api.Snapshot) bool {
		if len(podsOf(s, name)) != want || len(readyPods(s, name)) != want {
			return false
		}
		for _, svc := range s.Services {
			if strings.HasPrefix(svc.Name, name) && len(svc.Endpoints) != want {
				return false
			}
		}
		return true
	})
}

// get requests url over a new connection and returns X-Served-By and the body.
func (tc *testCluster) get(url string) (servedBy, body string, err error) {
	resp, err := tc.client.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return resp.Header.Get("X-Served-By"), string(b), nil
}

// servedBy requests url up to n times until every name in want has
// answered, failing the test on an answer from any other pod.
func (tc *testCluster) servedBy(url string, want []string, n int) map[string]int {
	tc.t.Helper()
	seen := map[string]int{}
	for range n {
		by, body, err := tc.get(url)
		if err != nil {
			tc.t.Fatal(err)
		}
		if !slices.Contains(want, by) {
			tc.t.Fatalf("GET %s served by %q, want one of %q", url, by, want)
		}
		if body != "hello from "+by+"\n" {
			tc.t.Fatalf("GET %s: body %q from %s", url, body, by)
		}
		seen[by]++
		if len(seen) == len(want) {
			break
		}
	}
	return seen
}

func podsOf(s api.Snapshot, deploy string) []api.PodInfo {
	var out []api.PodInfo
	for _, p := range s.Pods {
		if p.Deployment == deploy {
			out = append(out, p)
		}
	}
	return out
}

func readyPods(s api.Snapshot, deploy string) []api.PodInfo {
	var out []api.PodInfo
	for _, p := range podsOf(s, deploy) {
		if p.Ready && !p.Terminating {
			out = append(out, p)
		}
	}
	return out
}

func names(ps []api.PodInfo) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func serviceInfo(t *testing.T, s api.Snapshot, name string) api.ServiceInfo {
	t.Helper()
	for _, svc := range s.Services {
		if svc.Name == name {
			return svc
		}
	}
	t.Fatalf("no service %s in the snapshot", name)
	return api.ServiceInfo{}
}

func deploymentInfo(t *testing.T, s api.Snapshot, name string) api.DeploymentInfo {
	t.Helper()
	for _, d := range s.Deployments {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no deployment %s in the snapshot", name)
	return api.DeploymentInfo{}
}

func describe(s api.Snapshot) string {
	var b strings.Builder
	for _, d := range s.Deployments {
		fmt.Fprintf(&b, "\n  deployment %+v", d)
	}
	for _, p := range s.Pods {
		fmt.Fprintf(&b, "\n  pod %s rev=%s ip=%s status=%s ready=%v terminating=%v restarts=%d", p.Name, p.Revision, p.IP, p.Status, p.Ready, p.Terminating, p.Restarts)
	}
	for _, svc := range s.Services {
		fmt.Fprintf(&b, "\n  service %s %s %v", svc.Name, svc.ClusterIP, svc.Endpoints)
	}
	for _, e := range s.Events[max(0, len(s.Events)-15):] {
		fmt.Fprintf(&b, "\n  event %s %s %s %s (x%d)", e.Type, e.Reason, e.Object, e.Message, e.Count)
	}
	return b.String()
}

// resolver asks the cluster's DNS server only.
func resolver(c *Cluster) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, c.DNSAddr().String())
	}}
}

func lookup(t *testing.T, c *Cluster, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addrs, err := resolver(c).LookupNetIP(ctx, "ip4", name)
	if err != nil {
		t.Fatalf("resolve %s: %v", name, err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func podIPs(ps []api.PodInfo) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.IP)
	}
	slices.Sort(out)
	return out
}

// alive reports whether a process with this PID exists.
func alive(pid int) bool {
	return pid > 0 && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func pids(ps []api.PodInfo) []int {
	var out []int
	for _, p := range ps {
		for _, pid := range p.PIDs {
			if pid > 0 {
				out = append(out, pid)
			}
		}
	}
	return out
}

func TestFrontDoors(t *testing.T) {
	objs := &Objects{
		Deployments: []*appsv1.Deployment{newTestDeployment("default", "web", 2)},
		Services: []*corev1.Service{
			newTestService("default", "web", "web", false),
			newTestService("default", "web-headless", "web", true),
		},
		Ingresses: []*networkingv1.Ingress{newTestIngress("default", "web", "web")},
	}
	tc := startCluster(t, objs)
	s := tc.waitReady("web", 2)
	pods := readyPods(s, "web")
	want := names(pods)

	t.Run("ClusterIP spreads new connections over both pods", func(t *testing.T) {
		svc := serviceInfo(t, s, "web")
		if svc.Type != "ClusterIP" || svc.ClusterIP != "127.0.42.11" {
			t.Errorf("service web: %s %s, want ClusterIP 127.0.42.11 (.2-.10 are kept for the DNS server)", svc.Type, svc.ClusterIP)
		}
		if !slices.Equal(svc.Ports, []string{"80->http/TCP"}) {
			t.Errorf("ports %q", svc.Ports)
		}
		wantEps := []string{pods[0].IP + ":8080", pods[1].IP + ":8080"}
		slices.Sort(wantEps)
		if got := slices.Sorted(slices.Values(svc.Endpoints)); !slices.Equal(got, wantEps) {
			t.Errorf("endpoints %q, want %q", got, wantEps)
		}
		// Each pick is uniform: 200 connections all to one of two pods
		// happen with probability 2^-199.
		seen := tc.servedBy("http://"+svc.ClusterIP+":80/", want, 200)
		if len(seen) != 2 {
			t.Errorf("200 connections served by %v, want both of %q", seen, want)
		}
	})
	t.Run("Ingress routes to both pods", func(t *testing.T) {
		addr := tc.c.IngressAddr()
		if addr == "" {
			t.Fatal("no Ingress front door")
		}
		seen := tc.servedBy("http://"+addr+"/", want, 50)
		if len(seen) != 2 {
			t.Errorf("requests through the Ingress served by %v, want both of %q", seen, want)
		}
		if len(s.Ingresses) != 1 || !strings.HasSuffix(s.Ingresses[0].URL, ":"+strings.Split(addr, ":")[1]+"/") || s.Ingresses[0].Backend != "web:80" {
			t.Errorf("ingresses %+v, want web:80 at %s", s.Ingresses, addr)
		}
	})
	t.Run("DNS", func(t *testing.T) {
		if got := lookup(t, tc.c, "web-headless.default.svc.cluster.local."); !slices.Equal(got, podIPs(pods)) {
			t.Errorf("headless service resolves to %q, want the pod IPs %q", got, podIPs(pods))
		}
		if got := lookup(t, tc.c, "web.default.svc.cluster.local."); !slices.Equal(got, []string{"127.0.42.11"}) {
			t.Errorf("service web resolves to %q, want its ClusterIP", got)
		}
	})
}

func TestReadinessAndScale(t *testing.T) {
	objs := &Objects{
		Deployments: []*appsv1.Deployment{newTestDeployment("shop", "web", 3)},
		Services: []*corev1.Service{
			newTestService("shop", "web", "web", false),
			newTestService("shop", "web-headless", "web", true),
		},
	}
	tc := startCluster(t, objs)
	s := tc.waitReady("web", 3)
	pods := readyPods(s, "web")
	clusterIP := serviceInfo(t, s, "web").ClusterIP
	unready, others := pods[1], []api.PodInfo{pods[0], pods[2]}

	// A pod failing its readiness probe leaves every endpoint set but keeps running.
	if _, _, err := tc.get("http://" + unready.IP + ":8080/set?ready=0"); err != nil {
		t.Fatal(err)
	}
	s = tc.waitFor("the unready pod to leave the endpoints", func(s api.Snapshot) bool {
		return len(readyPods(s, "web")) == 2 && len(serviceInfo(t, s, "web").Endpoints) == 2 && len(serviceInfo(t, s, "web-headless").Endpoints) == 2
	})
	for _, svc := range []string{"web", "web-headless"} {
		if slices.Contains(serviceInfo(t, s, svc).Endpoints, unready.IP+":8080") {
			t.Errorf("service %s still sends to the unready pod: %q", svc, serviceInfo(t, s, svc).Endpoints)
		}
	}
	if len(podsOf(s, "web")) != 3 || !slices.ContainsFunc(podsOf(s, "web"), func(p api.PodInfo) bool {
		return p.Name == unready.Name && !p.Terminating && p.Status == "Running"
	}) {
		t.Errorf("the unready pod should keep running: %s", describe(s))
	}
	if got := lookup(t, tc.c, "web-headless.shop.svc.cluster.local."); !slices.Equal(got, podIPs(others)) {
		t.Errorf("headless service resolves to %q, want the ready pods' %q", got, podIPs(others))
	}
	seen := tc.servedBy("http://"+clusterIP+"/", names(others), 200)
	if len(seen) != 2 {
		t.Errorf("connections served by %v, want both ready pods", seen)
	}
	if !slices.ContainsFunc(s.Events, func(e api.Event) bool { return e.Reason == "Unhealthy" && e.Object == "pod/"+unready.Name }) {
		t.Errorf("no Unhealthy event for %s", unready.Name)
	}

	// Scaling down removes the pod that is not ready first.
	if err := tc.c.Scale("shop", "web", 2); err != nil {
		t.Fatal(err)
	}
	s = tc.waitFor("scale down to 2", func(s api.Snapshot) bool {
		ps := podsOf(s, "web")
		return len(ps) == 2 && !slices.ContainsFunc(ps, func(p api.PodInfo) bool { return p.Terminating })
	})
	if got := names(podsOf(s, "web")); !slices.Equal(got, names(others)) {
		t.Fatalf("after scaling to 2 the pods are %q, want the ready ones %q", got, names(others))
	}
	for _, pid := range pids([]api.PodInfo{unready}) {
		if alive(pid) {
			t.Errorf("process %d of the removed pod is still running", pid)
		}
	}
	if d := deploymentInfo(t, s, "web"); d.Replicas != 2 || d.Current != 2 || d.Ready != 2 {
		t.Errorf("deployment %+v, want 2 replicas, current and ready", d)
	}

	// Scaling up keeps the pods there are.
	if err := tc.c.Scale("shop", "web", 4); err != nil {
		t.Fatal(err)
	}
	s = tc.waitReady("web", 4)
	for _, name := range names(others) {
		if !slices.Contains(names(readyPods(s, "web")), name) {
			t.Errorf("scaling up replaced %s", name)
		}
	}
	replicas, states, err := tc.c.Pods("shop", "web")
	if err != nil || replicas != 4 || len(states) != 4 {
		t.Fatalf("Pods = %d, %d pods, %v; want 4 and 4", replicas, len(states), err)
	}
	ips := map[netip.Addr]bool{}
	for _, st := range states {
		if !testPodNet.Contains(st.IP) || ips[st.IP] {
			t.Errorf("pod %s has IP %s: outside %s or shared", st.Name, st.IP, testPodNet)
		}
		ips[st.IP] = true
		if !st.Ready || st.StartTime.IsZero() || st.ReadyTime.IsZero() {
			t.Errorf("pod state %+v, want ready with start and ready times", st)
		}
	}
	if len(tc.c.AllPods()) != 4 {
		t.Errorf("AllPods: %d pods, want 4", len(tc.c.AllPods()))
	}

	for _, bad := range []struct {
		ns, name string
		n        int32
		notFound bool
	}{
		{"shop", "api", 1, true},
		{"default", "web", 1, true},
		{"shop", "web", -1, false},
	} {
		err := tc.c.Scale(bad.ns, bad.name, bad.n)
		if err == nil || errors.Is(err, ErrNotFound) != bad.notFound {
			t.Errorf("Scale(%s, %s, %d) = %v, want an error (not found: %v)", bad.ns, bad.name, bad.n, err, bad.notFound)
		}
	}
	if _, _, err := tc.c.Pods("shop", "api"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Pods of an unknown deployment: %v", err)
	}
}
