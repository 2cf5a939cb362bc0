// Command testpod is the container process of the kubelet and cluster
// tests. It serves HTTP on $HOST:$PORT and does what its endpoints and
// environment ask:
//
//	/                    200 "hello from $POD_NAME"
//	/healthz, /readyz    200, or 503 after /set?live=0 or /set?ready=0
//	/set?live=0|1&ready=0|1
//	/crash?code=N        exits with code N
//	/env                 the environment, one NAME=VALUE per line
//	/args                the arguments, one per line
//	/burn?ms=N           spins until it has used N ms of CPU time
//
// Every response carries X-Served-By: $POD_NAME. On SIGTERM it keeps
// serving for DRAIN_DELAY (default 0), as the Shoal services do while the
// endpoints are updated, then stops accepting, finishes the requests in
// flight and exits.
//
// GRPC_PORT=N also serves gRPC on $HOST:N: grpc.health.v1.Health, whose
// Check answers SERVING for the service names "" and "testpod" while
// /readyz would answer 200 and NOT_SERVING otherwise, and NotFound for any
// other name. Every RPC's response header carries x-served-by: $POD_NAME.
// On SIGTERM the gRPC server stops gracefully beside the HTTP one.
//
// READY=0 starts with /readyz failing, until /set?ready=1.
// MARK=FILE appends "start PID", "sigterm PID" and "exit PID" lines to FILE.
// ON_SIGTERM=ignore ignores SIGTERM. READY_AFTER=DURATION makes /readyz
// fail until then.
// EXIT=N exits at once with code N. Subcommands: "cat FILE" prints a file,
// "grep FILE TEXT" succeeds if FILE holds TEXT, "mark FILE TEXT" appends a
// line, "exit N" exits with code N.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "cat":
			b, err := os.ReadFile(os.Args[2])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Stdout.Write(b)
			return
		case "grep":
			b, err := os.ReadFile(os.Args[2])
			if err != nil || !strings.Contains(string(b), os.Args[3]) {
				os.Exit(1)
			}
			return
		case "mark":
			mark(os.Args[2], strings.Join(os.Args[3:], " "))
			return
		case "exit":
			n, _ := strconv.Atoi(os.Args[2])
			os.Exit(n)
		}
	}
	if e := os.Getenv("EXIT"); e != "" {
		n, _ := strconv.Atoi(e)
		os.Exit(n)
	}
	markFile := os.Getenv("MARK")
	pid := strconv.Itoa(os.Getpid())
	mark(markFile, "start "+pid)

	var live, ready atomic.Bool
	live.Store(true)
	ready.Store(os.Getenv("READY") != "0")
	readyAt := time.Now()
	if d, err := time.ParseDuration(os.Getenv("READY_AFTER")); err == nil {
		readyAt = readyAt.Add(d)
	}
	isReady := func() bool { return ready.Load() && !time.Now().Before(readyAt) }
	name := os.Getenv("POD_NAME")
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !live.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !isReady() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		if v := r.FormValue("live"); v != "" {
			live.Store(v == "1")
		}
		if v := r.FormValue("ready"); v != "" {
			ready.Store(v == "1")
		}
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("code"))
		os.Exit(n)
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Join(os.Environ(), "\n"))
	})
	mux.HandleFunc("/args", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Join(os.Args, "\n"))
	})
	mux.HandleFunc("/burn", func(w http.ResponseWriter, r *http.Request) {
		// Spin until this process has used ms of CPU time, however busy
		// the machine is (at most 30s of wall time).
		ms, _ := strconv.Atoi(r.FormValue("ms"))
		want := cpuTime() + time.Duration(ms)*time.Millisecond
		deadline := time.Now().Add(30 * time.Second)
		n := 0
		for cpuTime() < want && time.Now().Before(deadline) {
			for range 100000 {
				n++
			}
		}
		fmt.Fprint(w, n)
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
	var gs *grpc.Server
	if gp := os.Getenv("GRPC_PORT"); gp != "" {
		gln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), gp))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		gs = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", name))
			return h(ctx, req)
		}))
		healthpb.RegisterHealthServer(gs, &healthServer{ready: isReady})
		go func() {
			if err := gs.Serve(gln); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(4)
			}
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	drained := make(chan struct{})
	go func() {
		for range sigs {
			mark(markFile, "sigterm "+pid)
			if os.Getenv("ON_SIGTERM") == "ignore" {
				continue
			}
			if d, err := time.ParseDuration(os.Getenv("DRAIN_DELAY")); err == nil {
				time.Sleep(d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if gs != nil {
				go func() { <-ctx.Done(); gs.Stop() }() // GracefulStop's deadline
				gs.GracefulStop()
			}
			_ = srv.Shutdown(ctx)
			cancel()
			close(drained)
			return
		}
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// healthServer answers Check from the same state as /readyz.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	ready func() bool
}

func (h *healthServer) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case "", "testpod":
	default:
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	if h.ready() {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
}
