package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of config. With them the whole run, four variants at four
// levels, takes about five minutes.
const (
	defaultWarm           = 3 * time.Second
	defaultWarmLoad       = 0.2
	defaultStep           = 10 * time.Second
	defaultTimeout        = 5 * time.Second
	defaultWindow         = 100 * time.Millisecond
	defaultCapacityConns  = 8
	defaultCapacityWarm   = time.Second
	defaultCapacityTime   = 2 * time.Second // a period; the capacity is the median of the run's periods
	defaultCapacityRuns   = 3               // at the start; one more after each level's round
	defaultCriticalEvery  = 10
	defaultMaxOutstanding = 15000 // below the 20000 open files a process may have here
	defaultServerProcs    = 1
	defaultBudget         = 10 * time.Minute
	defaultShares         = 262144                 // the most cgroup v1 allows: 256 times a plain process's weight
	warmSkip              = 500 * time.Millisecond // of each warm-up, left out of the unloaded p99
)

var defaultLevels = []float64{1, 2, 4, 8}

// config describes one benchmark run; zero fields mean the defaults above.
type config struct {
	variants       []string
	levels         []float64 // offered load, in multiples of the capacity
	capacity       float64   // requests per second; 0 means measure it
	capacityConns  int
	capacityWarm   time.Duration
	capacityTime   time.Duration // of each period measured
	capacityRuns   int           // periods measured at the start, whose median sets the offered rates
	capacityOnce   bool          // measure only at the start, not after each level's round too
	warm           time.Duration // of steady load before each step
	warmLoad       float64       // the warm-up's load, in multiples of the capacity
	step           time.Duration // of each level
	timeout        time.Duration // per request
	window         time.Duration // for the settling time
	maxOutstanding int
	criticalEvery  int           // every criticalEvery-th request of a step is critical; 0 none
	serverProcs    int           // GOMAXPROCS of each server
	clientProcs    int           // GOMAXPROCS of the generator, as set by main (report only)
	box            string        // "auto", "on" or "off": run servers in a one-core cgroup
	shares         int           // CFS weight of the boxes, the generator's included
	inProcess      bool          // serve in this process (tests); no box, no GOMAXPROCS
	budget         time.Duration // the longest the whole run may take
	serverProfile  string        // directory of each server's CPU profile; empty for none
	progress       io.Writer     // progress lines; nil means none
}

func (c config) withDefaults() config {
	if len(c.variants) == 0 {
		c.variants = allVariants
	}
	if len(c.levels) == 0 {
		c.levels = defaultLevels
	}
	if c.capacityConns == 0 {
		c.capacityConns = defaultCapacityConns
	}
	if c.capacityWarm == 0 {
		c.capacityWarm = defaultCapacityWarm
	}
	if c.capacityTime == 0 {
		c.capacityTime = defaultCapacityTime
	}
	if c.capacityRuns == 0 {
		c.capacityRuns = defaultCapacityRuns
	}
	if c.warm == 0 {
		c.warm = defaultWarm
	}
	if c.warmLoad == 0 {
		c.warmLoad = defaultWarmLoad
	}
	if c.step == 0 {
		c.step = defaultStep
	}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	if c.window == 0 {
		c.window = defaultWindow
	}
	if c.maxOutstanding == 0 {
		c.maxOutstanding = defaultMaxOutstanding
	}
	if c.serverProcs == 0 {
		c.serverProcs = defaultServerProcs
	}
	if c.box == "" {
		c.box = "auto"
	}
	if c.shares == 0 {
		c.shares = defaultShares
	}
	if c.budget == 0 {
		c.budget = defaultBudget
	}
	if c.progress == nil {
		c.progress = io.Discard
	}
	return c
}

// estimate is the longest the run can take: each cell's warm-up, step and
// drain (a timeout at most) plus a second to start and stop the server,
// and the capacity's periods, each measurement with its warm-up and a
// second for its server.
func (c config) estimate() time.Duration {
	cell := c.warm + c.step + c.timeout + time.Second
	d := time.Duration(len(c.variants)*len(c.levels)) * cell
	if c.capacity == 0 {
		d += c.capacityWarm + time.Duration(c.capacityRuns)*c.capacityTime + time.Second
		if !c.capacityOnce {
			d += time.Duration(len(c.levels)) * (c.capacityWarm + c.capacityTime + time.Second)
		}
	}
	return d
}

