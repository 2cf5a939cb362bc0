package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
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
	up, err := upbench.Start(ctx, localk8s.Config{
		Paths:       []string{manifestPath},
		Images:      []string{thumbnailerImage + "=" + rc.binary},
		Addr:        "127.0.0.1:0",
		IngressAddr: "-",
		SyncPeriod:  rc.syncPeriod,
		RunDir:      filepath.Join(dir, "up"),
		Keep:        rc.keep,
		BackOff:     time.Second,
		Logger:      rc.log.With("variant", rc.variant.Name, "shape", rc.shape.Name),
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = up.Stop(err) }()
	clusterIP, err := up.WaitServing(ctx, namespace, deployment, rc.minRep)
	if err != nil {
		return nil, err
	}

	data := &runData{Start: time.Now()}
	pollCtx, stopPolls := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { data.Polls = pollSnapshots(pollCtx, up) })

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

// pollSnapshots records the Deployment's pods and its autoscaler every
// upbench.PollEvery until ctx ends.
func pollSnapshots(ctx context.Context, up *upbench.Up) []poll {
	var out []poll
	up.PollSnapshots(ctx, func(s *api.Snapshot) {
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
		if a := upbench.FindAutoscaler(s, namespace, deployment); a != nil {
			p.Desired, p.Metric = a.Desired, a.Metrics
		}
		out = append(out, p)
	})
	return out
}
