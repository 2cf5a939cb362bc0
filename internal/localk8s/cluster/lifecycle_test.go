package cluster

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

func TestHandler(t *testing.T) {
	tc := startCluster(t, &Objects{
		Deployments: []*appsv1.Deployment{newTestDeployment("default", "web", 1)},
		Services:    []*corev1.Service{newTestService("default", "web", "web", false)},
	})
	first := readyPods(tc.waitReady("web", 1), "web")[0]
	srv := httptest.NewServer(api.Handler(tc.c))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()

	call := func(method, path string, wantCode int, into any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantCode || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %s %q: %s; want %d JSON", method, path, resp.Status, resp.Header.Get("Content-Type"), body, wantCode)
		}
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}

	tc.c.SetLoad("default", first.Name, 0.5, 12, 0.01, 0.05)
	tc.c.SetLoad("default", "web-gone", 1, 1, 1, 1) // not a pod: dropped
	var snap api.Snapshot
	call("GET", api.SnapshotPath, http.StatusOK, &snap)
	if p := snap.Pods[0]; p.CPU != 0.5 || p.RPS != 12 || p.LatencyP50 != 0.01 || p.LatencyP99 != 0.05 || p.CPURequest != 0 || len(p.PIDs) != 1 || !alive(p.PIDs[0]) {
		t.Errorf("pod %+v, want the load set and its running process", p)
	}
	if len(snap.History) == 0 || snap.History[0].Deployment != "web" {
		t.Errorf("history %+v, want Run's first point for web", snap.History)
	}
	if len(snap.Deployments) != 1 || snap.Deployments[0].Name != "web" || snap.Deployments[0].Replicas != 1 {
		t.Errorf("snapshot deployments %+v", snap.Deployments)
	}
	if len(snap.Pods) != 1 || snap.Pods[0].Name != first.Name || snap.Pods[0].IP != first.IP || !snap.Pods[0].Ready || snap.Pods[0].Status != "Running" {
		t.Errorf("snapshot pods %+v, want %s ready", snap.Pods, first.Name)
	}
	if len(snap.Services) != 1 || snap.Services[0].ClusterIP != "127.0.42.11" || len(snap.Services[0].Endpoints) != 1 {
		t.Errorf("snapshot services %+v", snap.Services)
	}
	if !slices.ContainsFunc(snap.Events, func(e api.Event) bool { return e.Reason == "Scheduled" && e.Object == "pod/"+first.Name }) {
		t.Errorf("no Scheduled event for %s in %+v", first.Name, snap.Events)
	}

	var msg map[string]string
	call("POST", api.RestartPath("default", "web"), http.StatusAccepted, &msg)
	if msg["message"] != "deployment.apps/web restarted" {
		t.Errorf("restart answered %v", msg)
	}
	s := tc.waitFor("the restarted pod", func(s api.Snapshot) bool {
		ps := readyPods(s, "web")
		return len(podsOf(s, "web")) == 1 && len(ps) == 1 && ps[0].Name != first.Name && ps[0].Revision != first.Revision
	})
	if d := deploymentInfo(t, s, "web"); d.Revision == first.Revision {
		t.Errorf("revision still %s after restart", d.Revision)
	}

	for _, tt := range []struct {
		method, path, want string
	}{
		{"POST", api.RestartPath("default", "api"), "cluster: not found: deployment default/api"},
		{"POST", api.RestartPath("shop", "web"), "cluster: not found: deployment shop/web"},
		{"GET", "/api/v1/pods", "no such API path: GET /api/v1/pods"},
	} {
		var e map[string]string
		call(tt.method, tt.path, http.StatusNotFound, &e)
		if e["error"] != tt.want {
			t.Errorf("%s %s: error %q, want %q", tt.method, tt.path, e["error"], tt.want)
		}
	}
	for _, tt := range []struct {
		method, path, allow string
	}{
		{"GET", api.RestartPath("default", "web"), "POST"},
		{"DELETE", api.SnapshotPath, "GET, HEAD"},
	} {
		var e map[string]string
		call(tt.method, tt.path, http.StatusMethodNotAllowed, &e)
		if !strings.Contains(e["error"], "method "+tt.method+" not allowed") || !strings.HasSuffix(e["error"], "use "+tt.allow) {
			t.Errorf("%s %s: error %q", tt.method, tt.path, e["error"])
		}
	}
}

