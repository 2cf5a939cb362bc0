package localk8s

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// collectInterval is how often every pod's /metrics is scraped for the
// dashboard's per-pod load.
const collectInterval = 2 * time.Second

// collector scrapes each pod's metrics and CPU time on an interval and
// hands the rates to the cluster for its snapshots.
type collector struct {
	c       *cluster.Cluster
	client  *http.Client
	direct  *podmetrics.Direct // keeps the scrapes for the autoscalers
	targets string             // file_sd targets file, rewritten each round
	log     *slog.Logger

	mu   sync.Mutex
	last map[string]podSample // by namespace/name
}

type podSample struct {
	metrics podmetrics.Sample
	ok      bool
	cpu     podmetrics.CPUSample
}

func newCollector(c *cluster.Cluster, direct *podmetrics.Direct, targets string, log *slog.Logger) *collector {
	return &collector{
		c:       c,
		direct:  direct,
		targets: targets,
		log:     log,
		client:  &http.Client{Timeout: collectInterval},
		last:    map[string]podSample{},
	}
}

func (co *collector) run(ctx context.Context) {
	t := time.NewTicker(collectInterval)
	defer t.Stop()
	for {
		co.collect(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (co *collector) collect(ctx context.Context) {
	pods := co.c.AllPods()
	seen := map[string]bool{}
	var targets []podmetrics.Target
	for _, p := range pods {
		key := p.Namespace + "/" + p.Name
		seen[key] = true
		cur := podSample{cpu: podmetrics.CPUSample{Time: time.Now(), CPU: p.CPUTime}}
		if p.MetricsURL != "" && !p.Terminating {
			sctx, cancel := context.WithTimeout(ctx, collectInterval)
			s, err := podmetrics.Scrape(sctx, co.client, p.MetricsURL)
			cancel()
			cur.metrics, cur.ok = s, err == nil
			if cur.ok {
				if err := co.direct.Record(p.Namespace, p.Name, s); err != nil {
					co.log.Warn("pod metrics not kept", "pod", key, "err", err)
				}
			}
			if u, err := url.Parse(p.MetricsURL); err == nil {
				lbls := map[string]string{"namespace": p.Namespace, "pod": p.Name, "app": p.Deployment}
				if u.Path != "/metrics" {
					lbls["__metrics_path__"] = u.Path
				}
				targets = append(targets, podmetrics.Target{Address: u.Host, Labels: lbls})
			}
		}
		co.mu.Lock()
		prev, had := co.last[key]
		co.last[key] = cur
		co.mu.Unlock()
		if !had {
			continue
		}
		var load podmetrics.Load
		if prev.ok && cur.ok {
			load = podmetrics.Rates(prev.metrics, cur.metrics)
		}
		co.c.SetLoad(p.Namespace, p.Name, podmetrics.CPURate(prev.cpu, cur.cpu), load.RPS, load.P50, load.P99)
	}
	co.mu.Lock()
	for k := range co.last {
		if !seen[k] {
			delete(co.last, k)
			ns, name, _ := strings.Cut(k, "/")
			co.direct.Forget(ns, name)
		}
	}
	co.mu.Unlock()
	if err := podmetrics.WriteTargets(co.targets, targets); err != nil {
		co.log.Warn("prometheus targets file", "err", err)
	}
}
