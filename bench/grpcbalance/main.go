// Command grpcbalance is the tail-latency experiment over gRPC: four real
// gRPC servers on loopback answer the same unary method, one of them ten
// times slower, and the same bounded open-loop load goes through a client
// using each balancing policy in turn: Shoal's shoal_peak_ewma (package
// grpcclient) and grpc-go's round_robin, least_request and
// weighted_round_robin, plus an all-healthy baseline (round_robin, every
// server fast). It reports, per policy, p50, p99 and p99.9 of the calls,
// the slow server's share of them, the errors, and each p99's ratio to
// the all-healthy p99.
//
// Each server serves -workers calls at once (its cores), each taking
// about -service (uniformly ±-jitter); more wait in line. The servers
// report ORCA per-call metrics (queries per second and the busy share of
// their workers as application utilization) so that
// weighted_round_robin, which weighs endpoints by them, gets a fair run;
// the other policies ignore them. The load is well below the servers'
// capacity, so queueing is the balancer's doing. Latency runs from each
// call's scheduled send time (no coordinated omission); the warm-up's
// calls are sent but not counted.
//
// Every round runs every mode, the order rotated from round to round; the
// report gives the median of the rounds and their range.
//
// Usage, from this directory (or make -C bench/grpcbalance):
//
//	go run . [-rounds 3] [-rate 1000] [-warmup 2s] [-duration 5s]
//
// It prints a markdown report and writes grpcbalance.csv and
// ../../docs/img/grpcbalance.svg.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// config is one invocation's settings.
type config struct {
	load
	modes    []string
	rounds   int
	service  time.Duration
	slowdown float64
	jitter   float64
	workers  int
	budget   time.Duration
	shares   int // CFS weight the process ran at; 0 the default
	// ewmaConfig is shoal_peak_ewma's loadBalancingConfig; empty or {}
	// means grpcclient's defaults.
	ewmaConfig string
	progress   io.Writer
}

func (c config) validate() error {
	switch {
	case c.rate <= 0 || c.rate > 5000:
		return fmt.Errorf("grpcbalance: -rate %v out of range (0, 5000]", c.rate)
	case c.duration <= 0 || c.warmup < 0 || c.timeout <= 0:
		return errors.New("grpcbalance: -duration and -timeout must be positive, -warmup not negative")
	case c.service <= 0 || c.slowdown < 1 || c.workers < 1 || c.rounds < 1 || c.maxOutstanding < 1:
		return errors.New("grpcbalance: -service, -workers, -rounds and -max-outstanding must be positive, -slowdown at least 1")
	case c.jitter < 0 || c.jitter >= 1:
		return fmt.Errorf("grpcbalance: -jitter %v out of range [0, 1)", c.jitter)
	case len(c.modes) == 0:
		return errors.New("grpcbalance: no modes")
	}
	for _, m := range c.modes {
		if _, err := serviceConfig(m, c.ewmaConfig); err != nil {
			return err
		}
	}
	if d := c.estimate(); d > c.budget {
		return fmt.Errorf("grpcbalance: the run would take about %v, over -budget %v", d.Round(time.Second), c.budget)
	}
	return nil
}

// estimate is how long the run takes: every mode of every round, with a
// timeout's worth of stragglers each.
func (c config) estimate() time.Duration {
	per := c.warmup + c.duration + c.service*time.Duration(c.slowdown)
	return time.Duration(c.rounds*len(c.modes)) * per
}

