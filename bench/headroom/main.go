// Command headroom compares three autoscalers of the thumbnailer under the
// same step and spike of load, in `shoal up` (in-process, real thumbnailer
// processes on their own loopback networks, its HPA controller):
//
//   - cpu: the deploy kit's HPA, CPU at 70% of the pods' request;
//   - rps: a Pods metric on the request rate (http_requests_per_second,
//     the kit's adapter rule: rate over 1m) at -rps-target per pod;
//   - headroom: overlays/headroom's HPA, the shedder's utilisation
//     (shed_utilization_ratio, the kit's adapter rule: in-flight over
//     limit seconds, 30s rate) at 0.4 per pod.
//
// The thumbnailer's objects come from the kit's overlays (kustomize over
// the embedded deploy kit) with only the HPA's replica bounds, the log
// level and the result cache changed. Each pod runs with GOMAXPROCS 1 (the
// kit sets it from limits.cpu), so a pod is one core of capacity; on a
// two-core machine scaling past two pods buys nothing but cost.
//
// Every request goes on a new connection to the Service's ClusterIP, so
// each is balanced over the pods ready at that moment. A 1 s window of
// requests (by send time) misses the objective when its p99 latency is
// over -objective (250ms) or more than -max-failed (1%) of its requests
// failed: the thumbnailer sheds overload with fast 503s, so a saturated
// pod shows in failures more than in latency. For each shape the table
// gives the seconds over the objective (all of them, and from the rise of
// load on), how long after the rise the autoscaler first asked for more
// pods and when one more was ready, the peak pods and the pod-seconds
// (pods not terminating, integrated over the load).
//
//	go run ./bench/headroom
//	go run ./bench/headroom -variants cpu,headroom -shapes spike -o headroom.json
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

type options struct {
	variants, shapes string
	step, spike      string
	objective        time.Duration
	maxFailed        float64
	window           time.Duration
	minRep, maxRep   int
	sync             time.Duration
	rpsTarget        float64
	imageSide        int
	binary           string
	out              string
	keep, verbose    bool
}

// Bounds that keep the whole comparison within 15 minutes.
const (
	maxLoad     = 11 * time.Minute // the sum of every run's load
	perRunExtra = 25 * time.Second // start and stop of `shoal up`, about
	maxRate     = 1000
)

func main() {
	var o options
	flag.StringVar(&o.variants, "variants", "cpu,rps,headroom", "autoscalers, in order: cpu, rps, headroom")
	flag.StringVar(&o.shapes, "shapes", "step,spike", "load shapes, in order: step, spike")
	flag.StringVar(&o.step, "step", "40:20s,160:70s,40:20s", "the step: RATE:DURATION,... (requests per second)")
	flag.StringVar(&o.spike, "spike", "40:20s,240:15s,40:45s", "the spike: RATE:DURATION,...")
	flag.DurationVar(&o.objective, "objective", 250*time.Millisecond, "p99 latency objective of each window")
	flag.Float64Var(&o.maxFailed, "max-failed", 0.01, "share of a window's requests that may fail within the objective")
	flag.DurationVar(&o.window, "window", time.Second, "window the objective is judged in")
	flag.IntVar(&o.minRep, "min", 1, "HPA minReplicas")
	flag.IntVar(&o.maxRep, "max", 4, "HPA maxReplicas")
	flag.DurationVar(&o.sync, "sync", 15*time.Second, "HPA sync period (Kubernetes' default 15s)")
	flag.Float64Var(&o.rpsTarget, "rps-target", 80, "the rps variant's target, requests per second per pod")
	flag.IntVar(&o.imageSide, "image", 256, "side of the PNG each request resizes to 64x64")
	flag.StringVar(&o.binary, "thumbnailer", "", "prebuilt thumbnailer program (default: go build ./cmd/thumbnailer)")
	flag.StringVar(&o.out, "o", "", "also write the results as JSON to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the run folders (logs, manifests)")
	flag.BoolVar(&o.verbose, "v", false, "log shoal up's progress to stderr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "headroom:", err)
		os.Exit(1)
	}
}

// plan is what validated options ask for.
type plan struct {
	variants []variant
	shapes   []shape
}

