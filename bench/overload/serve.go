package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"time"

	"github.com/go-kratos/aegis/ratelimit/bbr"
	"github.com/go-kratos/kratos/v2/middleware/ratelimit"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zeromicro/go-zero/core/load"
	"github.com/zeromicro/go-zero/core/logx"
	"github.com/zeromicro/go-zero/core/stat"
	"github.com/zeromicro/go-zero/rest/handler"

	"github.com/shoal-dev/shoal/shed"
)

// The variants: the same handler bare and behind each shedder.
const (
	variantNone   = "none"
	variantShoal  = "shoal"
	variantGoZero = "gozero"
	variantKratos = "kratos"
)

var allVariants = []string{variantNone, variantShoal, variantGoZero, variantKratos}

// The header marking a request critical: Shoal's shedder turns the others
// away first (shed.Config.Critical). The peers' shedders have no priority.
const (
	priorityHeader   = "X-Priority"
	priorityCritical = "critical"
)

// goZeroCPUThreshold is go-zero's rest.RestConf CpuThreshold default
// (900‰), which rest.MustNewServer passes to load.NewAdaptiveShedder.
const goZeroCPUThreshold = 900

// variantServer is one variant's HTTP handler and a snapshot of its
// shedder's state for /stats.
type variantServer struct {
	handler http.Handler
	stats   func() map[string]float64
}

// newVariant wraps h the way each framework wires its shedder by default.
func newVariant(name string, h http.Handler) (*variantServer, error) {
	// Both peers' CPU samplers run in every variant (the packages are
	// linked in); reading them shows what the peers saw.
	cpuProbe := bbr.NewLimiter()
	common := func(m map[string]float64) map[string]float64 {
		m["gozero_cpu_permille"] = float64(stat.CpuUsage())
		m["kratos_cpu_permille"] = float64(cpuProbe.Stat().CPU)
		m["process_cpu_seconds"] = processCPU().Seconds()
		m["gomaxprocs"] = float64(runtime.GOMAXPROCS(0))
		return m
	}
	switch name {
	case variantNone:
		return &variantServer{handler: h, stats: func() map[string]float64 { return common(map[string]float64{}) }}, nil
	case variantShoal:
		// As package service wires it: the defaults but MaxLimit, which
		// SHED_MAX_LIMIT sets (500 by default).
		// The requests the generator marks critical are shed last.
		critical := func(r *http.Request) bool { return r.Header.Get(priorityHeader) == priorityCritical }
		reg := prometheus.NewRegistry()
		l, err := shed.New(shed.Config{MaxLimit: shed.DefaultMaxLimit, Critical: critical}, reg)
		if err != nil {
			return nil, err
		}
		return &variantServer{handler: l.Middleware(h), stats: func() map[string]float64 {
			return common(map[string]float64{
				"shoal_limit": float64(l.Limit()), "shoal_in_flight": float64(l.InFlight()),
				"shoal_utilization_seconds": gathered(reg, "shed_utilization_seconds_total"),
			})
		}}, nil
	case variantGoZero:
		// As rest.engine does with the default RestConf: an adaptive
		// shedder at CpuThreshold 900 behind handler.SheddingHandler.
		shedder := load.NewAdaptiveShedder(load.WithCpuThreshold(goZeroCPUThreshold))
		mw := handler.SheddingHandler(shedder, stat.NewMetrics("overload"))
		return &variantServer{handler: mw(h), stats: func() map[string]float64 { return common(map[string]float64{}) }}, nil
	case variantKratos:
		// kratos' ratelimit.Server middleware with its default limiter,
		// bbr.NewLimiter() (CPU threshold 800‰, 10 s window); held here
		// only to report its state. Rejections are encoded as a kratos
		// HTTP server encodes middleware errors: 429 with a JSON body.
		limiter := bbr.NewLimiter()
		mw := ratelimit.Server(ratelimit.WithLimiter(limiter))
		wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next := mw(func(context.Context, any) (any, error) {
				h.ServeHTTP(w, r)
				return nil, nil
			})
			if _, err := next(r.Context(), r); err != nil {
				khttp.DefaultErrorEncoder(w, r, err)
			}
		})
		return &variantServer{handler: wrapped, stats: func() map[string]float64 {
			s := limiter.Stat()
			return common(map[string]float64{
				"kratos_in_flight": float64(s.InFlight), "kratos_max_in_flight": float64(s.MaxInFlight),
				"kratos_min_rt_ms": float64(s.MinRt), "kratos_max_pass": float64(s.MaxPass),
			})
		}}, nil
	}
	return nil, fmt.Errorf("overload: unknown variant %q (want one of %v)", name, allVariants)
}

// gathered is the value of the unlabelled counter name in reg, or 0 if
// reg has none.
func gathered(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quietPeers turns off go-zero's logs (a line per dropped request, stat
// lines every minute): the comparison is of shedding, not of logging.
func quietPeers() {
	logx.Disable()
	stat.DisableLog()
	load.DisableLog()
}

// variantMux serves the variant's /resize and, outside any shedder, /stats.
func variantMux(v *variantServer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(resizePath, v.handler)
	mux.HandleFunc(statsPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v.stats())
	})
	return mux
}

// newHTTPServer is the same net/http server for every variant.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
}

// serveUntil serves variant name on ln until ctx ends, then closes every
// connection and returns.
func serveUntil(ctx context.Context, name string, ln net.Listener) error {
	v, err := newVariant(name, newResizer())
	if err != nil {
		ln.Close()
		return err
	}
	srv := newHTTPServer(variantMux(v))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	srv.Close()
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
