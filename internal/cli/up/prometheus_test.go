package up_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/testkit/promtest"
)

// TestPrometheusFeedsTheHPA runs Debian's Prometheus over the file_sd
// targets file shoal up writes, and shows the HPA's Pods metric coming
// from Prometheus through the adapter rule's query (--prometheus).
func TestPrometheusFeedsTheHPA(t *testing.T) {
	// CI runs this test: an absent Prometheus fails it rather than skip it.
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatalf("prometheus not found (scripts/deps.sh installs it): %v", err)
	}
	runDir := t.TempDir()
	prom := promtest.Start(t, promtest.Options{Config: fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: pods
    file_sd_configs: [{files: [%q], refresh_interval: 1s}]
`, filepath.Join(runDir, "prometheus-targets.json"))})

	n := netsOf("127.0.43.0/24", "127.0.44.0/24")
	up := startUp(t, localk8s.Config{
		Paths:       []string{"testdata/scaleup.yaml"},
		Images:      []string{thumbnailerImage + "=" + bins.thumbnailer},
		Addr:        "127.0.0.1:0",
		IngressAddr: "-",
		PodNet:      n.pod,
		ServiceNet:  n.service,
		SyncPeriod:  2 * time.Second,
		RunDir:      runDir,
		Prometheus:  prom.URL(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	snap, err := up.api.waitFor(ctx, "one ready thumbnailer", func(s api.Snapshot) bool {
		d, ok := deploymentOf(s, "thumbnailer")
		return ok && d.Ready == 1
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
	defer thumbnailLoad(ctx, t, clusterIP, 30)()
	snap, err = up.api.waitFor(ctx, "the HPA scaling on Prometheus' numbers", func(s api.Snapshot) bool {
		for _, a := range s.Autoscalers {
			if a.Name == "thumbnailer" && a.Desired >= 2 && !strings.Contains(a.Metrics, "unknown") {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range snap.Autoscalers {
		t.Logf("%s: desired %d, %s (%s)", a.Name, a.Desired, a.Metrics, a.Reason)
	}
	// The numbers came from Prometheus: it holds the pods' series with the
	// labels from the targets file.
	resp, err := http.Get(prom.URL() + "/api/v1/query?query=" + "count(http_requests_total%7Bnamespace%3D%22default%22%2Cpod%3D~%22thumbnailer-.*%22%7D)")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"result":[{`) {
		t.Errorf("Prometheus has no http_requests_total of the pods: %s", body)
	}
}