func TestRunStopsEverything(t *testing.T) {
	tc := startCluster(t, &Objects{
		Deployments: []*appsv1.Deployment{newTestDeployment("default", "web", 2)},
		Services:    []*corev1.Service{newTestService("default", "web", "web", false)},
		Ingresses:   []*networkingv1.Ingress{newTestIngress("default", "web", "web")},
	})
	s := tc.waitReady("web", 2)
	pods := readyPods(s, "web")
	running := pids(pods)
	if len(running) != 2 {
		t.Fatalf("PIDs %v, want one per pod", running)
	}
	for _, pid := range running {
		if !alive(pid) {
			t.Fatalf("process %d of a ready pod is not running", pid)
		}
	}
	frontDoors := []string{serviceInfo(t, s, "web").ClusterIP + ":80", tc.c.IngressAddr(), tc.c.DNSAddr().String()}
	// A keep-alive connection through the Ingress must not hold up the stop.
	keepAlive := &http.Client{Timeout: 20 * time.Second}
	defer keepAlive.CloseIdleConnections()
	resp, err := keepAlive.Get("http://" + tc.c.IngressAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	if err := tc.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, pid := range running {
		if alive(pid) {
			t.Errorf("process %d still running after Run returned", pid)
		}
	}
	for _, addr := range frontDoors {
		if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Run returned", addr)
		}
	}
	for _, p := range pods {
		if conn, err := net.DialTimeout("tcp", p.IP+":8080", 5*time.Second); err == nil {
			conn.Close()
			t.Errorf("pod %s still accepts connections", p.Name)
		}
	}
	s = tc.c.Snapshot()
	if len(s.Pods) != 0 {
		t.Errorf("pods left after Run: %s", describe(s))
	}
	for _, p := range pods {
		if !slices.ContainsFunc(s.Events, func(e api.Event) bool { return e.Reason == "Stopping" && e.Object == "pod/"+p.Name }) {
			t.Errorf("no Stopping event for %s", p.Name)
		}
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	t.Run("pod that cannot start", func(t *testing.T) {
		good := newTestDeployment("default", "good", 2)
		mark := filepath.Join(t.TempDir(), "mark")
		good.Spec.Template.Spec.Containers[0].Env = append(good.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "MARK", Value: mark})
		bad := newTestDeployment("default", "bad", 1)
		bad.Spec.Template.Spec.Containers[0].Image = "shoal.test/unknown:v1"
		objs := &Objects{
			Deployments: []*appsv1.Deployment{good, bad},
			Services:    []*corev1.Service{newTestService("default", "good", "good", false)},
		}
		c, err := New(testConfig(t, objs))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Start()
		if err == nil || !strings.Contains(err.Error(), "deployment default/bad") || !strings.Contains(err.Error(), "shoal.test/unknown:v1") {
			t.Fatalf("Start = %v, want an error naming deployment default/bad and its image", err)
		}
		s := c.Snapshot()
		if len(s.Pods) != 0 {
			t.Errorf("pods left after a failed Start: %s", describe(s))
		}
		started := 0
		for _, e := range s.Events {
			if e.Reason == "Scheduled" && strings.HasPrefix(e.Object, "pod/good-") {
				started++
				if !slices.ContainsFunc(s.Events, func(k api.Event) bool { return k.Reason == "Stopping" && k.Object == e.Object }) {
					t.Errorf("%s was not stopped", e.Object)
				}
			}
		}
		if started != 2 {
			t.Errorf("%d pods of good scheduled, want 2 (before bad failed)", started)
		}
		if !slices.ContainsFunc(s.Events, func(e api.Event) bool {
			return e.Type == "Warning" && e.Reason == "FailedCreate" && e.Object == "deployment/bad"
		}) {
			t.Errorf("no FailedCreate warning for deployment/bad: %s", describe(s))
		}
		// Processes that got as far as running their main are gone.
		b, err := os.ReadFile(mark)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if pid, ok := strings.CutPrefix(line, "start "); ok {
				n, _ := strconv.Atoi(pid)
				if alive(n) {
					t.Errorf("process %d still running after a failed Start", n)
				}
			}
		}
		for _, addr := range []string{"127.0.42.11:80", c.DNSAddr().String()} {
			if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
				conn.Close()
				t.Errorf("%s still accepts connections after a failed Start", addr)
			}
		}
	})
	t.Run("ingress address in use", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		objs := &Objects{
			Deployments: []*appsv1.Deployment{newTestDeployment("default", "web", 1)},
			Services:    []*corev1.Service{newTestService("default", "web", "web", false)},
			Ingresses:   []*networkingv1.Ingress{newTestIngress("default", "web", "web")},
		}
		cfg := testConfig(t, objs)
		cfg.IngressAddr = busy.Addr().String()
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err == nil || !strings.Contains(err.Error(), "cluster: ingress front door") {
			t.Fatalf("Start = %v, want the ingress address refused", err)
		}
		if len(c.AllPods()) != 0 {
			t.Error("pods created although the front doors failed")
		}
		for _, addr := range []string{"127.0.42.11:80", c.DNSAddr().String()} {
			if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
				conn.Close()
				t.Errorf("%s still accepts connections after a failed Start", addr)
			}
		}
	})
}