func (c config) validate() error {
	for _, v := range c.variants {
		if !slices.Contains(allVariants, v) {
			return fmt.Errorf("overload: unknown variant %q (want some of %v)", v, allVariants)
		}
	}
	for _, l := range c.levels {
		if !(l > 0) {
			return fmt.Errorf("overload: level %g is not positive", l)
		}
	}
	switch {
	case c.capacity < 0:
		return fmt.Errorf("overload: capacity %g is negative", c.capacity)
	case c.warmLoad < 0:
		return fmt.Errorf("overload: warm load %g is negative", c.warmLoad)
	case c.warm < 0 || c.step < 0 || c.timeout < 0 || c.window < 0 || c.capacityWarm < 0 || c.capacityTime < 0:
		return errors.New("overload: a duration is negative")
	case c.box != "auto" && c.box != "on" && c.box != "off":
		return fmt.Errorf("overload: box %q is not auto, on or off", c.box)
	case c.estimate() > c.budget:
		return fmt.Errorf("overload: the run could take %v, over its budget of %v: shorten -warm, -step or -timeout, or drop levels or variants", c.estimate().Round(time.Second), c.budget)
	}
	return nil
}

func rateList(rates []float64) string {
	var parts []string
	for _, r := range rates {
		parts = append(parts, fmt.Sprintf("%.0f", r))
	}
	return strings.Join(parts, ", ")
}

// cell is one variant at one level.
type cell struct {
	variant string
	level   float64
	offered float64 // requests per second
	samples []sample
	onset   time.Duration // of the step, in the samples' time
	maxLag  time.Duration
	// The server's own state at the onset and at the end, and what the
	// machine did meanwhile.
	statsOnset, statsEnd map[string]float64
	serverCPU            float64 // cores the server used from onset to end
	// utilization is Shoal's shed_utilization_ratio averaged from onset
	// to end (the rate of its integral, as the deploy kit's autoscaling
	// rule reads it); 0 for the other variants.
	utilization float64
	genCPU      float64 // cores this process used meanwhile
	machineBusy float64 // share of the machine's CPU busy, onset to end
	loadAvg     float64 // 1-minute load average at the end
	throttled   int64   // CFS periods the server's box ran out of quota in
	failures    string  // failed requests by reason
}

// capacityPeriod is one closed-loop period on a server without a shedder.
type capacityPeriod struct {
	when      string  // "start", or the level whose round it followed
	rate      float64 // 200s per second
	serverCPU float64 // cores the server used over its measurement, warm-up included; 0 if unknown
}

// results is a whole run.
type results struct {
	cfg   config
	boxed bool
	// capacity is what goodput is divided by: as given, or the median of
	// every period measured in the run. offerBase is what the levels
	// multiply: as given, or the median of the periods at the start (the
	// offered rates must be set before the rest are measured).
	capacity, offerBase float64
	capacityMeasured    bool
	capacityPeriods     []capacityPeriod
	cells               []*cell
	loadAvgStart        float64
	started, ended      time.Time
}

// capacityRates returns the rate of each period measured.
func (r *results) capacityRates() []float64 {
	rates := make([]float64, len(r.capacityPeriods))
	for i, p := range r.capacityPeriods {
		rates[i] = p.rate
	}
	return rates
}

// median returns the median of v, the mean of the middle two when there
// is an even number; 0 if empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// run measures the capacity (unless given), then every variant at every
// level, each on a fresh server.
func run(ctx context.Context, cfg config) (*results, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.budget)
	defer cancel()
	l, err := newLauncher(cfg)
	if err != nil {
		return nil, err
	}
	defer l.close()
	res := &results{cfg: cfg, boxed: l.boxed, capacity: cfg.capacity, offerBase: cfg.capacity, started: time.Now()}
	res.loadAvgStart, _ = loadAvg()
	fmt.Fprintf(cfg.progress, "overload: at most %v; servers %s; load average %.2f; at most %d requests outstanding\n",
		cfg.estimate().Round(time.Second), l.describe(), res.loadAvgStart, cfg.maxOutstanding)
	res.capacityMeasured = cfg.capacity == 0
	measure := func(periods int, when string) error {
		ps, err := measureCapacity(ctx, l, cfg, periods, when)
		if err != nil {
			return err
		}
		res.capacityPeriods = append(res.capacityPeriods, ps...)
		res.capacity = median(res.capacityRates())
		fmt.Fprintf(cfg.progress, "overload: capacity %s: %s/s (closed loop, %d connections, variant none); median so far %.0f/s\n",
			when, rateList(res.capacityRates()[len(res.capacityPeriods)-len(ps):]), cfg.capacityConns, res.capacity)
		return nil
	}
	if res.capacityMeasured {
		if err := measure(cfg.capacityRuns, "start"); err != nil {
			return nil, err
		}
		res.offerBase = res.capacity
		if res.offerBase < 1 {
			return nil, errors.New("overload: measured capacity is below 1 request per second")
		}
	}
	// Level by level, every variant in turn: the machine's own drift
	// (other work, a hyperthread sibling's load) then spreads over the
	// variants instead of landing on one.
	for _, lv := range cfg.levels {
		for _, v := range cfg.variants {
			c, err := runCell(ctx, l, cfg, v, lv, res.offerBase)
			if err != nil {
				return nil, err
			}
			res.cells = append(res.cells, c)
			s := summarize(c.samples, c.onset, cfg.step)
			fmt.Fprintf(cfg.progress, "overload: %-6s %gx: %.0f/s answered, %d rejected, %d timed out, p99 %v, load %.2f\n",
				v, lv, s.goodput, s.rejected, s.timedOut, s.p99.Round(100*time.Microsecond), c.loadAvg)
			if c.failures != "" {
				fmt.Fprintf(cfg.progress, "overload: %-6s %gx: failed: %s\n", v, lv, c.failures)
			}
		}
		// The capacity is measured again between the levels' rounds, as
		// the cells are, so that it is what the box sustained during
		// the run and not at its best moment.
		if res.capacityMeasured && !cfg.capacityOnce {
			if err := measure(1, fmt.Sprintf("after %g×", lv)); err != nil {
				return nil, err
			}
		}
	}
	res.ended = time.Now()
	return res, nil
}

