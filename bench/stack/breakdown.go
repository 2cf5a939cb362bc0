package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/server"
	"github.com/shoal-dev/shoal/shed"
)

// layer is one step of the stack, added on top of the previous ones.
type layer struct {
	name string
	cfg  server.Config
	wrap func(h http.Handler, reg *prometheus.Registry) (http.Handler, error)
}

// breakdown serves the trivial handler with the stack's layers added one
// at a time, so the cost of each shows as the drop from the row before.
func breakdown(log *slog.Logger, d time.Duration, conc, rounds int) error {
	hey, err := exec.LookPath("hey")
	if err != nil {
		return fmt.Errorf("hey not found (apt-get install hey): %w", err)
	}
	none := func(h http.Handler, _ *prometheus.Registry) (http.Handler, error) { return h, nil }
	layers := []layer{
		{"bare net/http", server.Config{ReadHeaderTimeout: -1, ReadTimeout: -1, WriteTimeout: -1, IdleTimeout: -1, MaxBodyBytes: -1}, none},
		{"+ server.New timeouts and body limit", server.Config{}, none},
		{"+ h2c", server.Config{H2C: true}, none},
		{"+ connection age and request limits", server.Config{H2C: true, MaxConnAge: 30 * time.Second, MaxConnRequests: 1000}, none},
		{"+ X-Served-By", server.Config{H2C: true, MaxConnAge: 30 * time.Second, MaxConnRequests: 1000},
			func(h http.Handler, _ *prometheus.Registry) (http.Handler, error) {
				return server.ServedBy("bench-0", h), nil
			}},
		{"+ shed", server.Config{H2C: true, MaxConnAge: 30 * time.Second, MaxConnRequests: 1000},
			func(h http.Handler, reg *prometheus.Registry) (http.Handler, error) {
				l, err := shed.New(shed.Config{}, reg)
				if err != nil {
					return nil, err
				}
				return server.ServedBy("bench-0", l.Middleware(h)), nil
			}},
		{"+ metrics (the service stack)", server.Config{H2C: true, MaxConnAge: 30 * time.Second, MaxConnRequests: 1000},
			func(h http.Handler, reg *prometheus.Registry) (http.Handler, error) {
				l, err := shed.New(shed.Config{}, reg)
				if err != nil {
					return nil, err
				}
				m, err := metrics.NewHTTP(reg)
				if err != nil {
					return nil, err
				}
				return server.ServedBy("bench-0", m.Middleware(l.Middleware(metrics.Route(h)))), nil
			}},
	}
	fmt.Printf("\n| trivial handler, layers added in turn | req/s | ratio to bare |\n|---|---|---|\n")
	rps := make([]float64, len(layers))
	for r := range rounds {
		for i := range layers {
			// Alternate the order between rounds so drift in the
			// machine's load does not favour one end of the table.
			if r%2 == 1 {
				i = len(layers) - 1 - i
			}
			l := layers[i]
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") })
			h, err := l.wrap(mux, prometheus.NewRegistry())
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			srv := server.New(l.cfg, h)
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(ln) }()
			log.Info("measuring", "layers", l.name, "round", r+1)
			v, err := heyRPS(hey, []string{"-z", d.String(), "-c", strconv.Itoa(conc), "http://" + ln.Addr().String() + "/v1/ping"})
			srv.Close()
			<-done
			if err != nil {
				return err
			}
			rps[i] += v / float64(rounds)
		}
	}
	for i, l := range layers {
		fmt.Printf("| %s | %.0f | %.2f |\n", l.name, rps[i], rps[i]/rps[0])
	}
	return nil
}
