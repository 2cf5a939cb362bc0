package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/internal/localk8s/dashboard"
)

// DefaultImages is the image mapping every `shoal up` starts with; an
// --image of the same NAME replaces it.
const DefaultImages = "redis=redis-server"

// Options are the settings of one `shoal up`.
type Options struct {
	// Paths are the manifests: files, folders or kustomization directories.
	Paths []string
	// Images maps images to local programs: NAME=PATH, on top of
	// DefaultImages.
	Images []string
	// Addr is where the API and the dashboard listen.
	Addr string
	// IngressAddr is where the Ingress front door listens ("-" for none).
	IngressAddr string
	// Prometheus, when set, is the base URL of a Prometheus that scrapes
	// the pods (through the file_sd targets file in the run folder); Pods
	// metrics are then queried there with the prometheus-adapter rules.
	Prometheus string
	// AdapterRules is the prometheus-adapter rules file; empty means the
	// deploy kit's.
	AdapterRules string
	// SyncPeriod is the autoscalers' sync period (the controller manager's
	// --horizontal-pod-autoscaler-sync-period).
	SyncPeriod time.Duration
	// RunDir holds logs, binaries and generated files; empty means a new
	// temporary folder, removed at the end unless Keep.
	RunDir string
	Keep   bool
	// PodNet, ServiceNet and DNSPort place the cluster on loopback.
	PodNet, ServiceNet netip.Prefix
	DNSPort            uint16
	// BackOff is the first restart back-off (kubelet: 10s).
	BackOff time.Duration
	// OnReady is called once everything runs, with the addresses in use.
	OnReady func(Info)
	Logger  *slog.Logger
}

// Info says where a running `shoal up` answers.
type Info struct {
	API     string // host:port of the API and dashboard
	Ingress string // host:port of the Ingress front door; empty without one
	RunDir  string
}

// Run brings the manifests up and keeps them running until ctx ends, then
// stops everything in order: autoscalers, pods (as the kubelet terminates
// them), front doors and DNS, the API. It writes a summary to out.
func Run(ctx context.Context, o Options, out io.Writer) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	objs, warnings, err := load(o.Paths)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn("lint", "finding", w.String())
	}
	runDir := o.RunDir
	if runDir == "" {
		runDir, err = os.MkdirTemp("", "shoal-up-")
		if err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		if !o.Keep {
			defer os.RemoveAll(runDir)
		}
	}
	im := &images{dir: filepath.Join(runDir, "bin"), mappings: map[string]string{}, log: log}
	for _, v := range append([]string{DefaultImages}, o.Images...) {
		name, program, err := parseImageFlag(v)
		if err != nil {
			return err
		}
		im.mappings[name] = program
	}
	if err := im.prepare(ctx, imageRefs(objs)); err != nil {
		return err
	}

	// The API listener is bound before anything starts so that a clash
	// there costs nothing.
	apiLn, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("API and dashboard address: %w", err)
	}
	defer apiLn.Close()

	auto, err := newAutoscaling(o, objs, runDir, log)
	if err != nil {
		return err
	}
	c, err := cluster.New(cluster.Config{
		Objects: objs, Binary: im.binary, RunDir: runDir,
		PodNet: o.PodNet, ServiceNet: o.ServiceNet, DNSPort: o.DNSPort,
		IngressAddr: o.IngressAddr, BackOff: o.BackOff,
		Autoscalers: auto.status, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("starting pods", "deployments", len(objs.Deployments), "services", len(objs.Services), "run_dir", runDir)
	if err := c.Start(); err != nil {
		return err
	}
	if err := auto.attach(c); err != nil {
		c.Stop()
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/api/", c.Handler())
	mux.Handle("/", dashboard.Handler())
	api := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	clusterDone := make(chan struct{})
	wg.Go(func() {
		defer close(clusterDone)
		if err := c.Run(runCtx); err != nil {
			log.Error("cluster stopped", "err", err)
		}
	})
	autoCtx, stopAuto := context.WithCancel(runCtx)
	var autoWG sync.WaitGroup
	autoWG.Go(func() { auto.run(autoCtx) })
	wg.Go(func() {
		if err := api.Serve(apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err)
		}
	})

	info := Info{API: apiLn.Addr().String(), Ingress: c.IngressAddr(), RunDir: runDir}
	writeSummary(out, info, c.Snapshot())
	if o.OnReady != nil {
		o.OnReady(info)
	}

	<-ctx.Done()
	fmt.Fprintln(out, "stopping: autoscalers, pods, front doors, API")
	stopAuto()
	autoWG.Wait()
	<-clusterDone // Run terminated the pods and closed the front doors
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	_ = api.Shutdown(shut)
	done()
	wg.Wait()
	fmt.Fprintln(out, "stopped")
	return nil
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

func writeSummary(w io.Writer, info Info, s cluster.Snapshot) {
	fmt.Fprintf(w, "shoal up: %d deployments, %d pods, %d services\n", len(s.Deployments), len(s.Pods), len(s.Services))
	fmt.Fprintf(w, "  dashboard  http://%s/\n", info.API)
	ings := s.Ingresses
	sort.Slice(ings, func(i, j int) bool { return ings[i].URL < ings[j].URL })
	for _, ing := range ings {
		fmt.Fprintf(w, "  ingress    %s -> %s\n", ing.URL, ing.Backend)
	}
	for _, svc := range s.Services {
		if svc.Type == "ClusterIP" {
			fmt.Fprintf(w, "  service    %s/%s %s %v\n", svc.Namespace, svc.Name, svc.ClusterIP, svc.Ports)
		}
	}
	fmt.Fprintf(w, "  logs       %s\n", filepath.Join(info.RunDir, "logs"))
	fmt.Fprintln(w, "Ctrl-C stops everything.")
}
