// Command taillatency measures how request balancing policies cope with
// one slow replica: four replicas on loopback, one of them slower by a
// factor, the same open-loop load sent through a kube-proxy-like client
// (each new keep-alive connection to a random replica), round-robin and
// peak EWMA, plus an all-healthy baseline. It prints p50, p99, p99.9 and
// the slow replica's share of requests for each.
//
//	go run ./bench/taillatency -rate 400 -duration 8s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
)

func main() {
	var o options
	flag.Float64Var(&o.rate, "rate", 400, "offered load, requests per second (open loop)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "length of each run")
	flag.DurationVar(&o.service, "service", 2*time.Millisecond, "mean service time of a healthy replica")
	flag.Float64Var(&o.slowdown, "slowdown", 10, "how many times slower the slow replica is")
	flag.IntVar(&o.workers, "workers", 4, "requests a replica serves at once (its cores); more wait in line")
	flag.StringVar(&o.modes, "modes", "healthy,random,round_robin,peak_ewma", "runs, in order")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "taillatency:", err)
		os.Exit(1)
	}
}

type options struct {
	rate     float64
	duration time.Duration
	service  time.Duration
	slowdown float64
	workers  int
	modes    string
}

func (o options) validate() error {
	switch {
	case o.rate <= 0 || o.rate > 5000:
		return fmt.Errorf("-rate %v out of range (0, 5000]", o.rate)
	case o.duration <= 0 || o.duration > 2*time.Minute:
		return fmt.Errorf("-duration %v out of range (0, 2m]", o.duration)
	case o.service <= 0 || o.slowdown < 1 || o.workers < 1:
		return errors.New("-service, -slowdown and -workers must be positive")
	}
	return nil
}

// replica is an HTTP server on its own loopback address that serves
// `workers` requests at once, each taking about its service time.
type replica struct {
	addr    string
	service atomic.Int64
	slots   chan struct{}
	hits    atomic.Int64
	srv     *http.Server
	done    chan struct{}
}

func startReplica(ip string, workers int) (*replica, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return nil, err
	}
	r := &replica{addr: ln.Addr().String(), slots: make(chan struct{}, workers), done: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

func (r *replica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	select {
	case r.slots <- struct{}{}:
	case <-req.Context().Done():
		return
	}
	defer func() { <-r.slots }()
	r.hits.Add(1)
	// Service times vary by ±50% around the mean.
	d := time.Duration(float64(r.service.Load()) * (0.5 + rand.Float64()))
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-req.Context().Done():
		t.Stop()
	}
	w.Header().Set("X-Served-By", r.addr)
	_, _ = io.WriteString(w, "ok")
}

func (r *replica) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	<-r.done
}

type result struct {
	mode                string
	sent, failed        int
	p50, p99, p999, max time.Duration
	slowShare           float64
}

func run(ctx context.Context, o options, out io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	var reps []*replica
	defer func() {
		for _, r := range reps {
			r.stop()
		}
	}()
	for i := range 4 {
		r, err := startReplica(fmt.Sprintf("127.0.0.%d", i+2), o.workers)
		if err != nil {
			return fmt.Errorf("start replica: %w", err)
		}
		reps = append(reps, r)
	}
	slow := reps[3]

	var results []result
	for _, mode := range strings.Split(o.modes, ",") {
		for _, r := range reps {
			r.service.Store(int64(o.service))
			r.hits.Store(0)
		}
		if mode != "healthy" {
			slow.service.Store(int64(float64(o.service) * o.slowdown))
		}
		rt, closeRT, err := transportFor(mode, reps)
		if err != nil {
			return err
		}
		res := drive(ctx, o, rt)
		closeRT()
		res.mode = mode
		var total int64
		for _, r := range reps {
			total += r.hits.Load()
		}
		if total > 0 {
			res.slowShare = float64(slow.hits.Load()) / float64(total)
		}
		results = append(results, res)
		fmt.Fprintf(os.Stderr, "%-12s done: %d sent, %d failed\n", mode, res.sent, res.failed)
	}
	report(out, o, results)
	return nil
}

