package main_test

// The adversary's tests on the built program: hostile load, hostile
// upstreams and SIGTERM, against the real process on loopback. Every load
// is bounded in count and time; every wait is on a condition.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serving starts the quickstart with env and waits until it is ready,
// returning it with its public and admin base URLs.
func serving(t *testing.T, bin string, env ...string) (*quickstart, string, string) {
	t.Helper()
	q := run(t, bin, append([]string{"HOST=127.0.0.1", "PORT=0", "ADMIN_PORT=0"}, env...)...)
	l := q.waitFor(t, "serving")
	app, admin := "http://"+l["addr"].(string), "http://"+l["admin_addr"].(string)
	until := time.Now().Add(60 * time.Second)
	for {
		if code, _, _ := get(t, admin+"/readyz"); code == http.StatusOK {
			return q, app, admin
		}
		if time.Now().After(until) {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exited waits for the process to end, within limit, and returns when it
// ended and its error.
func (q *quickstart) exited(t *testing.T, limit time.Duration) (time.Time, error) {
	t.Helper()
	select {
	case err := <-q.done:
		return time.Now(), err
	case <-time.After(limit):
		t.Fatalf("still running %v later", limit)
		return time.Time{}, nil
	}
}

// h2cClient speaks HTTP/2 without TLS over one connection.
func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 60 * time.Second}
}

// TestAttackSIGTERMWith100InFlight: 100 requests wait on a slow backend,
// half over HTTP/1.1 and half as streams of one h2c connection, when
// SIGTERM arrives; more arrive during the drain. The backend answers
// only after the drain delay, while the servers shut down. Every request
// is answered 200, and the process exits 0 well within DRAIN_DELAY +
// SHUTDOWN_TIMEOUT.
func TestAttackSIGTERMWith100InFlight(t *testing.T) {
	const (
		inflight   = 100
		drainDelay = 2 * time.Second
		shutdown   = 10 * time.Second
	)
	var arrived atomic.Int64
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-ID") != "" { // not the health check
			arrived.Add(1)
			<-release
		}
		io.WriteString(w, "pong")
	}))
	defer backend.Close()
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })

	// Shedding off: at a cold start its limit (20) would answer most of
	// the 100 with 503 before any SIGTERM.
	q, app, _ := serving(t, build(t), "DRAIN_DELAY="+drainDelay.String(), "SHUTDOWN_TIMEOUT="+shutdown.String(),
		"SHED_MAX_LIMIT=-1", "BACKEND="+strings.TrimPrefix(backend.URL, "http://"))

	h1 := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: inflight}
	defer h1.CloseIdleConnections()
	h2 := h2cClient()
	defer h2.CloseIdleConnections()
	clients := []*http.Client{{Transport: h1, Timeout: 60 * time.Second}, h2}

	type result struct {
		code int
		err  error
	}
	results := make(chan result, 2*inflight)
	call := func(c *http.Client, id string) {
		req, _ := http.NewRequest(http.MethodGet, app+"/hello", nil)
		req.Header.Set("X-Request-ID", id)
		resp, err := c.Do(req)
		if err != nil {
			results <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && string(b) != "pong" {
			err = fmt.Errorf("body %q", b)
		}
		results <- result{resp.StatusCode, err}
	}
	for i := range inflight {
		go call(clients[i%2], "inflight-"+strconv.Itoa(i))
	}
	waitUntil(t, 30*time.Second, func() bool { return arrived.Load() == inflight }, "not all requests reached the backend")

	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	q.waitFor(t, "draining")
	// Requests that arrive during the drain, on new connections, are
	// served too.
	const late = 20
	lateClient := &http.Client{Transport: &http.Transport{}, Timeout: 60 * time.Second}
	defer lateClient.CloseIdleConnections()
	for i := range late {
		go call(lateClient, "late-"+strconv.Itoa(i))
	}
	waitUntil(t, 30*time.Second, func() bool { return arrived.Load() == inflight+late }, "the requests sent during the drain did not reach the backend")
	// Answer once the drain is over and the shutdown has begun.
	q.waitFor(t, "shutting down servers")
	releaseOnce.Do(func() { close(release) })

	var failed []string
	for range inflight + late {
		r := <-results
		if r.err != nil || r.code != http.StatusOK {
			failed = append(failed, fmt.Sprintf("%d %v", r.code, r.err))
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d requests lost across SIGTERM: %v", len(failed), inflight+late, failed)
	}
	at, err := q.exited(t, drainDelay+shutdown+30*time.Second)
	took := at.Sub(sigterm)
	t.Logf("exited %v after SIGTERM (%v)", took, err)
	if err != nil {
		t.Errorf("exit: %v, want 0", err)
	}
	if took > drainDelay+shutdown {
		t.Errorf("exited %v after SIGTERM, want within DRAIN_DELAY + SHUTDOWN_TIMEOUT (%v)", took, drainDelay+shutdown)
	}
}

// TestAttackSIGTERMWithBackendThatNeverAnswers: requests in flight to a
// backend that never answers cannot hold the process past DRAIN_DELAY +
// SHUTDOWN_TIMEOUT.
func TestAttackSIGTERMWithBackendThatNeverAnswers(t *testing.T) {
	const (
		drainDelay = 500 * time.Millisecond
		shutdown   = 2 * time.Second
	)
	var arrived atomic.Int64
	never := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-ID") != "" {
			arrived.Add(1)
			select {
			case <-never:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "pong")
	}))
	defer backend.Close()
	defer close(never)
	q, app, _ := serving(t, build(t), "DRAIN_DELAY="+drainDelay.String(), "SHUTDOWN_TIMEOUT="+shutdown.String(),
		"BACKEND="+strings.TrimPrefix(backend.URL, "http://"))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	for range 10 {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, app+"/hello", nil)
			req.Header.Set("X-Request-ID", "stuck")
			if resp, err := c.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	waitUntil(t, 30*time.Second, func() bool { return arrived.Load() == 10 }, "the requests did not reach the backend")
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	at, err := q.exited(t, drainDelay+shutdown+30*time.Second)
	took := at.Sub(sigterm)
	t.Logf("exited %v after SIGTERM (%v)", took, err)
	if took > drainDelay+shutdown+time.Second {
		t.Errorf("exited %v after SIGTERM, want within DRAIN_DELAY + SHUTDOWN_TIMEOUT (%v) and a second", took, drainDelay+shutdown)
	}
}

