// Command kit compares Shoal's service kit with go-zero and kratos: the
// same small service written in each (bench/peers/gozero,
// bench/peers/kratos, each its own module, and Shoal's
// examples/quickstart), counted in lines of code and loaded side by side
// with a bare net/http server (bench/kit/bare) as the reference.
//
// Run it from the repository root:
//
//	go run ./bench/kit loc [name=path[,path...] ...]   # the lines-of-code table only
//	go run ./bench/kit [flags]                          # lines of code, then GET /trivial throughput
//	go run ./bench/kit -warmup 5s -duration 10s -repeats 3 -concurrency 64
//
// The throughput run builds each server into a temporary directory (go
// build in its directory, so a peer builds with its own go.mod), then for
// each repeat and each server, one at a time and in alternating order from
// one repeat to the next: starts it on loopback in its own process group
// with PORT, ADMIN_PORT and BACKEND (a downstream served by the driver),
// waits until GET /trivial answers 200, runs the functional checks (first
// repeat only), drives GET /trivial from -concurrency closed-loop
// connections for -warmup and then -duration, reads its CPU time and
// memory from /proc, and stops it with SIGTERM. Every step has a deadline;
// the servers are killed when the driver exits (their process group on
// SIGINT or SIGTERM, and the kernel's parent-death signal if the driver
// is killed). The servers' output goes to files in the temporary
// directory (-keep keeps them).
//
// The functional checks: GET /hello returns the downstream's body; the
// readiness URL answers 2xx, then not 2xx while the downstream's /ping
// answers 503, then 2xx again, each within 15s; the metrics URL serves
// Prometheus text.
//
// Columns: req/s counts 200 responses over the measured phase; p50 and p99
// are of those responses; server CPU is the server's user+system time
// during the measured phase over its 200 responses (the driver shares the
// machine, so req/s depends on the driver's own cost, CPU per request does
// not); RSS after is VmRSS right after the load, peak RSS VmHWM; modules
// linked are the dep lines of go version -m.
//
// Shoal is one more target: -shoal names a directory to build or an
// executable, -shoal-env any environment it needs beyond PORT, ADMIN_PORT
// and BACKEND, -shoal-backend the form of BACKEND it takes, and
// -shoal-ready and -shoal-metrics where its probes are.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Where the programs live, relative to the repository root.
const (
	gozeroDir = "bench/peers/gozero"
	kratosDir = "bench/peers/kratos"
	bareDir   = "bench/kit/bare"
	shoalDir  = "examples/quickstart"
)

// peerBackend is the peers' BACKEND: the URL they GET.
const peerBackend = "http://{BACKEND_ADDR}/ping"

