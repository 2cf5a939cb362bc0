//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The traffic of the budget experiments: a client sending requests on a
// fixed timetable and logging which replica answered each one, through
// kube-proxy (a ClusterIP) or through the gallery, whose thumbnailer
// upstream is Shoal's balancer over a headless Service's DNS name.

// hit is one answered request: when its answer came and who served it.
type budgetHit struct {
	at time.Time
	by string
}

// hitLog is every answered request of one client, in arrival order.
type budgetHits struct {
	mu       sync.Mutex
	hits     []budgetHit
	failures []string // the first few errors, for the log
	errors   atomic.Int64
}

// fail counts a request that failed, keeping the first few errors.
func (h *budgetHits) fail(err error) {
	h.errors.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failures) < 5 {
		h.failures = append(h.failures, time.Now().UTC().Format("15:04:05.000")+" "+err.Error())
	}
}

// failed returns the errors fail kept.
func (h *budgetHits) failed() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.failures)
}

func (h *budgetHits) add(by string) {
	h.mu.Lock()
	h.hits = append(h.hits, budgetHit{at: time.Now(), by: by})
	h.mu.Unlock()
}

// first returns when by first answered at or after from.
func (h *budgetHits) first(by string, from time.Time) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.Search(len(h.hits), func(i int) bool { return !h.hits[i].at.Before(from) })
	for ; i < len(h.hits); i++ {
		if h.hits[i].by == by {
			return h.hits[i].at, true
		}
	}
	return time.Time{}, false
}

// last returns when by last answered, and when any replica last did.
func (h *budgetHits) last(by string) (mine, latest time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.hits); n > 0 {
		latest = h.hits[n-1].at
	}
	for i := len(h.hits) - 1; i >= 0; i-- {
		if h.hits[i].by == by {
			return h.hits[i].at, latest
		}
	}
	return time.Time{}, latest
}

// windows counts answers per replica in n windows of length w from start.
func (h *budgetHits) windows(start time.Time, w time.Duration, n int) []map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]map[string]int, n)
	for i := range out {
		out[i] = map[string]int{}
	}
	for _, x := range h.hits {
		if x.at.Before(start) {
			continue
		}
		if i := int(x.at.Sub(start) / w); i < n {
			out[i][x.by]++
		}
	}
	return out
}

// sender sends one request and returns the replica that answered.
type budgetSender func(ctx context.Context, i int64) (string, error)

// drive sends requests at rate per second until ctx ends, each in its own
// goroutine (at most 256 in flight; a request due beyond that is skipped
// and counted as an error), logging the answers.
func budgetDrive(ctx context.Context, wg *sync.WaitGroup, rate float64, send budgetSender) *budgetHits {
	log := &budgetHits{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var reqs sync.WaitGroup
		defer reqs.Wait()
		slots := make(chan struct{}, 256)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for i := int64(0); ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				log.fail(errors.New("skipped: 256 requests in flight"))
				continue
			}
			reqs.Add(1)
			go func(i int64) {
				defer reqs.Done()
				defer func() { <-slots }()
				by, err := send(ctx, i)
				switch {
				case err == nil:
					log.add(by)
				case ctx.Err() == nil:
					log.fail(err)
				}
			}(i)
		}
	}()
	return log
}

// post sends body to url and returns the named header of a 200 answer.
func budgetPost(ctx context.Context, c *http.Client, url string, body []byte, header string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "image/png")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	by := resp.Header.Get(header)
	if resp.StatusCode != http.StatusOK || by == "" {
		return "", fmt.Errorf("POST %s: status %d, %s %q", url, resp.StatusCode, header, by)
	}
	return by, nil
}

// budgetImages are n distinct small PNGs, so that a hash of the image
// (the gallery's balance key) takes n values.
func budgetImages(t *testing.T, n int) [][]byte {
	t.Helper()
	imgs := make([][]byte, n)
	for k := range imgs {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for y := 0; y < 16; y++ {
			for x := 0; x < 16; x++ {
				img.Set(x, y, color.RGBA{uint8(k), uint8(k >> 8), uint8(x*16 + y), 255})
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatalf("encode png: %v", err)
		}
		imgs[k] = buf.Bytes()
	}
	return imgs
}

// budgetDials records when each of a keep-alive client's connections
// was dialled: a connection dialled again (the server closed it at its
// MAX_CONN_AGE) is placed afresh by kube-proxy.
type budgetDials struct {
	mu sync.Mutex
	at [][]time.Time // per connection, in order
}

func newBudgetDials(conns int) *budgetDials {
	return &budgetDials{at: make([][]time.Time, conns)}
}

func (d *budgetDials) add(conn int, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at[conn] = append(d.at[conn], at)
}

// redialled returns how long after from the last of the connections was
// dialled again (each one's first dial after from), and false when one
// has not been.
func (d *budgetDials) redialled(from time.Time) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var last time.Duration
	for _, ts := range d.at {
		i := sort.Search(len(ts), func(i int) bool { return ts[i].After(from) })
		if i == len(ts) {
			return 0, false
		}
		last = max(last, ts[i].Sub(from))
	}
	return last, len(d.at) > 0
}