func TestNew(t *testing.T) {
	valid := func() *Objects {
		return &Objects{Deployments: []*appsv1.Deployment{newTestDeployment("", "web", 1)}}
	}
	tests := []struct {
		name    string
		cfg     func(t *testing.T) Config
		wantErr string
		invalid bool
	}{
		{name: "no objects", cfg: func(t *testing.T) Config { return testConfig(t, nil) }, wantErr: "cluster: Config needs Objects, Binary and RunDir"},
		{name: "no binary", cfg: func(t *testing.T) Config { c := testConfig(t, valid()); c.Binary = nil; return c }, wantErr: "cluster: Config needs Objects, Binary and RunDir"},
		{name: "no run dir", cfg: func(t *testing.T) Config { c := testConfig(t, valid()); c.RunDir = ""; return c }, wantErr: "cluster: Config needs Objects, Binary and RunDir"},
		{
			name: "invalid objects",
			cfg: func(t *testing.T) Config {
				o := valid()
				o.Deployments[0].Spec.Template.Spec.Containers = nil
				return testConfig(t, o)
			},
			wantErr: "Deployment default/web: spec.template.spec.containers is empty", invalid: true,
		},
		{
			name: "more Services than the ServiceNet holds",
			cfg: func(t *testing.T) Config {
				o := valid()
				for i := range 5 {
					o.Services = append(o.Services, newTestService("", "s"+strconv.Itoa(i), "web", false))
				}
				c := testConfig(t, o)
				c.ServiceNet = netip.MustParsePrefix("127.0.42.0/28") // .11 - .14 after the DNS block
				return c
			},
			wantErr: "cluster: no free address left in 127.0.42.0/28",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrInvalid) != tt.invalid {
				t.Fatalf("New = %v, want %q (ErrInvalid: %v)", err, tt.wantErr, tt.invalid)
			}
		})
	}
}