type options struct {
	duration, warmup time.Duration
	conc, repeats    int
	only             string
	shoal            string
	shoalEnv         string
	shoalBackend     string
	shoalTrivial     string
	shoalReady       string
	shoalMetrics     string
	checks           bool
	buildTimeout     time.Duration
	startTimeout     time.Duration
	stopTimeout      time.Duration
	requestTimeout   time.Duration
	keep             bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loc" {
		progs := parsePrograms(os.Args[2:])
		if len(progs) == 0 {
			progs = defaultPrograms()
		}
		if err := writeLOC(os.Stdout, progs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured load on each server, per repeat")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured load before each measurement")
	flag.IntVar(&o.conc, "concurrency", 64, "closed-loop connections")
	flag.IntVar(&o.repeats, "repeats", 1, "measurements of each server; the order of the servers alternates between repeats")
	flag.StringVar(&o.only, "only", "", "comma-separated servers to run (bare,gozero,kratos,shoal); empty runs all")
	flag.StringVar(&o.shoal, "shoal", shoalDir, "Shoal's program: a directory to go build, or an executable; skipped if it does not exist")
	flag.StringVar(&o.shoalEnv, "shoal-env", "", "comma-separated KEY=VALUE added to Shoal's environment")
	flag.StringVar(&o.shoalBackend, "shoal-backend", "http://{BACKEND_ADDR}", "Shoal's BACKEND ({BACKEND_ADDR} is replaced by the downstream's host:port, which answers GET /ping)")
	flag.StringVar(&o.shoalTrivial, "shoal-trivial", "/trivial", "the path loaded on Shoal, answering 200")
	flag.StringVar(&o.shoalReady, "shoal-ready", "http://127.0.0.1:{ADMIN_PORT}/readyz", "Shoal's readiness URL ({PORT}, {ADMIN_PORT} are replaced); empty skips the check")
	flag.StringVar(&o.shoalMetrics, "shoal-metrics", "http://127.0.0.1:{ADMIN_PORT}/metrics", "Shoal's metrics URL; empty skips the check")
	flag.BoolVar(&o.checks, "checks", true, "check /hello, readiness and metrics before the first measurement")
	flag.DurationVar(&o.buildTimeout, "build-timeout", 10*time.Minute, "bound on each go build")
	flag.DurationVar(&o.startTimeout, "start-timeout", 30*time.Second, "bound on a server's start until GET /trivial answers 200")
	flag.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "bound on a server's exit after SIGTERM, then SIGKILL")
	flag.DurationVar(&o.requestTimeout, "request-timeout", 10*time.Second, "bound on each request of the load")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory of binaries and server logs")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		stop()
		os.Exit(1)
	}
}

func defaultPrograms() []program {
	return []program{
		{name: "gozero", paths: []string{gozeroDir}},
		{name: "kratos", paths: []string{kratosDir}},
		{name: "shoal", paths: []string{shoalDir}},
	}
}

// targets returns the servers to run, in the order of the first repeat.
func targets(o options) ([]target, error) {
	ts := []target{
		{name: "bare", src: bareDir, trivial: "/trivial"},
		{
			name: "gozero", src: gozeroDir, backend: peerBackend, trivial: "/trivial",
			args:       []string{"-f", filepath.Join(gozeroDir, "etc", "hello.yaml")},
			readyURL:   "http://127.0.0.1:{PORT}/readyz",
			metricsURL: "http://127.0.0.1:{ADMIN_PORT}/metrics",
			hello:      true, graceful: true,
		},
		{
			name: "kratos", src: kratosDir, backend: peerBackend, trivial: "/trivial",
			readyURL:   "http://127.0.0.1:{PORT}/readyz",
			metricsURL: "http://127.0.0.1:{PORT}/metrics",
			hello:      true, graceful: true,
		},
	}
	if o.shoal != "" {
		shoal := target{name: "shoal", backend: o.shoalBackend, trivial: o.shoalTrivial, readyURL: o.shoalReady, metricsURL: o.shoalMetrics, hello: true, graceful: true}
		if o.shoalEnv != "" {
			shoal.env = strings.Split(o.shoalEnv, ",")
		}
		info, err := os.Stat(o.shoal)
		switch {
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(os.Stderr, "kit: %s does not exist; Shoal is left out\n", o.shoal)
		case err != nil:
			return nil, err
		case info.IsDir():
			shoal.src = o.shoal
			ts = append(ts, shoal)
		default:
			bin, err := filepath.Abs(o.shoal)
			if err != nil {
				return nil, err
			}
			shoal.bin = bin
			ts = append(ts, shoal)
		}
	}
	if o.only != "" {
		keep := strings.Split(o.only, ",")
		ts = slices.DeleteFunc(ts, func(t target) bool { return !slices.Contains(keep, t.name) })
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("kit: no server selected by -only %q", o.only)
	}
	return ts, nil
}

// measurement is one server's result in one repeat.
type measurement struct {
	repeat    int
	load      loadResult
	cpuPerReq time.Duration // the server's CPU time per 200 response
	rss, peak float64       // MiB after the load
	stopTook  time.Duration
	stopErr   error
}

// result gathers a server's measurements and checks.
type result struct {
	target
	binMiB  float64
	deps    int // modules linked into the binary, besides its own
	checked bool
	failed  []string
	runs    []measurement
}

