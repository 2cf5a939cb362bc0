// Command labecho is the lab's own test service: it answers every request
// with its replica name in X-Served-By, burns CPU on /burn for autoscaling
// checks (wall-clock time, or with cpu=1 the thread's own CPU time, which
// a busy node does not stretch), holds a request without CPU on /wait
// (with early=1 its headers go out at once, so the client knows when the
// request is counted in flight; a draining pod ends it, so that a client
// holding load moves it to the pods that stay), serves http_requests_total and http_requests_in_flight on /metrics (the
// series the lab's prometheus-adapter rules read; probes and scrapes are
// not counted), and drains before it stops so that rolling updates lose
// nothing.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		slog.Error("labecho failed", "err", err)
		os.Exit(1)
	}
}

// maxWait bounds /wait's ms: ten minutes, longer than any experiment
// holds one request.
const maxWait = 600000

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run() error {
	port := envOr("PORT", "8080")
	name := envOr("POD_NAME", "labecho:"+port)
	drain, err := time.ParseDuration(envOr("DRAIN_DELAY", "5s"))
	if err != nil {
		return fmt.Errorf("labecho: parse DRAIN_DELAY: %w", err)
	}
	version := envOr("VERSION", "1")
	var draining atomic.Bool
	// drained closes when draining starts: /wait's held requests end then.
	drained := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", name)
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	var total, inFlight atomic.Int64
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 1 || ms > 1000 {
			http.Error(w, "labecho: ms must be an integer in [1,1000]", http.StatusBadRequest)
			return
		}
		d := time.Duration(ms) * time.Millisecond
		var x uint64
		switch r.URL.Query().Get("cpu") {
		case "", "0":
			x = burnWall(d)
		case "1":
			if x, err = burnCPU(d); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		default:
			http.Error(w, "labecho: cpu must be 0 or 1", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d\n", name, x%10)
	})
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 1 || ms > maxWait {
			http.Error(w, fmt.Sprintf("labecho: ms must be an integer in [1,%d]", maxWait), http.StatusBadRequest)
			return
		}
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Query().Get("early") == "1" {
			w.WriteHeader(http.StatusOK)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-drained:
			fmt.Fprintln(w, "draining")
			return
		case <-r.Context().Done():
			return
		}
		fmt.Fprintln(w, name)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP http_requests_total Requests served, probes and scrapes excluded.\n# TYPE http_requests_total counter\nhttp_requests_total %d\n", total.Load())
		fmt.Fprintf(w, "# HELP http_requests_in_flight Requests being served, probes and scrapes excluded.\n# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight %d\n", inFlight.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("X-Version", version)
		fmt.Fprintln(w, name)
	})
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			mux.ServeHTTP(w, r)
			return
		}
		total.Add(1)
		inFlight.Add(1)
		defer inFlight.Add(-1)
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: ":" + port, Handler: counted, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("labecho: serving", "port", port, "name", name)
	select {
	case err := <-errc:
		return fmt.Errorf("labecho: serve: %w", err)
	case <-ctx.Done():
	}
	// Endpoints drop a terminating pod asynchronously: keep serving while
	// kube-proxy catches up, then close idle keep-alive connections.
	draining.Store(true)
	close(drained)
	slog.Info("labecho: draining", "delay", drain)
	time.Sleep(drain)
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("labecho: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("labecho: serve: %w", err)
	}
	return nil
}

// spin does a slice of arithmetic the compiler cannot drop.
func spin(x uint64) uint64 {
	for i := 0; i < 10000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// burnWall keeps a CPU busy until d of wall-clock time has passed.
func burnWall(d time.Duration) uint64 {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		x = spin(x)
	}
	return x
}

// burnCPU keeps a CPU busy until this thread has used d of CPU time, so a
// request costs the same CPU however busy the node is.
func burnCPU(d time.Duration) (uint64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, err := threadCPU()
	if err != nil {
		return 0, err
	}
	x := uint64(1)
	for {
		x = spin(x)
		now, err := threadCPU()
		if err != nil {
			return 0, err
		}
		if now-start >= d {
			return x, nil
		}
	}
}

// threadCPU is the CPU time (user and system) the calling thread has used.
func threadCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, fmt.Errorf("labecho: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