// TestSnapshotBeforeStart checks what New decides alone: Service
// addresses, the ports column and the deployments' spec.
func TestSnapshotBeforeStart(t *testing.T) {
	plain := newTestService("default", "plain", "web", false)
	plain.Spec.Ports[0].TargetPort = intstr.IntOrString{}
	objs := &Objects{
		Deployments: []*appsv1.Deployment{newTestDeployment("default", "web", 3)},
		Services: []*corev1.Service{
			newTestService("default", "web", "web", false),
			newTestService("default", "web-headless", "web", true),
			plain,
		},
	}
	c, err := New(testConfig(t, objs))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot()
	want := []api.ServiceInfo{
		{Namespace: "default", Name: "web", Type: "ClusterIP", ClusterIP: "127.0.42.11", Ports: []string{"80->http/TCP"}},
		{Namespace: "default", Name: "web-headless", Type: "Headless", ClusterIP: "None", Ports: []string{"80->http/TCP"}},
		{Namespace: "default", Name: "plain", Type: "ClusterIP", ClusterIP: "127.0.42.12", Ports: []string{"80->80/TCP"}},
	}
	if len(s.Services) != len(want) {
		t.Fatalf("services %+v", s.Services)
	}
	for i, w := range want {
		g := s.Services[i]
		if g.Namespace != w.Namespace || g.Name != w.Name || g.Type != w.Type || g.ClusterIP != w.ClusterIP || !slices.Equal(g.Ports, w.Ports) || len(g.Endpoints) != 0 {
			t.Errorf("service %d = %+v, want %+v", i, g, w)
		}
	}
	if d := deploymentInfo(t, s, "web"); d.Replicas != 3 || d.Current != 0 || len(d.Revision) != 10 {
		t.Errorf("deployment %+v, want 3 replicas, none current, a revision", d)
	}
	if got := c.DNSAddr().String(); got != "127.0.42.10:53" {
		t.Errorf("DNSAddr = %s, want the ServiceNet's .10:53", got)
	}
	if c.IngressAddr() != "" {
		t.Errorf("IngressAddr %q before Start", c.IngressAddr())
	}
}

func TestHistory(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := testConfig(t, &Objects{Deployments: []*appsv1.Deployment{
		newTestDeployment("default", "web", 2),
		newTestDeployment("shop", "api", 1),
	}})
	autoscalers := []api.AutoscalerInfo{{Kind: "HorizontalPodAutoscaler", Namespace: "shop", Name: "api", Target: "deployment/api", Min: 1, Max: 5, Desired: 4}}
	cfg.Autoscalers = func() []api.AutoscalerInfo { return autoscalers }
	cfg.Now = func() time.Time { return now }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range maxHistory + 5 {
		c.recordHistory()
		now = now.Add(2 * time.Second)
	}
	s := c.Snapshot()
	if len(s.History) != 2*maxHistory {
		t.Fatalf("%d history points, want %d: one per deployment for the last %d samples", len(s.History), 2*maxHistory, maxHistory)
	}
	first, last := s.History[0], s.History[len(s.History)-1]
	if want := time.Date(2025, 1, 2, 3, 4, 15, 0, time.UTC); !first.Time.Equal(want) {
		t.Errorf("oldest point at %s, want %s (the first 5 samples dropped)", first.Time, want)
	}
	if last.Deployment != "api" || last.Namespace != "shop" || last.Desired != 4 || last.Replicas != 0 {
		t.Errorf("newest point %+v, want api with the autoscaler's desired 4 and no pods", last)
	}
	if web := s.History[len(s.History)-2]; web.Deployment != "web" || web.Desired != 0 {
		t.Errorf("point %+v, want web without an autoscaler", web)
	}
	if len(s.Autoscalers) != 1 || s.Autoscalers[0] != autoscalers[0] {
		t.Errorf("autoscalers %+v", s.Autoscalers)
	}
	c.Event("shop", "Normal", "SuccessfulRescale", "hpa/api", "New size: 4; reason: cpu resource utilization above target")
	if ev := c.Snapshot().Events; len(ev) != 1 || ev[0].Namespace != "shop" || ev[0].Object != "hpa/api" || !ev[0].Time.Equal(now) || ev[0].Count != 1 {
		t.Errorf("events %+v, want the autoscaler's event", ev)
	}
}