func (o options) validate() (*plan, error) {
	p := &plan{}
	all := variants(o.rpsTarget)
	for name := range strings.SplitSeq(o.variants, ",") {
		v, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("-variants %q: %q is not cpu, rps or headroom", o.variants, name)
		}
		p.variants = append(p.variants, v)
	}
	curves := map[string]string{"step": o.step, "spike": o.spike}
	var load time.Duration
	for name := range strings.SplitSeq(o.shapes, ",") {
		curve, ok := curves[name]
		if !ok {
			return nil, fmt.Errorf("-shapes %q: %q is not step or spike", o.shapes, name)
		}
		steps, err := loadgen.ParseSteps(curve)
		if err != nil {
			return nil, fmt.Errorf("-%s: %w", name, err)
		}
		if len(steps) < 2 {
			return nil, fmt.Errorf("-%s %q: want at least two steps, a rise between them", name, curve)
		}
		for _, s := range steps {
			if s.Rate > maxRate {
				return nil, fmt.Errorf("-%s: step %s above %d requests per second", name, s, maxRate)
			}
		}
		sh := shape{Name: name, Steps: steps}
		if sh.rise() == 0 {
			return nil, fmt.Errorf("-%s %q: the rate never rises", name, curve)
		}
		p.shapes = append(p.shapes, sh)
		load += sh.length() * time.Duration(len(p.variants))
	}
	switch {
	case load > maxLoad:
		return nil, fmt.Errorf("-shapes/-variants: %v of load in all; the comparison is bounded by %v", load, maxLoad)
	case o.objective <= 0:
		return nil, fmt.Errorf("-objective %v: want a positive latency", o.objective)
	case !(o.maxFailed >= 0 && o.maxFailed < 1):
		return nil, fmt.Errorf("-max-failed %v: want a share in [0, 1)", o.maxFailed)
	case o.window < 100*time.Millisecond:
		return nil, fmt.Errorf("-window %v: want at least 100ms", o.window)
	case o.minRep < 1 || o.maxRep < o.minRep || o.maxRep > 10:
		return nil, fmt.Errorf("-min %d -max %d: want 1 <= min <= max <= 10", o.minRep, o.maxRep)
	case o.sync < time.Second:
		return nil, fmt.Errorf("-sync %v: want at least 1s", o.sync)
	case !(o.rpsTarget > 0):
		return nil, fmt.Errorf("-rps-target %v: want a positive rate", o.rpsTarget)
	case o.imageSide < 16 || o.imageSide > 2048:
		return nil, fmt.Errorf("-image %d: want a side of 16 to 2048 pixels", o.imageSide)
	}
	return p, nil
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	p, err := o.validate()
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
	body := testPNG(o.imageSide)
	obj := objective{P99: o.objective, MaxFailed: o.maxFailed}
	var results []*result
	for _, sh := range p.shapes {
		for _, v := range p.variants {
			m, hpa, err := manifests(v, int32(o.minRep), int32(o.maxRep))
			if err != nil {
				return err
			}
			rc := runConfig{
				variant: v, shape: sh, minRep: int32(o.minRep), maxRep: int32(o.maxRep),
				syncPeriod: o.sync, window: o.window, path: "/v1/thumbnails?width=64&height=64",
				body: body, binary: bin, keep: o.keep, log: log,
			}
			fmt.Fprintf(stderr, "%s, %s: %s\n", sh.Name, v.Name, metricOf(hpa))
			runCtx, cancel := context.WithTimeout(ctx, sh.length()+upbench.StartTimeout+upbench.StopTimeout)
			data, err := runOnce(runCtx, rc, m)
			cancel()
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sh.Name, v.Name, err)
			}
			results = append(results, analyze(v, metricOf(hpa), sh, o.window, obj, data))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	writeMarkdown(stdout, o, p, results)
	if o.out != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeMarkdown prints one table per shape.
func writeMarkdown(w io.Writer, o options, p *plan, results []*result) {
	fmt.Fprintf(w, "Objective per %v window: p99 <= %v and at most %g%% failed. Pods: min %d, max %d, GOMAXPROCS 1 each; HPA sync %v.\n",
		o.window, o.objective, 100*o.maxFailed, o.minRep, o.maxRep, o.sync)
	for _, sh := range p.shapes {
		var curve []string
		for _, s := range sh.Steps {
			curve = append(curve, s.String())
		}
		fmt.Fprintf(w, "\n%s (%s requests/s:duration; rise at %v)\n\n", sh.Name, strings.Join(curve, ","), sh.rise())
		fmt.Fprintln(w, "| autoscaler | target | s over objective | of them after the rise | failed | p99 | asks for more pods | one more ready | peak pods | pod-seconds |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, r := range results {
			if r.Shape != sh.Name {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.1f%% | %v | %s | %s | %d | %.0f |\n",
				r.Variant, r.Metric, r.OverSeconds, r.OverAfterRise, 100*float64(r.Failed)/float64(max(1, r.Requests)),
				r.P99.Round(time.Millisecond), after(r.ScaleUp), after(r.ReadyUp), r.PeakPods, r.PodSeconds)
		}
	}
}

func after(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("+%.1fs", d.Seconds())
}

// testPNG is the request body: a side×side pattern, resized on every
// request (the result cache is off).
func testPNG(side int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			img.Set(x, y, color.RGBA{R: uint8(x * 5), G: uint8(y * 3), B: uint8(x ^ y), A: 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img) // encoding to memory does not fail
	return b.Bytes()
}
