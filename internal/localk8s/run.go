package localk8s

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/internal/localk8s/dashboard"
	"github.com/shoal-dev/shoal/internal/localk8s/hpacontroller"
)

// DefaultImages is the image mapping every Run starts with; an entry of
// Config.Images with the same NAME replaces it.
const DefaultImages = "redis=redis-server"

// Config is what one Run brings up and where. Paths is required; the
// other fields' zero values are valid.
type Config struct {
	// Paths are the manifests: files, folders or kustomization directories.
	Paths []string
	// Images maps images to local programs: NAME=PATH, on top of
	// DefaultImages.
	Images []string
	// Addr is where the API and the dashboard listen, as net.Listen takes
	// it: empty or port 0 picks a free port. `shoal up` defaults to
	// api.DefaultAddr.
	Addr string
	// IngressAddr is where the Ingress front door listens ("-" for none).
	// If empty, cluster.DefaultIngressAddr.
	IngressAddr string
	// Prometheus, when set, is the base URL of a Prometheus that scrapes
	// the pods (through the file_sd targets file in the run folder); Pods
	// metrics are then queried there with the prometheus-adapter rules.
	Prometheus string
	// AdapterRules is the prometheus-adapter rules file; empty means the
	// deploy kit's.
	AdapterRules string
	// SyncPeriod is the autoscalers' sync period (the controller manager's
	// --horizontal-pod-autoscaler-sync-period). If zero, 15s.
	SyncPeriod time.Duration
	// RunDir holds logs, binaries and generated files; empty means a new
	// temporary folder, removed at the end unless Keep.
	RunDir string
	Keep   bool
	// PodNet, ServiceNet and DNSPort place the cluster on loopback; zero
	// values take cluster.Config's defaults.
	PodNet, ServiceNet netip.Prefix
	DNSPort            uint16
	// MaxPods bounds the pods run at once; zero takes cluster.Config's
	// default (the kubelet's 110).
	MaxPods int
	// BackOff is the first restart back-off. If zero, the kubelet's 10s.
	BackOff time.Duration
	// OnReady, if set, is called once everything runs.
	OnReady func(Info)
	// OnStop, if set, is called once when the stop begins, before anything
	// is stopped.
	OnStop func()
	// Logger receives the logs. If nil, nothing is logged.
	Logger *slog.Logger
}

// Info says where a running Run answers, and what it runs.
type Info struct {
	API     string // host:port of the API and dashboard
	Ingress string // host:port of the Ingress front door; empty without one
	RunDir  string
	// Snapshot is the cluster's state when it became ready.
	Snapshot api.Snapshot
}

// Run brings the manifests up with Kubernetes' semantics and keeps them
// running until ctx ends, then stops everything in this order, each part
// once the one before has stopped: the metrics collector and the
// autoscalers, so that nothing scales a Deployment being torn down; the
// pods, terminated as the kubelet does (endpoints first), then the
// Service front doors, the Ingress and the DNS server; the API and the
// dashboard last, so that they show the stop until it is done.
//
// Everything that can fail is checked before a pod starts: manifests,
// images, the API's address; a failure later, such as the API server
// failing, stops the rest in the same order. Run returns when everything
// it started has stopped: nil after a stop caused by ctx, else what failed.
func Run(ctx context.Context, cfg Config) (err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	objs, warnings, err := load(cfg.Paths)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn("lint", "finding", w.String())
	}
	runDir := cfg.RunDir
	if runDir == "" {
		runDir, err = os.MkdirTemp("", "shoal-up-")
		if err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(runDir)
		}
	}
	im := &images{dir: filepath.Join(runDir, "bin"), mappings: map[string]string{}, log: log}
	for _, v := range append([]string{DefaultImages}, cfg.Images...) {
		name, program, err := parseImageFlag(v)
		if err != nil {
			return err
		}
		im.mappings[name] = program
	}
	if err := im.prepare(ctx, imageRefs(objs)); err != nil {
		return err
	}
	direct, metrics, err := newMetrics(cfg)
	if err != nil {
		return err
	}

	// The API listener is bound before anything starts so that a clash
	// there costs nothing.
	apiLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("API and dashboard address: %w", err)
	}
	defer apiLn.Close()

	// The cluster's snapshots show the autoscalers, and the autoscalers
	// scale the cluster: the closure reads ctrl, set below, only once the
	// cluster runs.
	var ctrl *hpacontroller.Controller
	c, err := cluster.New(cluster.Config{
		Objects: objs, Binary: im.binary, RunDir: runDir,
		PodNet: cfg.PodNet, ServiceNet: cfg.ServiceNet, DNSPort: cfg.DNSPort,
		IngressAddr: cfg.IngressAddr, BackOff: cfg.BackOff, MaxPods: cfg.MaxPods,
		Autoscalers: func() []api.AutoscalerInfo { return ctrl.Status() },
		Logger:      log,
	})
	if err != nil {
		return err
	}
	ctrl = newController(c, objs, cfg, metrics, log)
	col := newCollector(c, direct, filepath.Join(runDir, "prometheus-targets.json"), log)

	log.Info("starting pods", "deployments", len(objs.Deployments), "services", len(objs.Services), "run_dir", runDir)
	if err := c.Start(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(api.Prefix, api.Handler(c))
	mux.Handle("/", dashboard.Handler())
	srv := &http.Server{Handler: api.Guard(mux), ReadHeaderTimeout: 10 * time.Second}

	// The order of the actors is the stop order.
	g := group{stopping: cfg.OnStop}
	g.add(untilCancelled("metrics collector", col.run))
	if len(objs.HPAs)+len(objs.ScaledObjects) > 0 {
		g.add(untilCancelled("autoscalers", ctrl.Run))
	}
	g.add(untilCancelled("cluster", c.Run)) // pods, then front doors and DNS
	g.add(serving("API server", srv, apiLn))
	g.started = func() {
		if cfg.OnReady != nil {
			cfg.OnReady(Info{API: apiLn.Addr().String(), Ingress: c.IngressAddr(), RunDir: runDir, Snapshot: c.Snapshot()})
		}
	}
	return g.run(ctx)
}

func imageRefs(objs *cluster.Objects) []string {
	var refs []string
	for _, d := range objs.Deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			refs = append(refs, c.Image)
		}
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}