func mainErr(args []string) error {
	fs := flag.NewFlagSet("grpcbalance", flag.ContinueOnError)
	var (
		cfg     config
		modes   = fs.String("modes", strings.Join(allModes, ","), "modes to run, comma-separated: "+strings.Join(allModes, ", "))
		csvPath = fs.String("csv", "grpcbalance.csv", "CSV of every round's figures; empty for none")
		svgPath = fs.String("svg", "../../docs/img/grpcbalance.svg", "SVG chart of p99 and the slow server's share per policy; empty for none")
		mdPath  = fs.String("md", "", "also write the markdown report to this file")
	)
	fs.Float64Var(&cfg.rate, "rate", 1000, "offered load, calls per second (open loop)")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "load sent but not measured before each measured period")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured period of each mode in each round")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Second, "per-call deadline, from its scheduled send time")
	fs.IntVar(&cfg.maxOutstanding, "max-outstanding", 2000, "most calls the generator keeps outstanding")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds; each runs every mode")
	fs.DurationVar(&cfg.service, "service", time.Millisecond, "mean service time of a healthy server")
	fs.Float64Var(&cfg.slowdown, "slowdown", 10, "how many times slower the slow server is")
	fs.Float64Var(&cfg.jitter, "jitter", 0.2, "service times vary uniformly by this fraction either side of the mean")
	fs.IntVar(&cfg.workers, "workers", 4, "calls a server serves at once (its cores); more wait in line")
	fs.DurationVar(&cfg.budget, "budget", 2*time.Minute, "refuse runs that would take longer")
	fs.StringVar(&cfg.ewmaConfig, "ewma-config", "{}", "loadBalancingConfig of shoal_peak_ewma (grpcclient.PolicyConfig as JSON); anything but {} is named in the report")
	shares := fs.Int("shares", 262144, "CFS weight (cgroup v1 cpu.shares; the default is the most it allows, 256 times a plain process's) of this process, so other work on the machine delays it less; 0 leaves it as it is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Shoal's gRPC balancer logs endpoint changes on the default
	// logger; every mode's client would add a line to the report.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	cfg.modes = strings.Split(*modes, ",")
	cfg.progress = os.Stderr
	if err := cfg.validate(); err != nil {
		return err
	}
	if *shares > 0 {
		w, err := raiseWeight(*shares)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%v; running at the default weight\n", err)
		} else {
			cfg.shares = *shares
			defer func() {
				if err := w.restore(); err != nil {
					fmt.Fprintln(os.Stderr, err)
				}
			}()
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if err != nil {
		return err
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

// cell is one mode's measured period in one round.
type cell struct {
	round int
	mode  string
	*outcome
}

// results is a whole run.
type results struct {
	cfg     config
	slow    string // the slow server's name
	started time.Time
	elapsed time.Duration
	// loadStart and loadEnd are the machine's load averages (1, 5, 15
	// minutes), or "?" where unknown.
	loadStart, loadEnd string
	cells              []cell
}

// run starts the servers, then runs every mode of every round against
// them, and stops them.
func run(ctx context.Context, cfg config) (*results, error) {
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	var addrs []string
	for i := range 4 {
		s, err := startServer(fmt.Sprintf("server-%d", i+1), cfg.workers, cfg.jitter)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
		addrs = append(addrs, s.addr)
	}
	slow := servers[len(servers)-1]
	res := &results{cfg: cfg, slow: slow.name, started: time.Now(), loadStart: loadAverage()}
	for round := range cfg.rounds {
		for k := range cfg.modes {
			// Rotate the order, so that no mode always runs first
			// or after the same neighbour.
			mode := cfg.modes[(k+round)%len(cfg.modes)]
			for _, s := range servers {
				s.service.Store(int64(cfg.service))
			}
			if mode != modeHealthy {
				slow.service.Store(int64(float64(cfg.service) * cfg.slowdown))
			}
			conn, err := dial(mode, cfg.ewmaConfig, addrs)
			if err != nil {
				return nil, err
			}
			o := drive(ctx, cfg.load, conn)
			conn.Close()
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("grpcbalance: interrupted: %w", err)
			}
			res.cells = append(res.cells, cell{round: round + 1, mode: mode, outcome: o})
			if cfg.progress != nil {
				fmt.Fprintf(cfg.progress, "round %d %-21s p50 %7v p99 %7v slow share %5.1f%% failed %d send lag p99 %v\n",
					round+1, mode, o.quantile(0.50).Round(time.Microsecond), o.quantile(0.99).Round(time.Microsecond),
					100*o.share(slow.name), o.failed, time.Duration(o.lag.ValueAtQuantile(99)).Round(time.Microsecond))
			}
		}
	}
	res.elapsed = time.Since(res.started)
	res.loadEnd = loadAverage()
	return res, nil
}

// loadAverage returns the first three fields of /proc/loadavg, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
