package localk8s

import (
	"fmt"
	"log/slog"

	"github.com/shoal-dev/shoal/deploy"
	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// adapterRulesPath is the deploy kit's prometheus-adapter rules in deploy.FS.
const adapterRulesPath = "monitoring/prometheus-adapter.yaml"

// newMetrics returns the pipeline of the autoscalers' Pods metrics: the
// direct scrapes the collector records into, and the source the
// controller queries (those scrapes, or the Prometheus of cfg.Prometheus),
// both read through the prometheus-adapter rules.
func newMetrics(cfg Config) (*podmetrics.Direct, hpacontroller.Metrics, error) {
	var rules *podmetrics.Rules
	var err error
	if cfg.AdapterRules != "" {
		rules, err = podmetrics.LoadRules(cfg.AdapterRules)
	} else {
		var data []byte
		if data, err = deploy.FS.ReadFile(adapterRulesPath); err == nil {
			rules, err = podmetrics.ParseRules(data)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("adapter rules: %w", err)
	}
	direct, err := podmetrics.NewDirect(podmetrics.DirectConfig{Rules: rules, ScrapeInterval: collectInterval})
	if err != nil {
		return nil, nil, err
	}
	if cfg.Prometheus == "" {
		return direct, direct, nil
	}
	p, err := podmetrics.NewPrometheus(podmetrics.PrometheusConfig{Address: cfg.Prometheus, Rules: rules})
	if err != nil {
		return nil, nil, fmt.Errorf("--prometheus: %w", err)
	}
	return direct, p, nil
}

// newController returns the autoscalers of objs, reconciled against c.
func newController(c *cluster.Cluster, objs *cluster.Objects, cfg Config, metrics hpacontroller.Metrics, log *slog.Logger) *hpacontroller.Controller {
	ctrl := hpacontroller.New(hpacontroller.Config{
		Target:     target{c},
		Metrics:    metrics,
		SyncPeriod: cfg.SyncPeriod,
		Logger:     log.With("component", "autoscaler"),
		OnEvent: func(e hpacontroller.Event) {
			c.Event(e.Namespace, e.Type, e.Reason, e.Object, e.Message)
		},
	})
	// Set keeps the autoscalers it understands; the others are reported
	// and left alone, as a controller leaves an object it cannot read.
	if err := ctrl.Set(objs.HPAs, objs.ScaledObjects); err != nil {
		log.Warn("autoscalers not reconciled", "err", err)
		// Events about no one object go where Kubernetes records a
		// cluster-scoped object's events.
		c.Event(metav1.NamespaceDefault, "Warning", "FailedGetScale", "autoscaler", err.Error())
	}
	return ctrl
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
