// Command testpod is the container process of the cluster package's tests.
// It serves HTTP on $HOST:$PORT:
//
//	/        200 "hello from POD_NAME"
//	/readyz  200, or 503 after /set?ready=0
//	/set?ready=0|1
//
// Every response carries X-Served-By: $POD_NAME. On SIGTERM it keeps
// serving for DRAIN_DELAY (default 0), as the Shoal services do while the
// endpoints are updated, then stops accepting, finishes the requests in
// flight and exits. MARK=FILE appends "start PID" and "exit PID" lines to
// FILE.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	name := os.Getenv("POD_NAME")
	markFile := os.Getenv("MARK")
	pid := strconv.Itoa(os.Getpid())
	mark(markFile, "start "+pid)

	var ready atomic.Bool
	ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		if v := r.FormValue("ready"); v != "" {
			ready.Store(v == "1")
		}
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", name)
		mux.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-sigs
		if d, err := time.ParseDuration(os.Getenv("DRAIN_DELAY")); err == nil {
			time.Sleep(d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	<-drained // Serve returns at once; Shutdown returns when the requests in flight are done
	mark(markFile, "exit "+pid)
}

func mark(file, line string) {
	if file == "" {
		return
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(5)
	}
	fmt.Fprintln(f, line)
	f.Close()
}