// thumbnailerSender posts images to a thumbnailer at base (a ClusterIP
// URL) over conns keep-alive connections, each its own transport so that
// each is placed by kube-proxy on its own, and records their dials; conns
// 0 opens a new connection per request (and records none).
func budgetThumbnailerSender(base string, conns int, imgs [][]byte) (budgetSender, *budgetDials, func()) {
	url := base + "/v1/thumbnails?width=8&height=8"
	if conns == 0 {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		return func(ctx context.Context, i int64) (string, error) {
			return budgetPost(ctx, c, url, imgs[i%int64(len(imgs))], "X-Served-By")
		}, nil, c.CloseIdleConnections
	}
	cs := make([]*http.Client, conns)
	for i := range cs {
		cs[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	}
	dials := newBudgetDials(conns)
	return func(ctx context.Context, i int64) (string, error) {
			k := int(i % int64(conns))
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
				if !info.Reused {
					dials.add(k, time.Now())
				}
			}})
			return budgetPost(ctx, cs[k], url, imgs[i%int64(len(imgs))], "X-Served-By")
		}, dials, func() {
			for _, c := range cs {
				c.CloseIdleConnections()
			}
		}
}

// buildGallery builds cmd/gallery from the repository.
func buildBudgetGallery(t *testing.T, l *lab) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gallery")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/gallery")
	cmd.Dir = l.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build gallery: %v\n%s", err, out)
	}
	return bin
}

// galleryProc is the gallery run on the host, on loopback, signed in.
type budgetGallery struct {
	cmd    *exec.Cmd
	done   chan error
	base   string
	client *http.Client
}

func budgetFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startGallery runs the gallery with its thumbnailer upstream on the
// headless name through the lab's CoreDNS, balanced by policy; sessions
// in its memory. It is stopped (SIGTERM, then waited for) when the test
// ends.
func startBudgetGallery(t *testing.T, bin, dnsName, policy string) *budgetGallery {
	t.Helper()
	port, admin := budgetFreePort(t), budgetFreePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HOST=127.0.0.1",
		fmt.Sprintf("PORT=%d", port), fmt.Sprintf("ADMIN_PORT=%d", admin),
		"POD_NAME=gallery-"+policy,
		"THUMBNAILER_DNS="+dnsName, "THUMBNAILER_DNS_SERVER=10.96.0.10:53",
		"BALANCE_POLICY="+policy,
		"COOKIE_SECURE=never",
		"MAX_CONN_AGE=-1s", "DRAIN_DELAY=0s", "SHUTDOWN_TIMEOUT=2s",
		"LOG_LEVEL=error", "REQUEST_LOG_SAMPLE=-1",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gallery: %v", err)
	}
	g := &budgetGallery{cmd: cmd, done: make(chan error, 1), base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	go func() { g.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-g.done
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	probe := &http.Client{Timeout: 2 * time.Second}
	err := poll(ctx, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		select {
		case err := <-g.done:
			g.done <- err
			return false, fmt.Errorf("gallery exited: %v: %s", err, stderr.String())
		default:
		}
		resp, err := probe.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("gallery %s not ready: %v", policy, err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	g.client = &http.Client{Timeout: 15 * time.Second, Jar: jar, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	resp, err := g.client.Post(g.base+"/v1/login", "application/json", strings.NewReader(`{"user":"budget"}`))
	if err != nil {
		t.Fatalf("gallery login: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gallery login: status %d", resp.StatusCode)
	}
	return g
}

// sender posts images through the gallery and returns the thumbnailer
// pod that made each thumbnail (X-Upstream-Served-By).
func (g *budgetGallery) budgetSender(imgs [][]byte) budgetSender {
	url := g.base + "/v1/thumbnails?width=8&height=8"
	return func(ctx context.Context, i int64) (string, error) {
		return budgetPost(ctx, g.client, url, imgs[i%int64(len(imgs))], "X-Upstream-Served-By")
	}
}
