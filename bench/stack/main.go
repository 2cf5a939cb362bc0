// Command stack measures what the toolkit's server stack costs: the same
// handler served behind the full stack (package service:
// X-Served-By, request ID, metrics, request log, panic recovery, route
// deadline, keep-alive rebalancing, health, lifecycle; load shedding off
// (SHED_MAX_LIMIT negative), so every request is served) and by bare
// net/http, loaded in turn in one run, and reports the throughput ratio:
// over HTTP/1.1 by hey (Debian), over h2c (HTTP/2 with prior knowledge,
// which hey does not speak) by this program's own closed-loop client run
// as a child process, one stream in flight per connection. It also
// reports the idle resident memory of the two reference services beside
// a bare net/http server.
//
//	go run ./bench/stack -duration 10s -concurrency 16
//	go run ./bench/stack -protocols h2c -rss=false
//	go run ./bench/stack -rss-only -rss-starts 5   # idle memory only
//	go run ./bench/stack -breakdown    # the cost of each layer on a trivial handler
//	go run ./bench/stack -cpuprofile cpu.out -memprofile mem.out  # the full stack's profiles under load
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/service"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "load duration of each measurement")
	conc := flag.Int("concurrency", 16, "concurrent connections of the load")
	rounds := flag.Int("rounds", 2, "measurements of each side, alternating")
	layers := flag.Bool("breakdown", false, "measure the trivial handler with the stack's layers added one at a time instead")
	protocols := flag.String("protocols", protoHTTP1+","+protoH2C, "comma-separated protocols to load with: http1 (hey), h2c")
	works := flag.String("workloads", "trivial,trivial-ct,thumbnailer", "comma-separated workloads: trivial, trivial-ct (the same with a Content-Type), thumbnailer")
	rss := flag.Bool("rss", true, "also measure the idle RSS of the reference services")
	rssOnly := flag.Bool("rss-only", false, "measure only the idle RSS of the reference services and their peers")
	rssStarts := flag.Int("rss-starts", 5, "starts of each program in the idle RSS measurement; the median is reported")
	rssStatic := flag.Bool("rss-static", false, "build the programs of the idle RSS measurement as the Dockerfile does (CGO_ENABLED=0, -trimpath, -ldflags=-s -w)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the full stack serving the first workload (first round, first protocol) to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the full stack serving the first workload (first round, first protocol) to this file")
	// The child process of an h2c measurement.
	client := flag.Bool("load-client", false, "run as the h2c load client (internal)")
	method := flag.String("method", "GET", "the load client's request method (internal)")
	body := flag.String("body", "", "the load client's request body file (internal)")
	flag.Parse()
	if *memProfile != "" {
		runtime.MemProfileRate = 4096
	}
	if *client {
		if err := h2cLoad(flag.Arg(0), *method, *body, *duration, *conc); err != nil {
			fmt.Fprintln(os.Stderr, "stack: load client:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	protos, err := parseProtocols(*protocols)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(2)
	}
	switch {
	case *rssOnly:
		err = idleRSS(log, *rssStarts, *rssStatic)
	case *layers:
		err = breakdown(log, *duration, *conc, *rounds, protos)
	default:
		err = run(log, options{d: *duration, conc: *conc, rounds: *rounds, protos: protos, workloads: strings.Split(*works, ","),
			rss: *rss, rssStarts: *rssStarts, rssStatic: *rssStatic, cpuProfile: *cpuProfile, memProfile: *memProfile})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

func parseProtocols(s string) ([]string, error) {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		switch p = strings.TrimSpace(p); p {
		case protoHTTP1, protoH2C:
			out = append(out, p)
		default:
			return nil, fmt.Errorf("-protocols: %q is neither %s nor %s", p, protoHTTP1, protoH2C)
		}
	}
	return out, nil
}

type options struct {
	d                      time.Duration
	conc, rounds           int
	protos, workloads      []string
	rss                    bool
	rssStarts              int
	rssStatic              bool
	cpuProfile, memProfile string
}

type workload struct {
	key    string // as -workloads names it
	name   string
	route  string
	method string
	body   []byte
	add    func(mux router) error
}

// router is what a workload registers its routes on: a bare
// *http.ServeMux or a *service.Service.
type router interface {
	Handle(pattern string, h http.Handler)
}

func run(log *slog.Logger, o options) error {
	hey, err := exec.LookPath("hey")
	if err != nil && slices.Contains(o.protos, protoHTTP1) {
		return fmt.Errorf("hey not found (apt-get install hey): %w", err)
	}
	img := testJPEG(640, 480)
	all := []workload{
		{key: "trivial", name: "trivial handler", route: "/v1/ping", method: "GET", add: func(mux router) error {
			mux.Handle("GET /v1/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") }))
			return nil
		}},
		// The same with a Content-Type, as a real handler sets one. Over
		// HTTP/2 net/http writes a response whose handler set any header
		// in two steps (it waits for the HEADERS frame before the DATA
		// frame: two writes to the socket, where a response without
		// headers takes one), so there the bare "trivial" handler is the
		// only one that escapes that cost, and the stack, which sets
		// X-Served-By and X-Request-ID, cannot.
		{key: "trivial-ct", name: "trivial handler with a Content-Type", route: "/v1/ping", method: "GET", add: func(mux router) error {
			mux.Handle("GET /v1/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
				io.WriteString(w, "pong\n")
			}))
			return nil
		}},
		{key: "thumbnailer", name: "thumbnailer 640x480 JPEG -> 128x128", route: "/v1/thumbnails?width=128&height=128", method: "POST", body: img, add: func(mux router) error {
			// The cache is off so every request resizes.
			api, err := thumbnailer.New(thumbnailer.Config{CacheBytes: -1, Logger: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry())
			if err != nil {
				return err
			}
			api.Register(mux)
			return nil
		}},
	}
	var works []workload
	for _, k := range o.workloads {
		i := slices.IndexFunc(all, func(w workload) bool { return w.key == strings.TrimSpace(k) })
		if i < 0 {
			return fmt.Errorf("-workloads: unknown workload %q (trivial, trivial-ct, thumbnailer)", k)
		}
		works = append(works, all[i])
	}
	bodyFile := filepath.Join(os.TempDir(), "shoal-bench-body.jpg")
	if err := os.WriteFile(bodyFile, img, 0o600); err != nil {
		return err
	}
	defer os.Remove(bodyFile)

	fmt.Printf("| workload | protocol | bare net/http req/s | full stack req/s | ratio of means (stack/bare) | median of round ratios | bare CPU µs/req | stack CPU µs/req | CPU ratio (bare/stack) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range works {
		for _, proto := range o.protos {
			var bare, stack summary
			for r := range o.rounds {
				for _, full := range []bool{r%2 == 0, r%2 != 0} {
					url, stop, err := serve(w, full)
					if err != nil {
						return err
					}
					spec := loadSpec{proto: proto, url: url + w.route, method: w.method, d: o.d, conc: o.conc}
					if w.body != nil {
						spec.bodyFile = bodyFile
					}
					log.Info("measuring", "workload", w.name, "protocol", proto, "full_stack", full, "round", r+1, "duration", o.d.String())
					profile := full && r == 0 && w.key == o.workloads[0] && proto == o.protos[0]
					var stopProfile func() error
					if profile {
						if stopProfile, err = startProfiles(o.cpuProfile, o.memProfile); err != nil {
							stop()
							return err
						}
					}
					m, err := measureLoad(hey, spec)
					if stopProfile != nil {
						if perr := stopProfile(); perr != nil && err == nil {
							err = perr
						}
					}
					stop()
					if err != nil {
						return err
					}
					if full {
						stack = append(stack, m)
					} else {
						bare = append(bare, m)
					}
				}
			}
			b, s := bare.meanRPS(), stack.meanRPS()
			bc, sc := bare.meanCPU(), stack.meanCPU()
			fmt.Printf("| %s | %s | %.0f | %.0f | %.2f | %.2f | %.1f | %.1f | %.2f |\n", w.name, proto, b, s, s/b, medianRatio(stack, bare),
				float64(bc)/1e3, float64(sc)/1e3, float64(bc)/float64(sc))
		}
	}
	if !o.rss {
		return nil
	}
	return idleRSS(log, o.rssStarts, o.rssStatic)
}

