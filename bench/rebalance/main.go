// Command rebalance shows what keep-alive rebalancing does after an HPA
// scale-up. It runs a thumbnailer Deployment, a ClusterIP Service and an
// HPA on the per-pod request rate with `shoal up` (in-process, on its own
// loopback networks), sends a fixed set of keep-alive clients through the
// Service's ClusterIP at a low rate and then a step up, and records:
//
//   - the HPA's decisions, next to what package autoscale's Simulate
//     predicts for the same HPA object and load;
//   - each replica's share of the requests per time window after the
//     scale-up, judged against the fair share 1/N (within 15%) from two
//     connection ages after the new pods are ready.
//
// It does so twice: with MAX_CONN_AGE set (the toolkit's keep-alive
// rebalancing on) and with MAX_CONN_AGE=-1s (off: the services' default is
// 1m, so leaving it unset would not turn it off), and writes a markdown
// report to stdout.
//
//	go run ./bench/rebalance
//	go run ./bench/rebalance -conns 1024 -rate 40:30s,160:140s -max-conn-age 10s -o rebalance.json
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/upbench"
	"github.com/shoal-dev/shoal/loadgen"
)

// options are the command's flags.
type options struct {
	rate       string
	duration   time.Duration
	conns      int
	maxConnAge time.Duration
	window     time.Duration
	target     float64
	minRep     int
	maxRep     int
	sync       time.Duration
	rateWindow time.Duration
	runs       string
	binary     string
	out        string
	keep       bool
	verbose    bool
}

// Bounds that keep a run short and the machine responsive.
const (
	maxRate     = 2000
	maxConns    = 4096
	maxDuration = 10 * time.Minute
)

func main() {
	var o options
	flag.StringVar(&o.rate, "rate", "40:30s,160:140s", "load steps RATE:DURATION,... (requests per second); the largest rise is the step the HPA answers")
	flag.DurationVar(&o.duration, "duration", 0, "bound on each run's load (0: the steps' total)")
	flag.IntVar(&o.conns, "conns", 1024, "keep-alive clients, one connection each, through the ClusterIP")
	flag.DurationVar(&o.maxConnAge, "max-conn-age", 10*time.Second, "MAX_CONN_AGE of the run with rebalancing on")
	flag.DurationVar(&o.window, "window", 20*time.Second, "length of the windows the shares are measured in")
	flag.Float64Var(&o.target, "target", 40, "HPA target: requests per second per pod (AverageValue)")
	flag.IntVar(&o.minRep, "min", 2, "HPA minReplicas")
	flag.IntVar(&o.maxRep, "max", 6, "HPA maxReplicas")
	flag.DurationVar(&o.sync, "sync", 3*time.Second, "HPA sync period")
	flag.DurationVar(&o.rateWindow, "rate-window", 10*time.Second, "range of rate() in the adapter rule of http_requests_per_second")
	flag.StringVar(&o.runs, "runs", "on,off", "runs, in order: on (MAX_CONN_AGE set), off (MAX_CONN_AGE=-1s)")
	flag.StringVar(&o.binary, "thumbnailer", "", "prebuilt thumbnailer program (default: go build ./cmd/thumbnailer)")
	flag.StringVar(&o.out, "o", "", "also write the results as JSON to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the run folders (logs, manifests)")
	flag.BoolVar(&o.verbose, "v", false, "log shoal up's progress to stderr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rebalance:", err)
		os.Exit(1)
	}
}

