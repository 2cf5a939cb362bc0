package balancer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

var clockBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time          { return clockBase.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// seqRand is a deterministic, lock-free random source.
func seqRand(seed uint64) func() uint64 {
	var n atomic.Uint64
	n.Store(seed)
	return func() uint64 { return mix64(n.Add(0x9e3779b97f4a7c15)) }
}

// backend is a real HTTP server on its own loopback address.
type backend struct {
	addr    string
	hits    atomic.Int64
	delay   atomic.Int64 // nanoseconds to wait before answering
	status  atomic.Int64 // 0 means 200
	active  atomic.Int64 // requests being served now
	gate    chan struct{}
	arrived chan string // if non-nil, gets addr on each arrival
	srv     *http.Server
	done    chan struct{}
}

// startBackends starts n servers on 127.0.0.(first), 127.0.0.(first+1), ...
// sharing one port when samePort is set (as pods behind DNS do).
func startBackends(t *testing.T, first, n int, samePort bool) []*backend {
	t.Helper()
	var out []*backend
	port := 0
	for i := range n {
		ip := fmt.Sprintf("127.0.0.%d", first+i)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			t.Fatalf("listen on %s: %v", ip, err)
		}
		if samePort && port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		b := &backend{addr: ln.Addr().String(), done: make(chan struct{})}
		b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			defer close(b.done)
			_ = b.srv.Serve(ln)
		}()
		out = append(out, b)
	}
	t.Cleanup(func() {
		for _, b := range out {
			if b.gate != nil {
				select {
				case <-b.gate:
				default:
					close(b.gate)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = b.srv.Shutdown(ctx)
			cancel()
			<-b.done
		}
	})
	return out
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	b.active.Add(1)
	defer b.active.Add(-1)
	if b.arrived != nil {
		b.arrived <- b.addr
	}
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-r.Context().Done():
		}
	}
	if d := b.delay.Load(); d > 0 {
		t := time.NewTimer(time.Duration(d))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Served-By", b.addr)
	if s := b.status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	_, _ = io.WriteString(w, b.addr)
}

func addrsOf(bs []*backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.addr
	}
	return out
}

// newTestBalancer starts a balancer and registers its Close and the
// transport's idle connections for cleanup.
func newTestBalancer(t *testing.T, cfg Config) (*Balancer, *http.Client) {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	cfg.Transport = tr
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		tr.CloseIdleConnections()
	})
	return b, &http.Client{Transport: b, Timeout: 30 * time.Second}
}

// get sends one request and returns the replica that served it.
func get(ctx context.Context, c *http.Client, key string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/work", nil)
	if err != nil {
		return "", 0, err
	}
	if key != "" {
		req.Header.Set(DefaultKeyHeader, key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	return resp.Header.Get("X-Served-By"), resp.StatusCode, checkBody(body, resp)
}

func checkBody(body []byte, resp *http.Response) error {
	if by := resp.Header.Get("X-Served-By"); by != "" && !strings.HasPrefix(string(body), by) {
		return fmt.Errorf("body %q from %s", body, by)
	}
	return nil
}

// load sends n requests from workers goroutines and counts them by replica.
func load(t *testing.T, c *http.Client, n, workers int) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		next   atomic.Int64
		wg     sync.WaitGroup
		errs   atomic.Int64
		first  atomic.Value
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				by, _, err := get(ctx, c, "")
				if err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				counts[by]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if e := errs.Load(); e > 0 {
		t.Fatalf("%d of %d requests failed, first: %v", e, n, first.Load())
	}
	return counts
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
