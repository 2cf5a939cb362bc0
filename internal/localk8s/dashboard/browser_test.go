package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// fakeAPI is the snapshot endpoint of a shoal up whose state the test sets;
// down makes it drop connections without an answer, failing makes it
// answer with an error.
type fakeAPI struct {
	mu      sync.Mutex
	snap    *api.Snapshot
	down    bool
	failing bool
}

func (a *fakeAPI) set(f func(a *fakeAPI)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	down, failing := a.down, a.failing
	body, err := json.Marshal(a.snap)
	a.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	switch {
	case down:
		// Close the connection without a response, as a stopped or
		// crashed shoal up does.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case failing:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"error": "cluster: state unavailable"}`))
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
}

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

func galleryPod(i int, ready bool) api.PodInfo {
	status := "Running"
	if !ready {
		status = "ContainerCreating"
	}
	return api.PodInfo{
		Namespace: "default", Name: fmt.Sprintf("gallery-5d8f7c4b9-p%d", i), Deployment: "gallery", Revision: "5d8f7c4b9",
		IP: fmt.Sprintf("127.0.1.%d", 2+i), Phase: "Running", Status: status, Ready: ready, Restarts: int32(i % 2),
		Created: t0.Add(-time.Hour), PIDs: []int{1000 + i}, CPU: 0.2 + 0.1*float64(i), CPURequest: 0.5,
		RPS: 40 + float64(i), LatencyP50: 0.012, LatencyP99: 0.087,
	}
}

// history returns one point per 5 seconds for gallery, with replicas
// values in turn.
func history(replicas ...int32) []api.HistoryPoint {
	var h []api.HistoryPoint
	for i, r := range replicas {
		h = append(h, api.HistoryPoint{Time: t0.Add(time.Duration(i) * 5 * time.Second), Namespace: "default",
			Deployment: "gallery", Replicas: r, Ready: min(r, 2), Desired: r})
	}
	return h
}

// steady is gallery at two replicas, both ready.
func steady() *api.Snapshot {
	return &api.Snapshot{
		Time: t0.Add(10 * time.Second),
		Deployments: []api.DeploymentInfo{{Namespace: "default", Name: "gallery", Replicas: 2, Current: 2,
			Ready: 2, Updated: 2, Available: 2, Revision: "5d8f7c4b9"}},
		Pods: []api.PodInfo{galleryPod(0, true), galleryPod(1, true)},
		Services: []api.ServiceInfo{{Namespace: "default", Name: "gallery", Type: "ClusterIP", ClusterIP: "127.0.2.11",
			Ports: []string{"80->8080/TCP"}, Endpoints: []string{"127.0.1.2:8080", "127.0.1.3:8080"}}},
		Ingresses: []api.IngressInfo{{Namespace: "default", Name: "gallery", Host: "gallery.localhost", Path: "/",
			Backend: "gallery:80", URL: "http://gallery.localhost:8080/"}},
		HTTPRoutes: []api.HTTPRouteInfo{{Namespace: "default", Name: "gallery-route", Hostname: "gallery.localhost",
			Match: "PathPrefix /", Backends: []string{"gallery:80 weight=1"}, URL: "http://gallery.localhost:8080/"}},
		Autoscalers: []api.AutoscalerInfo{{Kind: "HorizontalPodAutoscaler", Namespace: "default", Name: "gallery",
			Target: "deployment/gallery", Min: 2, Max: 8, Current: 2, Desired: 2, Metrics: "cpu: 45%/70%", Reason: "within tolerance"}},
		Events: []api.Event{{Time: t0, Type: "Normal", Reason: "ScalingReplicaSet", Object: "deployment/gallery",
			Message: "Scaled up replica set gallery-5d8f7c4b9 from 0 to 2", Count: 1}},
		History: history(2, 2, 2),
	}
}

// scaledUp is the autoscaler taking gallery from two replicas to four: two
// new pods, one of them not ready yet.
func scaledUp() *api.Snapshot {
	s := steady()
	s.Time = t0.Add(25 * time.Second)
	s.Deployments[0].Replicas, s.Deployments[0].Current, s.Deployments[0].Updated = 4, 4, 4
	s.Deployments[0].Ready, s.Deployments[0].Available = 3, 3
	s.Pods = append(s.Pods, galleryPod(2, true), galleryPod(3, false))
	s.Autoscalers[0].Current, s.Autoscalers[0].Desired = 2, 4
	s.Autoscalers[0].Metrics, s.Autoscalers[0].Reason = "cpu: 130%/70%", "cpu above target"
	s.Events = append(s.Events, api.Event{Time: s.Time, Type: "Normal", Reason: "SuccessfulRescale",
		Object: "hpa/gallery", Message: "New size: 4; reason: cpu resource utilization above target", Count: 1})
	s.History = history(2, 2, 2, 4, 4, 4)
	s.History[4].Ready, s.History[5].Ready = 3, 3
	return s
}

// chromiumPath finds the browser that scripts/deps.sh installs.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found in PATH: run scripts/deps.sh (Debian package chromium)")
	return ""
}

