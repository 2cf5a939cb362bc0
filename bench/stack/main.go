// Command stack measures what the toolkit's server stack costs: the same
// handler served behind the full stack (package service:
// X-Served-By, request ID, metrics, request log, panic recovery, route
// deadline, keep-alive rebalancing, health, lifecycle; load shedding off
// (SHED_MAX_LIMIT negative), so every request is served) and by bare net/http, loaded in turn by
// hey (Debian) in one run, and reports the throughput ratio. It also reports
// the idle resident memory of the two reference services beside a bare
// net/http server.
//
//	go run ./bench/stack -duration 10s -concurrency 16
//	go run ./bench/stack -breakdown    # the cost of each layer on a trivial handler
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
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/service"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "load duration of each measurement")
	conc := flag.Int("concurrency", 16, "concurrent connections of hey")
	rounds := flag.Int("rounds", 2, "measurements of each side, alternating")
	layers := flag.Bool("breakdown", false, "measure the trivial handler with the stack's layers added one at a time instead")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	do := run
	if *layers {
		do = breakdown
	}
	if err := do(log, *duration, *conc, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

type workload struct {
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

func run(log *slog.Logger, d time.Duration, conc, rounds int) error {
	hey, err := exec.LookPath("hey")
	if err != nil {
		return fmt.Errorf("hey not found (apt-get install hey): %w", err)
	}
	img := testJPEG(640, 480)
	works := []workload{
		{name: "trivial handler", route: "/v1/ping", method: "GET", add: func(mux router) error {
			mux.Handle("GET /v1/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") }))
			return nil
		}},
		{name: "thumbnailer 640x480 JPEG -> 128x128", route: "/v1/thumbnails?width=128&height=128", method: "POST", body: img, add: func(mux router) error {
			// The cache is off so every request resizes.
			api, err := thumbnailer.New(thumbnailer.Config{CacheBytes: -1, Logger: slog.New(slog.DiscardHandler)}, prometheus.NewRegistry())
			if err != nil {
				return err
			}
			api.Register(mux)
			return nil
		}},
	}
	bodyFile := filepath.Join(os.TempDir(), "shoal-bench-body.jpg")
	if err := os.WriteFile(bodyFile, img, 0o600); err != nil {
		return err
	}
	defer os.Remove(bodyFile)

	fmt.Printf("| workload | bare net/http req/s | full stack req/s | ratio (stack/bare) |\n|---|---|---|---|\n")
	for _, w := range works {
		var bare, stack []float64
		for r := range rounds {
			for _, full := range []bool{r%2 == 0, r%2 != 0} {
				url, stop, err := serve(w, full)
				if err != nil {
					return err
				}
				args := []string{"-z", d.String(), "-c", strconv.Itoa(conc), "-m", w.method}
				if w.body != nil {
					args = append(args, "-D", bodyFile, "-T", "image/jpeg")
				}
				log.Info("measuring", "workload", w.name, "full_stack", full, "round", r+1, "duration", d.String())
				rps, err := heyRPS(hey, append(args, url+w.route))
				stop()
				if err != nil {
					return err
				}
				if full {
					stack = append(stack, rps)
				} else {
					bare = append(bare, rps)
				}
			}
		}
		b, s := mean(bare), mean(stack)
		fmt.Printf("| %s | %.0f | %.0f | %.2f |\n", w.name, b, s, s/b)
	}
	return idleRSS(log)
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
		srv := &http.Server{Handler: mux}
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

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
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
