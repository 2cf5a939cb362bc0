package up

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/deploy"
	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// adapterRulesPath is the deploy kit's prometheus-adapter rules in deploy.FS.
const adapterRulesPath = "monitoring/prometheus-adapter.yaml"

// autoscaling is the metrics pipeline and the autoscalers of one `shoal up`:
// the collector scrapes the pods, and the controller reconciles the HPAs and
// ScaledObjects against the cluster.
type autoscaling struct {
	objs    *cluster.Objects
	log     *slog.Logger
	period  time.Duration
	metrics hpacontroller.Metrics
	direct  *podmetrics.Direct
	targets string // file_sd targets file for a local Prometheus

	ctrl atomic.Pointer[hpacontroller.Controller]
	col  *collector
}

func newAutoscaling(o Options, objs *cluster.Objects, runDir string, log *slog.Logger) (*autoscaling, error) {
	var rules *podmetrics.Rules
	var err error
	if o.AdapterRules != "" {
		rules, err = podmetrics.LoadRules(o.AdapterRules)
	} else {
		var data []byte
		if data, err = deploy.FS.ReadFile(adapterRulesPath); err == nil {
			rules, err = podmetrics.ParseRules(data)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("adapter rules: %w", err)
	}
	a := &autoscaling{objs: objs, log: log, period: o.SyncPeriod, targets: filepath.Join(runDir, "prometheus-targets.json")}
	a.direct, err = podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules})
	if err != nil {
		return nil, err
	}
	a.metrics = a.direct
	if o.Prometheus != "" {
		p, err := podmetrics.NewPrometheus(podmetrics.PrometheusConfig{Address: o.Prometheus, Rules: rules})
		if err != nil {
			return nil, fmt.Errorf("--prometheus: %w", err)
		}
		a.metrics = p
	}
	return a, nil
}

// attach starts reconciling against c; it is called once c runs.
func (a *autoscaling) attach(c *cluster.Cluster) error {
	ctrl := hpacontroller.New(hpacontroller.Config{
		Target:     target{c},
		Metrics:    a.metrics,
		SyncPeriod: a.period,
		Logger:     a.log.With("component", "autoscaler"),
		OnEvent: func(e hpacontroller.Event) {
			c.Event(e.Namespace, e.Type, e.Reason, e.Object, e.Message)
		},
	})
	// Set keeps the autoscalers it understands; the others are reported
	// and left alone, as a controller leaves an object it cannot read.
	if err := ctrl.Set(a.objs.HPAs, a.objs.ScaledObjects); err != nil {
		a.log.Warn("autoscalers not reconciled", "err", err)
		// Events about no one object go where Kubernetes records a
		// cluster-scoped object's events.
		c.Event(metav1.NamespaceDefault, "Warning", "FailedGetScale", "autoscaler", err.Error())
	}
	a.ctrl.Store(ctrl)
	a.col = newCollector(c, a.direct, a.targets, a.log)
	return nil
}

// run scrapes and reconciles until ctx ends.
func (a *autoscaling) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { a.col.run(ctx) })
	if ctrl := a.ctrl.Load(); ctrl != nil && len(a.objs.HPAs)+len(a.objs.ScaledObjects) > 0 {
		wg.Go(func() {
			if err := ctrl.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("autoscalers stopped", "err", err)
			}
		})
	}
	wg.Wait()
}

func (a *autoscaling) status() []cluster.AutoscalerInfo {
	ctrl := a.ctrl.Load()
	if ctrl == nil {
		return nil
	}
	return ctrl.Status()
}

// target lets the autoscalers read and scale the cluster's Deployments.
type target struct{ c *cluster.Cluster }

var _ hpacontroller.Target = target{}

func (t target) Pods(namespace, deployment string) (int32, []hpacontroller.PodView, error) {
	replicas, pods, err := t.c.Pods(namespace, deployment)
	if err != nil {
		return 0, nil, err
	}
	views := make([]hpacontroller.PodView, 0, len(pods))
	for _, p := range pods {
		views = append(views, hpacontroller.PodView{
			Name: p.Name, IP: p.IP, Ready: p.Ready, Deleted: p.Terminating,
			StartTime: p.StartTime, ReadyTime: p.ReadyTime,
			CPURequest: p.CPURequest, CPUTime: p.CPUTime, MetricsURL: p.MetricsURL,
		})
	}
	return replicas, views, nil
}

func (t target) Scale(namespace, deployment string, replicas int32, reason string) error {
	return t.c.Scale(namespace, deployment, replicas)
}