// startProfiles starts a CPU profile into cpu and counts allocations from
// now for mem ("" skips either); the returned func writes them.
func startProfiles(cpu, mem string) (func() error, error) {
	var cf *os.File
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cf = f
	}
	return func() error {
		if cf != nil {
			pprof.StopCPUProfile()
			if err := cf.Close(); err != nil {
				return err
			}
		}
		if mem == "" {
			return nil
		}
		f, err := os.Create(mem)
		if err != nil {
			return err
		}
		runtime.GC()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}, nil
}

// serve starts w behind the full stack or bare net/http on a free loopback
// port and returns its URL and a stop func that waits for it.
func serve(w workload, full bool) (string, func(), error) {
	if !full {
		mux := http.NewServeMux()
		if err := w.add(mux); err != nil {
			return "", nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		// Bare net/http with h2c allowed, as the stack allows it.
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		srv := &http.Server{Handler: mux, Protocols: &protos}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		return "http://" + ln.Addr().String(), func() { srv.Close(); <-done }, nil
	}
	o := service.Options{Name: "bench", Host: "127.0.0.1", PodName: "bench-0", DrainDelay: -1,
		ShutdownTimeout: 5 * time.Second, MaxConnAge: 30 * time.Second, MaxConnRequests: 1000, H2C: true,
		ShedMaxLimit: -1, Logger: slog.New(slog.DiscardHandler)}
	svc, err := service.New(o)
	if err != nil {
		return "", nil, err
	}
	if err := w.add(svc); err != nil {
		svc.Close()
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	if err := waitReady(service.URL(svc.AdminAddr()) + "/readyz"); err != nil {
		cancel()
		<-done
		return "", nil, err
	}
	return service.URL(svc.Addr()), func() { cancel(); <-done }, nil
}

func waitReady(url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("service did not turn ready: " + url)
}

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var statusRE = regexp.MustCompile(`\[(\d{3})\]\s+(\d+) responses`)

func heyRPS(hey string, args []string) (float64, error) {
	out, err := exec.Command(hey, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("hey %s: %w: %s", strings.Join(args, " "), err, out)
	}
	for _, m := range statusRE.FindAllSubmatch(out, -1) {
		if string(m[1]) != "200" {
			return 0, fmt.Errorf("hey saw %s responses with status %s", m[2], m[1])
		}
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no Requests/sec in hey output: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func testJPEG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	return buf.Bytes()
}