func run(ctx context.Context, log *slog.Logger, w io.Writer, o options) error {
	if o.conc < 1 || o.repeats < 1 || o.duration <= 0 || o.warmup < 0 {
		return fmt.Errorf("kit: -concurrency %d, -repeats %d, -duration %v and -warmup %v must be positive", o.conc, o.repeats, o.duration, o.warmup)
	}
	for _, dir := range []string{gozeroDir, kratosDir, bareDir} {
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("kit: run from the repository root: %w", err)
		}
	}
	ts, err := targets(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "kit: %s, %d CPUs, load average %s, %s/%s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), loadavg(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "kit: GET /trivial (Shoal: %s), %d closed-loop connections, %v warm-up + %v measured, %d repeat(s)\n\n", o.shoalTrivial, o.conc, o.warmup, o.duration, o.repeats)
	if err := writeLOC(w, defaultPrograms()); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "shoal-kit-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(w, "\nkit: binaries and server logs kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	results := make([]*result, len(ts))
	for i := range ts {
		log.Info("building", "server", ts[i].name, "dir", ts[i].src)
		if err := build(ctx, &ts[i], dir, o.buildTimeout); err != nil {
			return err
		}
		results[i] = &result{target: ts[i]}
		if info, err := os.Stat(ts[i].bin); err == nil {
			results[i].binMiB = float64(info.Size()) / (1 << 20)
		}
		if results[i].deps, err = linkedModules(ctx, ts[i].bin); err != nil {
			return err
		}
	}

	b, err := startBackend()
	if err != nil {
		return err
	}
	defer b.close()
	probe := &http.Client{Timeout: 5 * time.Second}
	for rep := range o.repeats {
		order := slices.Clone(results)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, r := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			log.Info("measuring", "server", r.name, "repeat", rep+1)
			m, err := measure(ctx, o, r, rep, b, probe, filepath.Join(dir, fmt.Sprintf("%s-%d.log", r.name, rep+1)))
			if err != nil {
				return fmt.Errorf("kit: %s, repeat %d: %w", r.name, rep+1, err)
			}
			r.runs = append(r.runs, m)
		}
	}
	writeResults(w, o, results)
	return nil
}

