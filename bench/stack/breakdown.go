package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/deadline"
	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/requestlog"
	"github.com/shoal-dev/shoal/server"
)

// layer is one step of the stack, added on top of the previous ones.
type layer struct {
	name string
	cfg  server.Config
	wrap func(mux *http.ServeMux, reg *prometheus.Registry) (http.Handler, error)
}

// breakdown serves the trivial handler with the stack's layers added one
// at a time, so the cost of each shows as the drop from the row before.
// Shedding is off throughout, as in run's full stack: under a closed-loop
// load its limit, not its cost, would decide the figures.
// The last row is package service itself (the lifecycle's drain wrapper,
// the admin server and the health checker beside the chain).
func breakdown(log *slog.Logger, d time.Duration, conc, rounds int, protos []string) error {
	hey, err := exec.LookPath("hey")
	if err != nil && slices.Contains(protos, protoHTTP1) {
		return fmt.Errorf("hey not found (apt-get install hey): %w", err)
	}
	ping := func(mux *http.ServeMux, d time.Duration) {
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") })
		if d != 0 {
			h = deadline.Middleware(d, h)
		}
		mux.Handle("GET /v1/ping", h)
	}
	plain := func(mux *http.ServeMux, _ *prometheus.Registry) (http.Handler, error) {
		ping(mux, 0)
		return mux, nil
	}
	// chain builds the service's order (package service's doc) down to
	// the layers asked for.
	chain := func(upTo int) func(mux *http.ServeMux, reg *prometheus.Registry) (http.Handler, error) {
		return func(mux *http.ServeMux, reg *prometheus.Registry) (http.Handler, error) {
			var routeTimeout time.Duration
			if upTo >= 6 {
				routeTimeout = 30 * time.Second // the service's default
			}
			ping(mux, routeTimeout)
			var h http.Handler = mux
			if upTo >= 3 {
				// Shedding is off, as in the full stack measured by run.
				h = metrics.RouteOf(mux, metrics.Route(h))
			}
			if upTo >= 5 {
				h = server.Recover(nil, nil, h)
			}
			if upTo >= 4 {
				h = requestlog.Middleware(requestlog.Config{Logger: slog.New(slog.DiscardHandler),
					Route: func(w http.ResponseWriter, _ *http.Request) string { return metrics.RouteFromWriter(w) }}, h)
			}
			if upTo >= 3 {
				m, err := metrics.NewHTTP(reg)
				if err != nil {
					return nil, err
				}
				h = m.Middleware(h)
			}
			if upTo >= 2 {
				h = requestlog.ID(h)
			}
			return server.ServedBy("bench-0", h), nil
		}
	}
	limited := server.Config{MaxConnAge: 30 * time.Second, MaxConnRequests: 1000}
	layers := []layer{
		{"bare net/http", server.Config{ReadHeaderTimeout: -1, ReadTimeout: -1, WriteTimeout: -1, IdleTimeout: -1, MaxBodyBytes: -1, MinBodyRate: -1}, plain},
		{"+ server.New timeouts, body limit and rate", server.Config{}, plain},
		{"+ connection age and request limits", limited, plain},
		{"+ X-Served-By", limited, chain(1)},
		{"+ request ID", limited, chain(2)},
		{"+ metrics and route labels", limited, chain(3)},
		{"+ request log (every request, logger off)", limited, chain(4)},
		{"+ panic recovery", limited, chain(5)},
		{"+ route deadline (the service's chain)", limited, chain(6)},
		{"package service (+ drain wrapper, admin server, health)", limited, nil},
	}
	for _, proto := range protos {
		fmt.Printf("\n| trivial handler over %s, layers added in turn | req/s | ratio to bare | server CPU µs/req | CPU ratio (bare/this) |\n|---|---|---|---|---|\n", proto)
		rps := make([]float64, len(layers))
		cpu := make([]time.Duration, len(layers))
		for r := range rounds {
			for i := range layers {
				// Alternate the order between rounds so drift in the
				// machine's load does not favour one end of the table.
				if r%2 == 1 {
					i = len(layers) - 1 - i
				}
				l := layers[i]
				url, stop, err := serveLayer(l, proto == protoH2C)
				if err != nil {
					return err
				}
				log.Info("measuring", "layers", l.name, "protocol", proto, "round", r+1)
				m, err := measureLoad(hey, loadSpec{proto: proto, url: url + "/v1/ping", method: "GET", d: d, conc: conc})
				stop()
				if err != nil {
					return err
				}
				rps[i] += m.rps / float64(rounds)
				cpu[i] += m.cpu / time.Duration(rounds)
			}
		}
		for i, l := range layers {
			fmt.Printf("| %s | %.0f | %.2f | %.1f | %.2f |\n", l.name, rps[i], rps[i]/rps[0], float64(cpu[i])/1e3, float64(cpu[0])/float64(cpu[i]))
		}
	}
	return nil
}

// serveLayer serves l on a free loopback port (with h2c when asked) and
// returns its URL and a stop func that waits for it.
func serveLayer(l layer, h2c bool) (string, func(), error) {
	if l.wrap == nil {
		return serve(workload{add: func(mux router) error {
			mux.Handle("GET /v1/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") }))
			return nil
		}}, true)
	}
	h, err := l.wrap(http.NewServeMux(), prometheus.NewRegistry())
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	cfg := l.cfg
	cfg.H2C = h2c
	srv := server.New(cfg, h)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		srv.Close()
		<-done
	}, nil
}