// browser is a headless Chromium with one tab.
type browser struct {
	tab     context.Context
	pid     int
	dataDir string
	stop    func()
	mu      sync.Mutex
	// problems are the page's uncaught exceptions and console or
	// security errors, other than the failed requests of the API.
	problems []string
}

func startBrowser(t *testing.T, ctx context.Context) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 900),
	)
	// Without UserDataDir, the allocator makes a temporary profile
	// directory, and removes it with any leftover child processes when
	// the browser stops.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	b := &browser{tab: tab}
	b.stop = func() {
		// Close the browser gracefully, then cancel the allocator, which
		// kills what is left and waits for the process.
		cctx, cancel := context.WithTimeout(tab, 20*time.Second)
		defer cancel()
		if err := chromedp.Cancel(cctx); err != nil {
			t.Logf("close chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
	}
	if err := chromedp.Listen(tab, b.record); err != nil {
		b.stop()
		t.Fatalf("start chromium: %v", err)
	}
	c := chromedp.FromContext(tab)
	if c.Browser == nil || c.Browser.Process() == nil {
		b.stop()
		t.Fatal("chromium started without a process")
	}
	b.pid = c.Browser.Process().Pid
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(b.pid) + "/cmdline")
	if err != nil {
		b.stop()
		t.Fatal(err)
	}
	for _, flag := range []string{"--headless=new", "--no-sandbox"} {
		if !bytes.Contains(cmdline, []byte(flag+"\x00")) {
			b.stop()
			t.Fatalf("chromium runs without %s: %q", flag, cmdline)
		}
	}
	for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
		if dir, ok := strings.CutPrefix(string(arg), "--user-data-dir="); ok {
			b.dataDir = dir
		}
	}
	if b.dataDir == "" {
		b.stop()
		t.Fatalf("chromium runs without a user data dir: %q", cmdline)
	}
	return b
}

func (b *browser) record(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		problem = fmt.Sprintf("exception at %d:%d: %s", d.LineNumber, d.ColumnNumber, d.Text)
		if d.Exception != nil {
			problem += " " + d.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			problem = "console.error"
		}
	case *log.EventEntryAdded:
		// The API's failed requests are expected while it is down.
		if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
			problem = fmt.Sprintf("%s: %s", ev.Entry.Source, ev.Entry.Text)
		}
	}
	if problem != "" {
		b.mu.Lock()
		b.problems = append(b.problems, problem)
		b.mu.Unlock()
	}
}

func (b *browser) checkProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("page: %s", p)
	}
	b.problems = nil
}

// waitFor polls a JavaScript condition in the page until it holds.
func (b *browser) waitFor(t *testing.T, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(b.tab, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, cond, err)
	}
}

func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.tab, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// assertGone checks that no process of the browser is left: neither the
// main process nor a child that names its profile directory.
func assertGone(t *testing.T, pid int, dataDir string) {
	t.Helper()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("chromium %d still runs after the test", pid)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("--user-data-dir="+dataDir)) {
			t.Errorf("chromium child %s still runs: %q", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte(" ")))
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("profile directory %s left behind (stat: %v)", dataDir, err)
	}
}

const (
	gallery     = `document.querySelector('#deployments tr[data-deployment="gallery"]')`
	replicasSVG = `document.querySelector('[data-chart="default/gallery"] polyline[data-series="replicas"]')`
)

