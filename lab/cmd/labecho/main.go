// Command labecho is the lab's own test service: it answers every request
// with its replica name in X-Served-By, burns CPU on /burn for autoscaling
// checks, and drains before it stops so that rolling updates lose nothing.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
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
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", name)
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 1 || ms > 1000 {
			http.Error(w, "labecho: ms must be an integer in [1,1000]", http.StatusBadRequest)
			return
		}
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		x := uint64(1)
		for time.Now().Before(end) {
			for i := 0; i < 10000; i++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		fmt.Fprintf(w, "%s %d\n", name, x%10)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", name)
		w.Header().Set("X-Version", version)
		fmt.Fprintln(w, name)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
