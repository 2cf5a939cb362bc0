package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/upbench"
	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/loadgen"
)

const (
	deployment = "thumbnailer"
	namespace  = "default"
)

// runConfig is one run: the manifests' spec and the load.
type runConfig struct {
	name       string
	spec       spec
	steps      []loadgen.Step
	duration   time.Duration // bound on the load; zero means the steps'
	conns      int
	window     time.Duration
	syncPeriod time.Duration
	// settleAge is the connection age the spread is judged after, also
	// in the run with MAX_CONN_AGE off.
	settleAge time.Duration
	binary    string // the thumbnailer program
	keep      bool
	log       *slog.Logger
}

// poll is the state of the Deployment and its HPA at one snapshot.
type poll struct {
	At        time.Time
	Replicas  int32
	Ready     int32
	ReadyPods []string
	HPA       *api.AutoscalerInfo
}

// podSeen is when a pod was created and first seen ready.
type podSeen struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	ReadyAt time.Time `json:"readyAt,omitzero"`
}

// runData is what one run recorded.
type runData struct {
	ClusterIP string
	Report    *loadgen.Report
	Polls     []poll
	Pods      map[string]*podSeen
	Events    []api.Event
}

// runOnce brings the manifests up with `shoal up` on fresh loopback
// networks, waits for the minimum replicas to serve, sends the load through
// the Service's ClusterIP while reading the API's snapshots, and stops
// everything.
func runOnce(ctx context.Context, rc runConfig) (_ *runData, err error) {
	dir, err := os.MkdirTemp("", "shoal-rebalance-")
	if err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	}
	if !rc.keep {
		defer os.RemoveAll(dir)
	} else {
		rc.log.Info("keeping the run folder", "dir", dir)
	}
	m, err := manifests(rc.spec)
	if err != nil {
		return nil, err
	}
	rules, err := adapterRules(rc.spec)
	if err != nil {
		return nil, err
	}
	manifestPath := filepath.Join(dir, "thumbnailer.yaml")
	rulesPath := filepath.Join(dir, "adapter-rules.yaml")
	if err := os.WriteFile(manifestPath, m, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(rulesPath, rules, 0o644); err != nil {
		return nil, err
	}
	up, err := upbench.Start(ctx, localk8s.Config{
		Paths:        []string{manifestPath},
		Images:       []string{thumbnailerImage + "=" + rc.binary},
		Addr:         "127.0.0.1:0",
		IngressAddr:  "-",
		AdapterRules: rulesPath,
		SyncPeriod:   rc.syncPeriod,
		RunDir:       filepath.Join(dir, "up"),
		Keep:         rc.keep,
		BackOff:      time.Second,
		Logger:       rc.log.With("run", rc.name),
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = up.Stop(err) }()
	rc.log.Info("shoal up ready", "run", rc.name, "api", up.Info.API, "pod_net", up.Config.PodNet, "service_net", up.Config.ServiceNet)

	clusterIP, err := up.WaitServing(ctx, namespace, deployment, rc.spec.MinReplicas)
	if err != nil {
		return nil, err
	}
	data := &runData{ClusterIP: clusterIP, Pods: map[string]*podSeen{}}

	pollCtx, stopPolls := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { data.Polls = pollSnapshots(pollCtx, up, data.Pods) })

	cl := newClients(rc.conns)
	cfg := loadgen.Config{
		URL:         "http://" + clusterIP + "/v1/thumbnails?width=16&height=16&fit=cover",
		Method:      http.MethodPost,
		Header:      http.Header{"Content-Type": {"image/png"}},
		Body:        testPNG(),
		Steps:       rc.steps,
		Duration:    rc.duration,
		MaxInFlight: 4 * rc.conns,
		Timeout:     10 * time.Second,
		Transport:   cl,
		Window:      rc.window,
	}
	rc.log.Info("load", "run", rc.name, "target", cfg.URL, "steps", rc.steps, "clients", rc.conns)
	rep, err := loadgen.Run(ctx, cfg)
	cl.Close()
	if s, serr := up.Client.Snapshot(ctx); serr == nil {
		data.Events = s.Events
	}
	stopPolls()
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	data.Report = rep
	return data, nil
}

// pollSnapshots records the Deployment and its HPA every upbench.PollEvery until
// ctx ends, and when each pod was created and first seen ready.
func pollSnapshots(ctx context.Context, up *upbench.Up, pods map[string]*podSeen) []poll {
	var out []poll
	up.PollSnapshots(ctx, func(s *api.Snapshot) {
		p := poll{At: s.Time}
		if p.At.IsZero() {
			p.At = time.Now()
		}
		if d := upbench.FindDeployment(s, namespace, deployment); d != nil {
			p.Replicas, p.Ready = d.Replicas, d.Ready
		}
		p.HPA = upbench.FindAutoscaler(s, namespace, deployment)
		for _, pi := range s.Pods {
			if pi.Deployment != deployment || pi.Terminating {
				continue
			}
			seen := pods[pi.Name]
			if seen == nil {
				seen = &podSeen{Name: pi.Name, Created: pi.Created}
				pods[pi.Name] = seen
			}
			if pi.Ready {
				p.ReadyPods = append(p.ReadyPods, pi.Name)
				if seen.ReadyAt.IsZero() {
					seen.ReadyAt = p.At
				}
			}
		}
		slices.Sort(p.ReadyPods)
		out = append(out, p)
	})
	return out
}
