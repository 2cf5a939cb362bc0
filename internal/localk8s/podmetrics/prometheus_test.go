package podmetrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
	"github.com/shoal-dev/shoal/internal/testkit/promtest"
)

// fileSDConfig scrapes the targets of a file_sd file every second.
func fileSDConfig(targets string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pods
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, targets)
}

// promValue runs an instant query and returns the first value, or -1.
func promValue(ctx context.Context, client *http.Client, base, query string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if len(body.Data.Result) == 0 {
		return -1, nil
	}
	var v float64
	_, err = fmt.Sscan(body.Data.Result[0].Value[1].(string), &v)
	return v, err
}

// TestPrometheusMatchesDirect runs a real Prometheus that scrapes two real
// instrumented servers through a file_sd file, and checks that the
// adapter rule's per-pod request rate from Prometheus matches the one
// Direct computes from its own scrapes of the same servers.
func TestPrometheusMatchesDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Prometheus server for about 20s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The deploy kit's rules with a 10s window instead of 1m: rate over a
	// window longer than a series has existed extrapolates only half a
	// scrape interval back, so Prometheus and Direct, which started
	// scraping at different moments, agree only once the window is full.
	data, err := os.ReadFile(deployRules)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := podmetrics.ParseRules(bytes.ReplaceAll(data, []byte("[1m]"), []byte("[10s]")))
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*podServer{"gallery-a": newPodServer(t), "gallery-b": newPodServer(t)}
	interval := map[string]time.Duration{"gallery-a": 50 * time.Millisecond, "gallery-b": 200 * time.Millisecond}

	targets := filepath.Join(t.TempDir(), "targets.json")
	var list []podmetrics.Target
	for name, p := range pods {
		list = append(list, podmetrics.Target{Address: p.Listener.Addr().String(), Labels: map[string]string{"namespace": "shoal", "pod": name}})
	}
	if err := podmetrics.WriteTargets(targets, list); err != nil {
		t.Fatal(err)
	}
	base := promtest.Start(t, promtest.Options{Config: fileSDConfig(targets)}).URL()

	// Steady load, and Direct's own scrapes every second, until stopped.
	var now time.Time
	var mu sync.Mutex
	direct, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	var scrapes atomic.Int32
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for name, p := range pods {
		wg.Add(2)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval[name])
			defer tick.Stop()
			for i := 0; i < 4000; i++ {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				if resp, err := p.Client().Get(p.URL + "/ok"); err == nil {
					resp.Body.Close()
				}
			}
		}()
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; i < 200; i++ {
				if s, err := podmetrics.Scrape(loadCtx, p.Client(), p.metricsURL); err == nil {
					if err := direct.Record("shoal", name, s); err != nil {
						t.Error(err)
					}
					scrapes.Add(1)
				}
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	defer func() { stopLoad(); wg.Wait() }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for {
		n, err := promValue(ctx, client, base, `min(count_over_time(http_requests_total{namespace="shoal",code="200"}[1m]))`)
		if err == nil && n >= 15 && scrapes.Load() >= 30 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("prometheus did not collect 15 scrapes of both pods: %v, %v", n, err)
		}
		time.Sleep(500 * time.Millisecond) // polling Prometheus' progress
	}

	at := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	mu.Lock()
	now = at
	mu.Unlock()
	prom, err := podmetrics.NewPrometheus(podmetrics.PrometheusConfig{Address: base, Client: client, Rules: rules, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"gallery-a", "gallery-b"}
	fromProm, err := prom.PodsMetric(ctx, "shoal", names, "http_requests_per_second")
	if err != nil {
		t.Fatal(err)
	}
	fromDirect, err := direct.PodsMetric(ctx, "shoal", names, "http_requests_per_second")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at %s: prometheus %v, direct %v", at.Format(time.RFC3339Nano), fromProm, fromDirect)
	for _, name := range names {
		p, d := fromProm[name], fromDirect[name]
		if p <= 0 || d <= 0 || !near(p, d, 0.15) {
			t.Errorf("%s: prometheus %.3f req/s, direct %.3f req/s: differ by more than 15%%", name, p, d)
		}
	}
	if !(fromProm["gallery-a"] > 2*fromProm["gallery-b"]) {
		t.Errorf("gallery-a (every 50ms) should serve over twice the rate of gallery-b (every 200ms): %v", fromProm)
	}

	// KEDA's trigger query over both pods.
	const trigger = `sum(rate(http_requests_total{namespace="shoal",pod=~"gallery-.*"}[10s]))`
	pv, err := prom.Query(ctx, trigger)
	if err != nil {
		t.Fatal(err)
	}
	dv, err := direct.Query(ctx, trigger)
	if err != nil {
		t.Fatal(err)
	}
	if !near(pv, dv, 0.15) || !near(pv, fromProm["gallery-a"]+fromProm["gallery-b"], 1e-6) {
		t.Errorf("trigger: prometheus %.3f, direct %.3f, per-pod sum %.3f", pv, dv, fromProm["gallery-a"]+fromProm["gallery-b"])
	}
	if _, err := prom.Query(ctx, `rate(http_requests_total[1m])`); err == nil {
		t.Error("a query with several elements is not an error")
	}
	if _, err := prom.Query(ctx, `sum(`); err == nil {
		t.Error("a malformed query is not an error")
	}
}
