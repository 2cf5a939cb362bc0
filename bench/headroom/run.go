package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/loadgen"
)

const (
	deployment = "thumbnailer"
	namespace  = "default"
	// pollEvery is how often the API's snapshot is read during a run.
	pollEvery = 500 * time.Millisecond
	// startTimeout bounds `shoal up` from start to its pods serving.
	startTimeout = 2 * time.Minute
	// stopTimeout bounds the termination of everything after a run.
	stopTimeout = 90 * time.Second
)

// runConfig is one run: an autoscaler variant under one load shape.
type runConfig struct {
	variant    variant
	shape      shape
	minRep     int32
	maxRep     int32
	syncPeriod time.Duration
	window     time.Duration
	path       string // request path and query
	body       []byte
	binary     string // the thumbnailer program
	keep       bool
	log        *slog.Logger
}

// poll is the Deployment and its autoscaler at one snapshot.
type poll struct {
	At      time.Time
	Pods    int // not terminating: what the run pays for
	Ready   int
	Desired int32 // the autoscaler's desired replicas
	Metric  string
}

// runData is what one run recorded.
type runData struct {
	Start   time.Time // of the load
	Report  *loadgen.Report
	Windows []windowSamples
	Polls   []poll
}

// runOnce brings the manifests up with `shoal up` on fresh loopback
// networks, waits for minReplicas to serve, sends the shape's load
// through the Service's ClusterIP while reading the API's snapshots, and
// stops everything.
func runOnce(ctx context.Context, rc runConfig, manifest []byte) (_ *runData, err error) {
	dir, err := os.MkdirTemp("", "shoal-headroom-")
	if err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	}
	if !rc.keep {
		defer os.RemoveAll(dir)
	} else {
		rc.log.Info("keeping the run folder", "dir", dir)
	}
	manifestPath := filepath.Join(dir, "thumbnailer.yaml")
	if err := os.WriteFile(manifestPath, manifest, 0o644); err != nil {
		return nil, err
	}
	podNet, svcNet, dnsPort, err := loopbackNets()
	if err != nil {
		return nil, err
	}
	ready := make(chan localk8s.Info, 1)
	opts := localk8s.Config{
		Paths:       []string{manifestPath},
		Images:      []string{thumbnailerImage + "=" + rc.binary},
		Addr:        "127.0.0.1:0",
		IngressAddr: "-",
		SyncPeriod:  rc.syncPeriod,
		RunDir:      filepath.Join(dir, "up"),
		Keep:        rc.keep,
		PodNet:      podNet,
		ServiceNet:  svcNet,
		DNSPort:     dnsPort,
		BackOff:     time.Second,
		OnReady:     func(i localk8s.Info) { ready <- i },
		Logger:      rc.log.With("variant", rc.variant.Name, "shape", rc.shape.Name),
	}
	if err := os.MkdirAll(opts.RunDir, 0o755); err != nil {
		return nil, err
	}
	upCtx, stop := context.WithCancel(ctx)
	defer stop()
	upDone := make(chan error, 1)
	go func() { upDone <- localk8s.Run(upCtx, opts) }()
	defer func() {
		stop()
		select {
		case e := <-upDone:
			if e != nil && err == nil {
				err = fmt.Errorf("shoal up: %w", e)
			}
		case <-time.After(stopTimeout):
			err = errors.Join(err, fmt.Errorf("shoal up did not stop within %v", stopTimeout))
		}
	}()

	var info localk8s.Info
	select {
	case info = <-ready:
	case e := <-upDone:
		upDone <- e // for the deferred wait
		return nil, fmt.Errorf("shoal up: %w", e)
	case <-time.After(startTimeout):
		return nil, fmt.Errorf("shoal up not ready within %v", startTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	client := api.Client{Server: info.API, HTTP: &http.Client{Timeout: 3 * time.Second}}
	clusterIP, err := waitServing(ctx, client, rc.minRep)
	if err != nil {
		return nil, err
	}

	data := &runData{Start: time.Now()}
	pollCtx, stopPolls := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { data.Polls = pollSnapshots(pollCtx, client) })

	const timeout = 10 * time.Second
	rec := newRecorder(data.Start, rc.window, timeout)
	cfg := loadgen.Config{
		URL:         "http://" + clusterIP + rc.path,
		Method:      http.MethodPost,
		Header:      http.Header{"Content-Type": {"image/png"}},
		Body:        rc.body,
		Steps:       rc.shape.Steps,
		MaxInFlight: 4000,
		Timeout:     timeout,
		Transport:   rec,
		Window:      rc.window,
	}
	rep, err := loadgen.Run(ctx, cfg)
	stopPolls()
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	data.Report, data.Windows = rep, rec.samples()
	return data, nil
}

// loopbackNets picks pod and Service networks on loopback that no default
// `shoal up` uses (127.N.1.0/24 and 127.N.2.0/24 with a random N), and a
// free port for the DNS server.
func loopbackNets() (pods, services netip.Prefix, dnsPort uint16, err error) {
	n := 64 + rand.IntN(180)
	pods = netip.MustParsePrefix(fmt.Sprintf("127.%d.1.0/24", n))
	services = netip.MustParsePrefix(fmt.Sprintf("127.%d.2.0/24", n))
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.%d.2.10:0", n))
	if err != nil {
		return pods, services, 0, fmt.Errorf("DNS port: %w", err)
	}
	dnsPort = uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	return pods, services, dnsPort, nil
}

// waitServing waits until the Deployment has want ready pods and the
// Service lists them, and returns the Service's ClusterIP address.
func waitServing(ctx context.Context, client api.Client, want int32) (string, error) {
	deadline := time.Now().Add(startTimeout)
	var last string
	for time.Now().Before(deadline) {
		s, err := client.Snapshot(ctx)
		if err == nil {
			d, svc := findDeployment(s), findService(s)
			if d != nil && svc != nil && d.Ready >= want && len(svc.Endpoints) >= int(want) {
				return net.JoinHostPort(svc.ClusterIP, "80"), nil
			}
			if d != nil {
				last = fmt.Sprintf("%d/%d ready", d.Ready, want)
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	return "", fmt.Errorf("deployment %s not serving within %v (%s)", deployment, startTimeout, last)
}

// pollSnapshots records the Deployment's pods and its autoscaler every
// pollEvery until ctx ends.
func pollSnapshots(ctx context.Context, client api.Client) []poll {
	var out []poll
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if s, err := client.Snapshot(ctx); err == nil {
			p := poll{At: time.Now()}
			for _, pi := range s.Pods {
				if pi.Deployment != deployment || pi.Terminating {
					continue
				}
				p.Pods++
				if pi.Ready {
					p.Ready++
				}
			}
			for _, a := range s.Autoscalers {
				if (a.Namespace == namespace || a.Namespace == "") && a.Name == deployment {
					p.Desired, p.Metric = a.Desired, a.Metrics
				}
			}
			out = append(out, p)
		}
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}

func findDeployment(s *api.Snapshot) *api.DeploymentInfo {
	for i := range s.Deployments {
		if d := &s.Deployments[i]; d.Namespace == namespace && d.Name == deployment {
			return d
		}
	}
	return nil
}

func findService(s *api.Snapshot) *api.ServiceInfo {
	for i := range s.Services {
		if v := &s.Services[i]; v.Namespace == namespace && v.Name == deployment && v.Type == "ClusterIP" {
			return v
		}
	}
	return nil
}
