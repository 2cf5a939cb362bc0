// Command overload measures what load shedding is for: goodput and latency
// when a service is offered more than it can do. It compares Shoal's
// shedder (package shed) with go-zero's adaptive shedder (core/load, as its
// rest server wires it), kratos' BBR limiter (the ratelimit middleware's
// default, aegis ratelimit/bbr) and no shedding, all around the same
// CPU-bound handler: decode a small PNG, resample it with Catmull-Rom,
// encode the thumbnail.
//
// Each variant is a real HTTP server process on loopback with GOMAXPROCS=1
// and, where cgroup v1 is writable (as root), a one-core CFS quota that it
// sees as its container's, so go-zero's and kratos' CPU readings mean what
// they do in a pod with a one-core limit. The load generator, this
// process, runs with GOMAXPROCS=1 too: the server has one core of the two,
// the generator the other. Both get a high CFS weight, so that other work
// on the machine takes neither's core.
//
// The capacity is the closed-loop throughput of the bare handler (variant
// none, 8 connections, 2 s periods after a second's warm-up), measured
// three times at the start and once more after each level's round: it is
// the median of all the periods, what the box sustained during the run
// rather than at its best moment on a machine whose other work comes and
// goes. The levels multiply the median of the periods at the start (the
// offered rates are set before the others are measured), and the report
// gives each level's offered rate over the run's capacity as well. For
// each level (1×, 2×, 4×, 8× by default) and each variant in turn, a
// fresh server gets an open-loop constant arrival rate: 0.2× the capacity
// for 3 s (the unloaded state its shedder learns from), then the level
// for 10 s. Every
// request has a 5 s timeout; latency and timeout run from its scheduled
// time, so a lagging generator counts against the server, never for it.
//
// Every tenth request (-critical-every) carries X-Priority: critical.
// Shoal's shedder is told to shed the others first (shed.Config.Critical);
// the peers have no priority and treat them alike. The share of critical
// requests answered is the measure of priority Netflix uses.
//
// The report gives, per variant and level, the goodput (200s per second),
// the shares rejected (503 or 429) and timed out, the p50 and p99 of the
// 200s, and how long after the step the p99 of the 200s in 100 ms windows
// takes to stay within twice the unloaded p99.
//
// Usage, from this directory (or make -C bench/overload):
//
//	go run . [-step 10s] [-warm 3s] [-levels 1,2,4,8] [-variants none,shoal,gozero,kratos] [-critical-every 10]
//
// It prints a markdown table and writes overload.csv and
// ../../docs/img/overload.svg.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if err := mainErr(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func mainErr(args []string) error {
	fs := flag.NewFlagSet("overload", flag.ContinueOnError)
	var (
		cfg       config
		variants  = fs.String("variants", strings.Join(allVariants, ","), "variants to run, comma-separated: "+strings.Join(allVariants, ", "))
		levels    = fs.String("levels", "1,2,4,8", "offered loads, in multiples of the capacity, comma-separated")
		csvPath   = fs.String("csv", "overload.csv", "CSV of the results; empty for none")
		svgPath   = fs.String("svg", "../../docs/img/overload.svg", "SVG chart of goodput and p99 against offered load; empty for none")
		mdPath    = fs.String("md", "", "also write the markdown report to this file")
		dumpDir   = fs.String("dump", "", "write each cell's requests (scheduled time, latency, outcome) as CSV into this directory")
		cpuProf   = fs.String("cpuprofile", "", "write the load generator's CPU profile to this file (a server's, with -serve)")
		clientMax = fs.Int("client-procs", 1, "GOMAXPROCS of the load generator")
		serve     = fs.String("serve", "", "internal: serve this variant on the listener at descriptor 3 until stdin ends")
		enter     = fs.String("enter-box", "", "internal: join this cpu box, then execute the arguments")
	)
	fs.Float64Var(&cfg.capacity, "capacity", 0, "capacity in requests per second; 0 measures it")
	fs.IntVar(&cfg.capacityConns, "capacity-conns", defaultCapacityConns, "connections of the closed-loop capacity measurement")
	fs.DurationVar(&cfg.capacityTime, "capacity-time", defaultCapacityTime, "length of each capacity measurement period, after a second's warm-up")
	fs.IntVar(&cfg.capacityRuns, "capacity-runs", defaultCapacityRuns, "capacity measurement periods at the start; their median sets the offered rates")
	fs.BoolVar(&cfg.capacityOnce, "capacity-once", false, "measure the capacity only at the start, not after each level's round too")
	fs.DurationVar(&cfg.warm, "warm", defaultWarm, "warm-up before each step, at -warm-load")
	fs.Float64Var(&cfg.warmLoad, "warm-load", defaultWarmLoad, "load of the warm-up, in multiples of the capacity")
	fs.DurationVar(&cfg.step, "step", defaultStep, "length of each level's step")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "per-request timeout")
	fs.DurationVar(&cfg.window, "window", defaultWindow, "window of the settling p99")
	fs.IntVar(&cfg.criticalEvery, "critical-every", defaultCriticalEvery, "every n-th request carries "+priorityHeader+": "+priorityCritical+", which Shoal's shedder turns away last (the peers have no priority); 0 for none")
	fs.IntVar(&cfg.maxOutstanding, "max-outstanding", defaultMaxOutstanding, "most requests the generator keeps outstanding")
	fs.IntVar(&cfg.serverProcs, "server-procs", defaultServerProcs, "GOMAXPROCS and cores (cpu box quota) of each server")
	fs.StringVar(&cfg.box, "box", "auto", "run each server in a cgroup with a quota of -server-procs cores, seen as its container's: auto, on, off")
	fs.IntVar(&cfg.shares, "shares", defaultShares, "CFS weight (cpu.shares) of the servers' boxes and the generator's, so other work on the machine does not take their cores")
	fs.DurationVar(&cfg.budget, "budget", defaultBudget, "refuse runs that could take longer")
	fs.StringVar(&cfg.serverProfile, "server-profile", "", "write each server's CPU profile into this directory, as VARIANT-N.pprof")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *enter != "":
		return enterBox(*enter, fs.Args())
	case *serve != "":
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		return serveChild(*serve)
	}

	quietPeers() // their packages run here too
	var err error
	cfg.variants = strings.Split(*variants, ",")
	if cfg.levels, err = parseLevels(*levels); err != nil {
		return err
	}
	cfg.progress = os.Stderr
	runtime.GOMAXPROCS(*clientMax)
	cfg.clientProcs = *clientMax

	if cfg.serverProfile != "" {
		if err := os.MkdirAll(cfg.serverProfile, 0o755); err != nil {
			return err
		}
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if err != nil {
		return err
	}
	if *dumpDir != "" {
		if err := dumpSamples(*dumpDir, res); err != nil {
			return err
		}
	}
	rep := newReport(res)
	out := io.Writer(os.Stdout)
	if *mdPath != "" {
		f, err := os.Create(*mdPath)
		if err != nil {
			return err
		}
		defer f.Close()
		out = io.MultiWriter(os.Stdout, f)
	}
	if err := rep.writeMarkdown(out); err != nil {
		return err
	}
	for _, w := range []struct {
		path  string
		write func(io.Writer) error
	}{{*csvPath, rep.writeCSV}, {*svgPath, rep.writeSVG}} {
		if w.path == "" {
			continue
		}
		if err := writeFile(w.path, w.write); err != nil {
			return err
		}
	}
	return nil
}

func parseLevels(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("overload: level %q: %w", f, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serveChild is a server process: it serves on the listener its parent
// passed as descriptor 3 until its standard input ends.
func serveChild(variant string) error {
	quietPeers()
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return fmt.Errorf("overload: listener from the parent: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Lives as long as the process: it ends the serving.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	err = serveUntil(ctx, variant, ln)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// dumpSamples writes each cell's requests to dir/VARIANT-LEVEL.csv.
func dumpSamples(dir string, res *results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := [...]string{answered: "answered", rejected: "rejected", timedOut: "timed_out", failed: "failed", notSent: "not_sent"}
	for _, c := range res.cells {
		path := filepath.Join(dir, fmt.Sprintf("%s-%g.csv", c.variant, c.level))
		err := writeFile(path, func(w io.Writer) error {
			bw := bufio.NewWriter(w)
			fmt.Fprintln(bw, "since_step_s,latency_ms,outcome")
			for _, s := range c.samples {
				fmt.Fprintf(bw, "%.4f,%.3f,%s\n", (s.at - c.onset).Seconds(), ms(s.latency), names[s.out])
			}
			return bw.Flush()
		})
		if err != nil {
			return err
		}
	}
	return nil
}