// TestAttackHugeBackendBody: the backend answers /ping with 1 GiB. The
// quickstart streams it to its caller: every byte arrives, and the
// process's peak resident memory stays small.
func TestAttackHugeBackendBody(t *testing.T) {
	const size = 1 << 30
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-ID") == "" {
			io.WriteString(w, "pong") // the health check
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer backend.Close()
	q, app, _ := serving(t, build(t), "BACKEND="+strings.TrimPrefix(backend.URL, "http://"))
	before := peakRSS(t, q.cmd.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, app+"/hello", nil)
	req.Header.Set("X-Request-ID", "huge")
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, %d bytes, %v; want 200 and %d bytes", resp.StatusCode, n, err, size)
	}
	after := peakRSS(t, q.cmd.Process.Pid)
	t.Logf("1 GiB through in %v; peak RSS %d MiB before, %d MiB after", time.Since(began), before>>20, after>>20)
	if after > before+64<<20 {
		t.Errorf("peak RSS grew from %d MiB to %d MiB streaming 1 GiB", before>>20, after>>20)
	}
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestAttackRequestLogSampling floods the quickstart with
// REQUEST_LOG_SAMPLE=0.01: about 1% of the 200s get a line, and every
// 500 does, each under its own request ID.
func TestAttackRequestLogSampling(t *testing.T) {
	const (
		total   = 2000
		failure = 20 // every 20th request fails at the backend
	)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("X-Request-ID"), "fail-") {
			http.Error(w, "backend failure", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "pong")
	}))
	defer backend.Close()
	q, app, _ := serving(t, build(t), "REQUEST_LOG_SAMPLE=0.01", "BACKEND="+strings.TrimPrefix(backend.URL, "http://"))
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	work := make(chan int)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 8 {
		wg.Go(func() {
			for i := range work {
				id := "ok-" + strconv.Itoa(i)
				want := http.StatusOK
				if i%failure == 0 {
					id, want = "fail-"+strconv.Itoa(i), http.StatusInternalServerError
				}
				req, _ := http.NewRequest(http.MethodGet, app+"/hello", nil)
				req.Header.Set("X-Request-ID", id)
				resp, err := c.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					bad.Add(1)
				}
			}
		})
	}
	began := time.Now()
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d requests failed or got an unexpected status", n)
	}
	fails := total / failure
	// The lines are written before the answers; the reader may lag.
	var lines []map[string]any
	waitUntil(t, 30*time.Second, func() bool {
		lines = q.find("request")
		n := 0
		for _, l := range lines {
			if l["status"] == float64(500) {
				n++
			}
		}
		return n >= fails
	}, "not every 500 got a request line")
	var ok, failed int
	ids := map[string]bool{}
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		switch l["status"] {
		case float64(500):
			failed++
			if !strings.HasPrefix(id, "fail-") || ids[id] {
				t.Errorf("a 500 line with request_id %q", id)
			}
			ids[id] = true
		case float64(200):
			ok++
		}
	}
	t.Logf("%d requests in %v: %d lines for %d 200s, %d lines for %d 500s", total, time.Since(began), ok, total-fails, failed, fails)
	if failed != fails {
		t.Errorf("%d lines for %d 500s", failed, fails)
	}
	// Binomial(1900, 0.01): mean 19; outside [2, 60] with odds below 1e-7.
	if ok < 2 || ok > 60 {
		t.Errorf("%d lines for %d 200s sampled at 1%%", ok, total-fails)
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	until := time.Now().Add(d)
	for !cond() {
		if time.Now().After(until) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