func (o options) validate() ([]loadgen.Step, error) {
	steps, err := loadgen.ParseSteps(o.rate)
	if err != nil {
		return nil, fmt.Errorf("-rate: %w", err)
	}
	for _, s := range steps {
		if s.Rate > maxRate {
			return nil, fmt.Errorf("-rate: step %s above %d requests per second", s, maxRate)
		}
	}
	if _, err := stepUp(steps); err != nil {
		return nil, err
	}
	switch {
	case o.duration < 0:
		return nil, fmt.Errorf("-duration %v: must not be negative", o.duration)
	case loadLength(steps, o.duration) > maxDuration:
		return nil, fmt.Errorf("-rate/-duration: a run's load is bounded by %v", maxDuration)
	case o.conns < 1 || o.conns > maxConns:
		return nil, fmt.Errorf("-conns %d: want 1 to %d", o.conns, maxConns)
	case o.maxConnAge < time.Second:
		return nil, fmt.Errorf("-max-conn-age %v: want at least 1s", o.maxConnAge)
	case o.window < time.Second:
		return nil, fmt.Errorf("-window %v: want at least 1s", o.window)
	case !(o.target > 0):
		return nil, fmt.Errorf("-target %v: want a positive rate", o.target)
	case o.minRep < 1 || o.maxRep < o.minRep || o.maxRep > 20:
		return nil, fmt.Errorf("-min %d -max %d: want 1 <= min <= max <= 20", o.minRep, o.maxRep)
	case o.sync < time.Second:
		return nil, fmt.Errorf("-sync %v: want at least 1s", o.sync)
	case o.rateWindow < 4*time.Second:
		return nil, fmt.Errorf("-rate-window %v: want at least 4s (two scrapes of shoal up)", o.rateWindow)
	}
	for r := range strings.SplitSeq(o.runs, ",") {
		if r != "on" && r != "off" {
			return nil, fmt.Errorf("-runs %q: each run is on or off", o.runs)
		}
	}
	return steps, nil
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	steps, err := o.validate()
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	bin, cleanup, err := upbench.Thumbnailer(ctx, o.binary, stderr)
	if err != nil {
		return err
	}
	defer cleanup()

	var results []*result
	for name := range strings.SplitSeq(o.runs, ",") {
		s := spec{
			MinReplicas: int32(o.minRep), MaxReplicas: int32(o.maxRep), Target: o.target,
			RateWindow: o.rateWindow,
		}
		if name == "on" {
			s.MaxConnAge = o.maxConnAge
		} else {
			s.MaxConnAge = maxConnAgeOff
		}
		rc := runConfig{
			name: name, spec: s, steps: steps, duration: o.duration, conns: o.conns, window: o.window,
			syncPeriod: o.sync, settleAge: o.maxConnAge, binary: bin, keep: o.keep, log: log,
		}
		m, err := manifests(s)
		if err != nil {
			return err
		}
		hpa, err := hpaOf(m)
		if err != nil {
			return err
		}
		age := "MAX_CONN_AGE=" + s.MaxConnAge.String()
		fmt.Fprintf(stderr, "run %s: %s, %d clients, load %s\n", name, age, o.conns, o.rate)
		runCtx, cancel := context.WithTimeout(ctx, loadLength(steps, o.duration)+upbench.StartTimeout+upbench.StopTimeout)
		data, err := runOnce(runCtx, rc)
		cancel()
		if err != nil {
			return fmt.Errorf("run %s: %w", name, err)
		}
		r, err := analyze(name, rc, hpa, data)
		if err != nil {
			return fmt.Errorf("run %s: %w", name, err)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	writeMarkdown(stdout, o, results)
	if o.out != "" {
		b, err := json.MarshalIndent(map[string]any{"options": o.jsonView(), "runs": results}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func loadLength(steps []loadgen.Step, bound time.Duration) time.Duration {
	var total time.Duration
	for _, s := range steps {
		total += s.Duration
	}
	if bound > 0 {
		return min(total, bound)
	}
	return total
}

func (o options) jsonView() map[string]any {
	return map[string]any{
		"rate": o.rate, "duration": o.duration.String(), "conns": o.conns, "maxConnAge": o.maxConnAge.String(),
		"window": o.window.String(), "target": o.target, "min": o.minRep, "max": o.maxRep,
		"sync": o.sync.String(), "rateWindow": o.rateWindow.String(),
	}
}

// testPNG is the request body: a small gradient, resized on every request
// (the thumbnailer's cache is off in the manifests).
func testPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 48, 48))
	for y := range 48 {
		for x := range 48 {
			img.Set(x, y, color.RGBA{R: uint8(x * 5), G: uint8(y * 5), B: 128, A: 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img) // encoding to memory does not fail
	return b.Bytes()
}