// transportFor returns the client transport for one mode.
func transportFor(mode string, reps []*replica) (http.RoundTripper, func(), error) {
	switch mode {
	case "healthy", "round_robin", "peak_ewma":
		pol := balancer.Policy(balancer.RoundRobin{})
		if mode == "peak_ewma" {
			pol = balancer.PeakEWMA{}
		}
		addrs := make([]string, len(reps))
		for i, r := range reps {
			addrs[i] = r.addr
		}
		res, err := balancer.NewStatic(addrs...)
		if err != nil {
			return nil, nil, err
		}
		tr := client.NewTransport(client.Config{MaxIdleConnsPerHost: 256})
		lb, err := balancer.New(balancer.Config{Resolver: res, Policy: pol, Transport: tr,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, nil, err
		}
		return lb, func() { _ = lb.Close(); tr.CloseIdleConnections() }, nil
	case "random":
		// kube-proxy: a connection goes to a random backend and stays.
		tr := client.NewTransport(client.Config{MaxIdleConnsPerHost: 256})
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, reps[rand.IntN(len(reps))].addr)
		}
		return tr, tr.CloseIdleConnections, nil
	}
	return nil, nil, fmt.Errorf("unknown mode %q (want healthy, random, round_robin or peak_ewma)", mode)
}

// drive sends requests at a fixed rate whatever the responses do (open
// loop), timing each from its scheduled start so queueing is counted.
func drive(ctx context.Context, o options, rt http.RoundTripper) result {
	c := &http.Client{Transport: rt, Timeout: 10 * time.Second}
	n := int(o.rate * o.duration.Seconds())
	interval := time.Duration(float64(time.Second) / o.rate)
	lat := make([]time.Duration, n)
	failed := make([]bool, n)
	const maxOutstanding = 2000
	sem := make(chan struct{}, maxOutstanding)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		default:
			failed[i] = true // the client itself is saturated
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/work", nil)
			resp, err := c.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			lat[i] = time.Since(at)
			failed[i] = err != nil || resp.StatusCode != http.StatusOK
		})
	}
	wg.Wait()
	ok := make([]time.Duration, 0, n)
	res := result{sent: n}
	for i := range n {
		if failed[i] {
			res.failed++
			continue
		}
		ok = append(ok, lat[i])
	}
	slices.Sort(ok)
	q := func(p float64) time.Duration {
		if len(ok) == 0 {
			return 0
		}
		return ok[min(len(ok)-1, int(p*float64(len(ok))))]
	}
	res.p50, res.p99, res.p999 = q(0.50), q(0.99), q(0.999)
	if len(ok) > 0 {
		res.max = ok[len(ok)-1]
	}
	return res
}

func report(w io.Writer, o options, rs []result) {
	fmt.Fprintf(w, "4 replicas on loopback, %d workers each, service time %v ±50%%, replica 4 %gx slower (except healthy);\n",
		o.workers, o.service, o.slowdown)
	fmt.Fprintf(w, "open-loop %.0f req/s for %v per run.\n\n", o.rate, o.duration)
	fmt.Fprintln(w, "| run | requests | failed | p50 | p99 | p99.9 | max | slow replica share |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	var healthy time.Duration
	for _, r := range rs {
		if r.mode == "healthy" {
			healthy = r.p99
		}
		fmt.Fprintf(w, "| %s | %d | %d | %v | %v | %v | %v | %.1f%% |\n", r.mode, r.sent, r.failed,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
			r.p999.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond), 100*r.slowShare)
	}
	if healthy > 0 {
		fmt.Fprintln(w)
		for _, r := range rs {
			if r.mode != "healthy" {
				fmt.Fprintf(w, "%s p99 / healthy p99 = %.2f\n", r.mode, float64(r.p99)/float64(healthy))
			}
		}
	}
}