// measure starts r, checks it on the first repeat, loads it and stops it.
func measure(ctx context.Context, o options, r *result, rep int, b *backend, probe *http.Client, logPath string) (measurement, error) {
	m := measurement{repeat: rep}
	p, err := start(r.target, b.addr, logPath)
	if err != nil {
		return m, err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.kill()
		}
	}()
	if err := p.waitReady(ctx, probe, o.startTimeout); err != nil {
		return m, err
	}
	if o.checks && !r.checked {
		r.failed = check(ctx, r.target, p, b, probe, checkTimeout)
		r.checked = true
	}
	client := newLoadClient(o.conc, o.requestTimeout)
	defer client.CloseIdleConnections()
	url := p.url("http://127.0.0.1:{PORT}" + r.trivial)
	if o.warmup > 0 {
		drive(ctx, client, url, o.conc, o.warmup)
	}
	cpu0, err := p.cpu()
	if err != nil {
		return m, err
	}
	m.load = drive(ctx, client, url, o.conc, o.duration)
	cpu1, err := p.cpu()
	if err != nil {
		return m, err
	}
	if m.load.ok > 0 {
		m.cpuPerReq = (cpu1 - cpu0) / time.Duration(m.load.ok)
	}
	if m.rss, m.peak, err = p.memory(); err != nil {
		return m, err
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	client.CloseIdleConnections()
	stopped = true
	m.stopTook, m.stopErr = p.stop(o.stopTimeout)
	return m, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + " (1, 5, 15 min)"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// median returns the middle of xs, or the mean of the two middle values
// when there is an even number of them.
func median[T ~int64 | ~float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func writeResults(w io.Writer, o options, results []*result) {
	fmt.Fprintf(w, "\n## GET /trivial, each run\n\n")
	fmt.Fprintln(w, "| repeat | server | req/s | p50 ms | p99 ms | errors | server CPU µs/req | RSS after MiB | peak RSS MiB | SIGTERM to exit |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for rep := range o.repeats {
		for _, r := range results {
			for _, m := range r.runs {
				if m.repeat != rep {
					continue
				}
				fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %.1f | %.1f | %.1f | %s |\n",
					rep+1, r.name, m.load.rate(), ms(m.load.percentile(0.5)), ms(m.load.percentile(0.99)),
					errorsText(m.load), float64(m.cpuPerReq)/float64(time.Microsecond), m.rss, m.peak, stopText(r.target, m))
			}
		}
	}

	var base float64
	for _, r := range results {
		if r.name == "bare" && len(r.runs) > 0 {
			base = median(rates(r.runs))
		}
	}
	fmt.Fprintf(w, "\n## GET /trivial, median of %d repeat(s)\n\n", o.repeats)
	fmt.Fprintln(w, "| server | req/s | of bare | shed (503s, all repeats) | p50 ms | p99 ms | server CPU µs/req | RSS after MiB | binary MiB | modules linked | SIGTERM to exit | checks |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, r := range results {
		if len(r.runs) == 0 {
			continue
		}
		var p50, p99, cpu, took []time.Duration
		var rss []float64
		exits, shed := "exit 0", 0
		for _, m := range r.runs {
			shed += m.load.errors["http_503"]
			took = append(took, m.stopTook)
			if m.stopErr != nil {
				exits = stopText(r.target, m)
			}
			p50 = append(p50, m.load.percentile(0.5))
			p99 = append(p99, m.load.percentile(0.99))
			cpu = append(cpu, m.cpuPerReq)
			rss = append(rss, m.rss)
		}
		rate, ratio := median(rates(r.runs)), "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", rate/base)
		}
		if exits == "exit 0" {
			exits = fmt.Sprintf("%.2fs, exit 0", median(took).Seconds())
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %d | %s | %s | %.1f | %.1f | %.1f | %d | %s | %s |\n",
			r.name, rate, ratio, shed, ms(median(p50)), ms(median(p99)), float64(median(cpu))/float64(time.Microsecond),
			median(rss), r.binMiB, r.deps, exits, checksText(o, r))
	}
	for _, r := range results {
		for _, f := range r.failed {
			fmt.Fprintf(w, "\ncheck failed: %s: %s", r.name, f)
		}
	}
	fmt.Fprintln(w)
}

func rates(runs []measurement) []float64 {
	out := make([]float64, len(runs))
	for i, m := range runs {
		out[i] = m.load.rate()
	}
	return out
}

func errorsText(r loadResult) string {
	if r.errorCount() == 0 {
		return "0"
	}
	kinds := make([]string, 0, len(r.errors))
	for k, v := range r.errors {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(kinds)
	return strings.Join(kinds, ", ")
}

func stopText(t target, m measurement) string {
	took := fmt.Sprintf("%.2fs", m.stopTook.Seconds())
	switch {
	case m.stopErr == nil:
		return took + ", exit 0"
	case !t.graceful:
		return took + ", " + m.stopErr.Error() + " (no graceful shutdown)"
	default:
		return took + ", " + m.stopErr.Error()
	}
}

func checksText(o options, r *result) string {
	switch {
	case !o.checks || !r.checked:
		return "not run"
	case !r.hello && r.readyURL == "" && r.metricsURL == "":
		return "none (reference)"
	case len(r.failed) > 0:
		return fmt.Sprintf("%d failed", len(r.failed))
	}
	var passed []string
	if r.hello {
		passed = append(passed, "hello")
	}
	if r.readyURL != "" {
		passed = append(passed, "ready")
	}
	if r.metricsURL != "" {
		passed = append(passed, "metrics")
	}
	return strings.Join(passed, ", ") + " ok"
}
