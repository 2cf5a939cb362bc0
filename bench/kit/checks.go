package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// backendBody is what the downstream's /ping answers while it is up.
const backendBody = "pong\n"

// A backend is the downstream every target calls: GET /ping answers
// backendBody, or 503 while failing is set.
type backend struct {
	failing atomic.Bool
	srv     *http.Server
	addr    string     // host:port
	served  chan error // Serve's result
}

func startBackend() (*backend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{addr: l.Addr().String(), served: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		if b.failing.Load() {
			http.Error(w, "failing", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, backendBody)
	})
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { b.served <- b.srv.Serve(l) }()
	return b, nil
}

// close stops the backend and waits for its Serve to return.
func (b *backend) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	if serr := <-b.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// checkTimeout bounds each functional check; readiness may be computed by
// a periodic check, so a change of the downstream can take a while to show.
const checkTimeout = 15 * time.Second

// check runs the functional checks of t against the running p: GET /hello
// returns the downstream's body, readiness follows the downstream (2xx,
// then not 2xx while it fails, then 2xx again), and the metrics endpoint
// serves Prometheus text. A readiness answer that lists the dependency as
// degraded counts as reporting its failure. Each readiness change must show within timeout.
// It returns the failures, empty when all passed.
func check(ctx context.Context, t target, p *proc, b *backend, client *http.Client, timeout time.Duration) []string {
	var failed []string
	if t.hello {
		code, body, err := get(ctx, client, p.url("http://127.0.0.1:{PORT}/hello"))
		if err != nil || code != http.StatusOK || string(body) != backendBody {
			failed = append(failed, fmt.Sprintf("hello: %d %q %v", code, trim(body), err))
		}
	}
	if t.readyURL != "" {
		url := p.url(t.readyURL)
		if err := until(ctx, client, url, true, timeout); err != nil {
			failed = append(failed, "ready while the downstream is up: "+err.Error())
		}
		b.failing.Store(true)
		if err := until(ctx, client, url, false, timeout); err != nil {
			failed = append(failed, "not ready while the downstream fails: "+err.Error())
		}
		b.failing.Store(false)
		if err := until(ctx, client, url, true, timeout); err != nil {
			failed = append(failed, "ready again once the downstream is back: "+err.Error())
		}
	}
	if t.metricsURL != "" {
		code, body, err := get(ctx, client, p.url(t.metricsURL))
		if err != nil || code != http.StatusOK || !bytes.Contains(body, []byte("# TYPE ")) {
			failed = append(failed, fmt.Sprintf("metrics: %d %q %v", code, trim(body), err))
		}
	}
	return failed
}

// until polls url until its answer is 2xx (want true) or not (want false).
func until(ctx context.Context, client *http.Client, url string, want bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		code, body, err := get(ctx, client, url)
		// An answer cut short by the deadline says nothing about readiness.
		// Shoal reports a failing non-critical dependency as "degraded" and
		// stays ready (docs/dependencies.md: a dependency every replica
		// shares must not take them all out of the Service); the peers
		// answer non-2xx. Either says the dependency failed.
		ok := err == nil && code/100 == 2 && !bytes.Contains(body, []byte(`"degraded"`))
		if ctx.Err() == nil && ok == want {
			return nil
		}
		if ctx.Err() == nil || last == "" {
			last = fmt.Sprintf("%d %q %v", code, trim(body), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still answered %s after %v", url, last, timeout)
		case <-tick.C:
		}
	}
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
