package up_test

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/loadgen"
)

// TestDashboardShowsScaleUp opens the dashboard of a running shoal up in
// headless Chromium, drives load at a Service whose HPA scales on requests
// per second, and watches the same open page show the replica count rise.
func TestDashboardShowsScaleUp(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Fatal("chromium not found in PATH: run scripts/deps.sh (Debian package chromium)")
	}
	n := netsOf("127.0.39.0/24", "127.0.40.0/24")
	o := localk8s.Config{
		Paths:       []string{"testdata/scaleup.yaml"},
		Images:      []string{thumbnailerImage + "=" + bins.thumbnailer},
		Addr:        "127.0.0.1:0",
		IngressAddr: "-",
		PodNet:      n.pod,
		ServiceNet:  n.service,
		SyncPeriod:  2 * time.Second,
		RunDir:      t.TempDir(),
	}
	up := startUp(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	snap, err := up.api.waitFor(ctx, "one ready thumbnailer", func(s api.Snapshot) bool {
		d, ok := deploymentOf(s, "thumbnailer")
		return ok && d.Ready == 1 && d.Replicas == 1
	})
	if err != nil {
		t.Fatal(err)
	}
	var clusterIP string
	for _, s := range snap.Services {
		if s.Name == "thumbnailer" {
			clusterIP = s.ClusterIP
		}
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Flag("headless", "new"), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true))...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer func() {
		cctx, c := context.WithTimeout(tab, 20*time.Second)
		_ = chromedp.Cancel(cctx)
		c()
		cancelTab()
	}()
	const row = `document.querySelector('#deployments tr[data-deployment="thumbnailer"]')`
	waitPage := func(what, cond string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](cond,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
			t.Fatalf("dashboard: waiting for %s: %v", what, err)
		}
	}
	if _, err := chromedp.Run(tab, chromedp.Navigate("http://"+up.info.API+"/")); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}
	waitPage("one replica", row+`?.dataset.replicas === "1" && `+row+`?.dataset.ready === "1"`, 30*time.Second)
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.sameLoad = true`)); err != nil {
		t.Fatal(err)
	}

	// 30 requests/s against a target of 5 per pod: the HPA goes to its
	// maximum of 3 (a scale-up may double or add 4 pods per 15s).
	defer thumbnailLoad(ctx, t, clusterIP, 30)()

	waitPage("the scale-up to 3 replicas", row+`?.dataset.replicas === "3"`, 2*time.Minute)
	waitPage("3 ready pods", row+`?.dataset.ready === "3"`, time.Minute)
	waitPage("the chart's desired line at 3", `document.querySelector('figure[data-chart="default/thumbnailer"] polyline[data-series="desired"]')?.dataset.last === "3"`, 30*time.Second)
	if same, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.sameLoad === true`)); err != nil || !same {
		t.Fatalf("the page reloaded during the scale-up (%v)", err)
	}
	reason, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('#events tr[data-reason="SuccessfulRescale"]')?.textContent ?? ""`))
	if err != nil {
		t.Fatal(err)
	}
	if reason == "" {
		t.Error("the events table shows no SuccessfulRescale")
	}
	pods, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll('#pods tr[data-pod][data-ready="true"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if pods != 3 {
		t.Errorf("the pods table shows %d ready pods, want 3", pods)
	}
	t.Logf("dashboard followed the scale-up 1 -> 3; event: %s", strconv.Quote(reason))
}

// thumbnailLoad posts thumbnails to a thumbnailer Service at a fixed rate
// until the returned stop is called, for at most two minutes.
func thumbnailLoad(ctx context.Context, t *testing.T, clusterIP string, rate float64) (stop func()) {
	t.Helper()
	pngs := testPNGs(t, 1)
	loadCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := loadgen.Run(loadCtx, loadgen.Config{
			URL:    "http://" + clusterIP + ":80/v1/thumbnails?width=16&height=16",
			Method: http.MethodPost, Header: http.Header{"Content-Type": {"image/png"}},
			Body: pngs[0], Rate: rate, Duration: 2 * time.Minute, Timeout: 10 * time.Second,
		})
		done <- err
	}()
	return func() {
		cancel()
		<-done
	}
}