// measureCapacity runs periods closed-loop periods on a fresh server of
// the variant without a shedder, after a warm-up.
func measureCapacity(ctx context.Context, l *launcher, cfg config, periods int, when string) ([]capacityPeriod, error) {
	srv, err := l.start(ctx, variantNone)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	g := newGenerator(srv.url+resizePath, cfg.timeout, cfg.maxOutstanding)
	defer g.close()
	before, began := srv.stats(ctx), time.Now()
	rates := g.closedLoop(ctx, cfg.capacityConns, cfg.capacityWarm, cfg.capacityTime, periods)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("overload: measuring capacity: %w", err)
	}
	var cpu float64
	if after := srv.stats(ctx); before != nil && after != nil {
		cpu = (after["process_cpu_seconds"] - before["process_cpu_seconds"]) / time.Since(began).Seconds()
	}
	ps := make([]capacityPeriod, len(rates))
	for i, r := range rates {
		ps[i] = capacityPeriod{when: when, rate: r, serverCPU: cpu}
	}
	return ps, nil
}

// runCell warms a fresh server of the variant at the warm load, then steps
// to level × capacity.
func runCell(ctx context.Context, l *launcher, cfg config, variant string, level, capacity float64) (*cell, error) {
	srv, err := l.start(ctx, variant)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	c := &cell{variant: variant, level: level, offered: level * capacity, onset: cfg.warm}
	g := newGenerator(srv.url+resizePath, cfg.timeout, cfg.maxOutstanding)
	g.criticalEvery = cfg.criticalEvery
	defer g.close()
	phases := []phase{{rate: cfg.warmLoad * capacity, dur: cfg.warm}, {rate: c.offered, dur: cfg.step}}

	var (
		wg           sync.WaitGroup
		onsetWall    time.Time
		onsetMachine cpuTimes
		onsetGen     time.Duration
	)
	res := g.openLoop(ctx, phases, func(i int) {
		if i != 1 {
			return
		}
		onsetWall, onsetMachine, onsetGen = time.Now(), readCPUTimes(), processCPU()
		// Off the generator's loop, so the step's first requests leave
		// on time.
		wg.Go(func() { c.statsOnset = srv.stats(ctx) })
	})
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("overload: %s at %gx: %w", variant, level, err)
	}
	c.samples, c.maxLag, c.failures = res.samples, res.maxLag, g.failureSummary()
	c.statsEnd = srv.stats(ctx)
	elapsed := time.Since(onsetWall).Seconds()
	c.genCPU = (processCPU() - onsetGen).Seconds() / elapsed
	c.machineBusy = readCPUTimes().busySince(onsetMachine)
	if c.statsOnset != nil && c.statsEnd != nil && elapsed > 0 {
		c.serverCPU = (c.statsEnd["process_cpu_seconds"] - c.statsOnset["process_cpu_seconds"]) / elapsed
		c.utilization = (c.statsEnd["shoal_utilization_seconds"] - c.statsOnset["shoal_utilization_seconds"]) / elapsed
	}
	c.loadAvg, _ = loadAvg()
	if srv.box != nil {
		c.throttled, _ = srv.box.throttled()
	}
	return c, nil
}

// launcher starts variant servers: each a fresh process of this program
// (in a one-core box when there is one), or in this process for tests.
type launcher struct {
	cfg    config
	self   string
	boxed  bool
	n      int
	genBox *cpuBox // this process's, while boxed
}