// TestDashboardFollowsTheCluster opens the page in a real headless
// Chromium and changes the API's state under it: the page must show each
// state without a reload, and say so when the API stops answering.
func TestDashboardFollowsTheCluster(t *testing.T) {
	a := &fakeAPI{snap: steady()}
	mux := http.NewServeMux()
	mux.Handle("GET "+api.SnapshotPath, a)
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := startBrowser(t, ctx)
	defer func() {
		b.stop()
		assertGone(t, b.pid, b.dataDir)
	}()

	if err := chromedp.Do(b.tab, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}

	// The first state: two ready replicas.
	b.waitFor(t, "two replicas", gallery+`?.dataset.replicas === "2"`)
	pods := eval[[]string](t, b, `[...document.querySelectorAll('#pods tr[data-pod]')].map(r => [r.dataset.pod, r.dataset.ip, r.dataset.status, r.dataset.ready].join(" "))`)
	want := []string{"gallery-5d8f7c4b9-p0 127.0.1.2 Running true", "gallery-5d8f7c4b9-p1 127.0.1.3 Running true"}
	if strings.Join(pods, "\n") != strings.Join(want, "\n") {
		t.Errorf("pod rows:\n%s\nwant:\n%s", strings.Join(pods, "\n"), strings.Join(want, "\n"))
	}
	row := eval[string](t, b, `document.querySelector('#pods tr[data-pod="gallery-5d8f7c4b9-p1"]').innerText`)
	for _, cell := range []string{"300m / 500m", "41.0", "12 ms", "87 ms"} {
		if !strings.Contains(row, cell) {
			t.Errorf("pod row %q lacks %q", row, cell)
		}
	}
	if got := eval[string](t, b, gallery+`.innerText`); !strings.Contains(got, "2/2") {
		t.Errorf("deployment row %q lacks 2/2", got)
	}
	if got := eval[string](t, b, `document.querySelector('#services tr[data-service="gallery"]').dataset.endpoints`); got != "2" {
		t.Errorf("service endpoints = %s, want 2", got)
	}
	if got := eval[string](t, b, `document.querySelector('#ingresses tr[data-ingress="gallery"] a').href`); got != "http://gallery.localhost:8080/" {
		t.Errorf("ingress link %q", got)
	}
	if got := eval[string](t, b, `document.querySelector('#routes tr[data-route="gallery-route"] a').href`); got != "http://gallery.localhost:8080/" {
		t.Errorf("route link %q", got)
	}
	if got := eval[string](t, b, replicasSVG+`.dataset.points`); got != "3" {
		t.Errorf("chart has %s replicas points, want 3", got)
	}
	if got := eval[string](t, b, `document.body.dataset.state`); got != "ok" {
		t.Errorf("page state %q, want ok", got)
	}

	// Scale up under the open page: a marker set on the window survives
	// only if the page is not reloaded.
	eval[bool](t, b, `window.shoalTestMarker = true`)
	a.set(func(a *fakeAPI) { a.snap = scaledUp() })
	b.waitFor(t, "four replicas", gallery+`?.dataset.replicas === "4"`)
	b.waitFor(t, "the new history points", replicasSVG+`?.dataset.points === "6"`)
	if !eval[bool](t, b, `window.shoalTestMarker === true`) {
		t.Fatal("the page was reloaded")
	}
	chart := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('[data-chart="default/gallery"] polyline')].map(l => [l.dataset.series, l.dataset.last + "@" + l.dataset.points]))`)
	wantChart := map[string]string{"replicas": "4@6", "ready": "3@6", "desired": "4@6"}
	for series, w := range wantChart {
		if chart[series] != w {
			t.Errorf("chart series %s = %q (last@points), want %q", series, chart[series], w)
		}
	}
	// The replicas line ends higher (smaller y) than it starts.
	ys := eval[[]float64](t, b, replicasSVG+`.getAttribute("points").split(" ").map(p => +p.split(",")[1])`)
	if len(ys) < 2 || !(ys[len(ys)-1] < ys[0]) {
		t.Errorf("replicas line does not rise: y = %v", ys)
	}
	if n := eval[int](t, b, `document.querySelectorAll('#pods tr[data-pod]').length`); n != 4 {
		t.Errorf("%d pod rows, want 4", n)
	}
	if got := eval[string](t, b, `document.querySelector('#pods tr[data-pod="gallery-5d8f7c4b9-p3"]').dataset.ready`); got != "false" {
		t.Errorf("new pod ready = %s, want false", got)
	}
	as := eval[string](t, b, `(r => r.dataset.current + "->" + r.dataset.desired + " " + r.innerText)(document.querySelector('#autoscalers tr[data-autoscaler="gallery"]'))`)
	if !strings.HasPrefix(as, "2->4") || !strings.Contains(as, "cpu: 130%/70%") || !strings.Contains(as, "cpu above target") {
		t.Errorf("autoscaler row %q", as)
	}
	if got := eval[string](t, b, `document.querySelector('#events tbody tr').dataset.reason`); got != "SuccessfulRescale" {
		t.Errorf("newest event %q, want SuccessfulRescale first", got)
	}

	// The API answers with an error.
	a.set(func(a *fakeAPI) { a.failing = true })
	b.waitFor(t, "the error banner", `!document.getElementById("error").hidden`)
	if got := eval[string](t, b, `document.getElementById("error").innerText`); got != "shoal up answered with an error: cluster: state unavailable (HTTP 500)" {
		t.Errorf("banner %q", got)
	}

	// The API stops answering: the banner says so, the last state stays.
	a.set(func(a *fakeAPI) { a.failing, a.down = false, true })
	b.waitFor(t, "the not-answering banner", `document.getElementById("error").innerText.startsWith("shoal up is not answering")`)
	banner := eval[string](t, b, `document.getElementById("error").innerText`)
	if host := strings.TrimPrefix(srv.URL, "http://"); !strings.Contains(banner, "at "+host) {
		t.Errorf("banner %q does not name %s", banner, host)
	}
	if got := eval[string](t, b, `document.body.dataset.state + " " + `+gallery+`.dataset.replicas`); got != "error 4" {
		t.Errorf("state and replicas while down = %q, want error 4", got)
	}

	// It answers again: the banner goes.
	a.set(func(a *fakeAPI) { a.down = false })
	b.waitFor(t, "the banner to clear", `document.getElementById("error").hidden && document.body.dataset.state === "ok"`)
	if !eval[bool](t, b, `window.shoalTestMarker === true`) {
		t.Fatal("the page was reloaded")
	}
	b.checkProblems(t)
}