func newLauncher(cfg config) (*launcher, error) {
	l := &launcher{cfg: cfg}
	if cfg.inProcess {
		return l, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("overload: %w", err)
	}
	l.self = self
	switch cfg.box {
	case "on":
		if err := cpuBoxAvailable(); err != nil {
			return nil, err
		}
		l.boxed = true
	case "auto":
		l.boxed = cpuBoxAvailable() == nil
	}
	if l.boxed {
		removeStaleBoxes()
		// The generator gets the same weight as the servers, no quota:
		// on a machine busy with other work, neither waits for a core.
		box, err := newCPUBox(fmt.Sprintf("%s%d-gen", boxPrefix, os.Getpid()), 0, cfg.shares)
		if err != nil {
			return nil, err
		}
		if err := box.join(); err != nil {
			box.remove()
			return nil, fmt.Errorf("overload: join generator box: %w", err)
		}
		l.genBox = box
	}
	return l, nil
}

// close takes this process out of its box and removes the box.
func (l *launcher) close() error {
	if l.genBox == nil {
		return nil
	}
	return errors.Join(l.genBox.leave(), l.genBox.remove())
}

func (l *launcher) describe() string {
	switch {
	case l.cfg.inProcess:
		return "in this process"
	case l.boxed:
		return fmt.Sprintf("with GOMAXPROCS=%d in %d-core cgroups seen as their containers' (CFS weight %d, the generator's too)", l.cfg.serverProcs, l.cfg.serverProcs, l.cfg.shares)
	}
	return fmt.Sprintf("with GOMAXPROCS=%d, without a CPU cgroup (go-zero and kratos read the whole machine's CPU)", l.cfg.serverProcs)
}

// server is a running variant.
type server struct {
	url  string // http://host:port
	box  *cpuBox
	stop func() error
}

// start starts a server of the variant and waits until it answers.
func (l *launcher) start(ctx context.Context, variant string) (*server, error) {
	s, err := l.startServer(variant)
	if err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("overload: %s: %w", variant, err)
	}
	return s, nil
}

func (l *launcher) startServer(variant string) (*server, error) {
	l.n++
	if l.cfg.inProcess {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serveUntil(sctx, variant, ln) }()
		return &server{url: "http://" + ln.Addr().String(), stop: func() error { cancel(); return <-done }}, nil
	}
	// The listener is made here and handed down, so the server's address
	// is known before it starts and nothing need be read from it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lnFile, err := ln.(*net.TCPListener).File()
	ln.Close() // the file holds its own descriptor of the socket
	if err != nil {
		return nil, err
	}
	defer lnFile.Close()
	args := []string{"-serve", variant}
	if l.cfg.serverProfile != "" {
		args = append(args, "-cpuprofile", filepath.Join(l.cfg.serverProfile, fmt.Sprintf("%s-%d.pprof", variant, l.n)))
	}
	var (
		cmd *exec.Cmd
		box *cpuBox
	)
	if l.boxed {
		if box, err = newCPUBox(fmt.Sprintf("%s%d-%d", boxPrefix, os.Getpid(), l.n), l.cfg.serverProcs, l.cfg.shares); err != nil {
			return nil, err
		}
		cmd = box.command(l.self, l.self, args...)
	} else {
		cmd = exec.Command(l.self, args...)
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(l.cfg.serverProcs))
	cmd.ExtraFiles = []*os.File{lnFile} // descriptor 3
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		if box != nil {
			box.remove()
		}
		return nil, fmt.Errorf("overload: start %s: %w", variant, err)
	}
	stop := func() error {
		stdin.Close() // the server stops when its stdin ends
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			err = <-done
		}
		if box != nil {
			err = errors.Join(err, box.remove())
		}
		return err
	}
	return &server{url: "http://" + ln.Addr().String(), box: box, stop: stop}, nil
}

// waitReady polls the server's /stats until it answers, for at most
// within: a server makes its images before it serves.
func (s *server) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.stats(ctx) == nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not answering after %v: %w", within, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// stats fetches the server's /stats; nil if it could not.
func (s *server) stats(ctx context.Context) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+statsPath, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]float64
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil
	}
	return m
}

// cpuTimes are the machine's CPU ticks from /proc/stat.
type cpuTimes struct{ busy, total uint64 }

func readCPUTimes() cpuTimes {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, s := range f[1:8] {
		v, _ := strconv.ParseUint(s, 10, 64)
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

func (t cpuTimes) busySince(u cpuTimes) float64 {
	if t.total <= u.total {
		return 0
	}
	return float64(t.busy-u.busy) / float64(t.total-u.total)
}

// loadAvg returns the machine's 1-minute load average.
func loadAvg() (float64, error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, errors.New("overload: empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}
