package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testkit/blackhole"
)

// TestKill9OfAThumbnailerLosesNoRequest kills one of three thumbnailers
// with SIGKILL while users make thumbnails through a gallery that balances
// over all three with consistent hashing (the default). The killed
// address stays in the gallery's static list: its refused connections
// must eject it at once, and every attempt that met it must be retried on
// the key's next replica. No user request may fail.
func TestKill9OfAThumbnailerLosesNoRequest(t *testing.T) {
	const (
		workers = 8
		count   = 1200
		killAt  = 300 // successful requests before the kill
	)
	ths := []*proc{startThumbnailer(t), startThumbnailer(t), startThumbnailer(t)}
	g := startGallery(t, "THUMBNAILER_ADDRS="+addrsOf(ths...))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	u := newUser(ctx, t, g)
	imgs := pngs(t, 64)

	victim := ths[0]
	var (
		ok         atomic.Int64
		killNow    = make(chan struct{})
		killed     atomic.Bool
		byReplica  sync.Map // served-by -> *atomic.Int64, after the kill
		victimName = "thumbnailer@" + victim.Host
	)
	var once sync.Once
	done := make(chan loadResult, 1)
	go func() {
		done <- hammer(ctx, workers, count, func(ctx context.Context, i int) error {
			by, err := u.thumbnail(ctx, imgs[i%len(imgs)])
			if err != nil {
				return err
			}
			if killed.Load() {
				n, _ := byReplica.LoadOrStore(by, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
			if ok.Add(1) == killAt {
				once.Do(func() { close(killNow) })
			}
			return nil
		})
	}()
	var res loadResult
	select {
	case <-killNow:
	case res = <-done:
		t.Fatalf("load ended before the kill: %v", res)
	}
	victim.Kill()
	killed.Store(true)
	killedAt := ok.Load()
	res = <-done
	t.Logf("load: %v (kill after %d)", res, killedAt)
	if res.Failed != 0 || res.OK != count {
		t.Fatalf("lost requests: %v", res)
	}
	after := map[string]int64{}
	byReplica.Range(func(k, v any) bool { after[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("served after the kill: %v", after)
	if after[victimName] > int64(workers) {
		t.Errorf("the killed replica served %d requests after the kill", after[victimName])
	}
	m := scrape(ctx, t, g)
	if n := m.value("shoal_balancer_ejections_total", victim.Addr); n < 1 {
		t.Errorf("the killed replica was never ejected (ejections %v)", n)
	}
	refused := m.value("shoal_balancer_errors_total", victim.Addr)
	t.Logf("attempts the killed replica failed: %v; ejections %v", refused, m.value("shoal_balancer_ejections_total", victim.Addr))
}

// TestBlackHoledThumbnailerIsEjected puts a listener that accepts
// connections and never answers among two thumbnailers. The gallery's
// per-try timeouts must eject it within three of them; after that no user
// request waits on it. No user request may fail.
func TestBlackHoledThumbnailerIsEjected(t *testing.T) {
	const (
		// THUMBNAILER_TIMEOUT; each try gets half. A try that meets the
		// black hole spends half, so the retry needs the other half to
		// hold on a loaded machine.
		timeout = 4 * time.Second
		perTry  = timeout / 2
	)
	hole := blackhole.Listen(t, net.JoinHostPort(allocHost(t), publicPort))
	ths := []*proc{startThumbnailer(t), startThumbnailer(t)}
	g := startGallery(t, "THUMBNAILER_ADDRS="+addrsOf(ths...)+","+hole, "THUMBNAILER_TIMEOUT="+timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	u := newUser(ctx, t, g)
	imgs := pngs(t, 64)

	// One request at a time until the gallery ejects the black hole, so
	// each of its timeouts is seen before the next request.
	start := time.Now()
	var ejectedAfter time.Duration
	var sent, slow int
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatalf("not ejected after %d requests; gallery metrics:\n%s", i, scrape(ctx, t, g).grep(hole))
		}
		t0 := time.Now()
		if _, err := u.thumbnail(ctx, imgs[i%len(imgs)]); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		sent++
		if time.Since(t0) >= perTry {
			slow++
		}
		if scrape(ctx, t, g).value("shoal_balancer_ejections_total", hole) >= 1 {
			ejectedAfter = time.Since(start)
			break
		}
	}
	m := scrape(ctx, t, g)
	tries := m.value("shoal_balancer_requests_total", hole)
	t.Logf("ejected %s after the first request: %d requests, %d waited a per-try timeout (%s), %v attempts reached the black hole",
		ejectedAfter.Round(time.Millisecond), sent, slow, perTry, tries)
	if tries > 3 {
		t.Errorf("%v attempts reached the black hole before its ejection, want at most 3", tries)
	}
	if !strings.Contains(g.Logs(), "endpoint ejected") {
		t.Errorf("no ejection in the gallery's logs")
	}

	// Ejected (for 30s), the black hole holds up no request.
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	phase := time.Now()
	res := hammer(ctx, 4, 300, func(ctx context.Context, i int) error {
		t0 := time.Now()
		_, err := u.thumbnail(ctx, imgs[i%len(imgs)])
		mu.Lock()
		lats = append(lats, time.Since(t0))
		mu.Unlock()
		return err
	})
	if time.Since(phase) > 25*time.Second {
		t.Fatalf("the load after the ejection took %s, past what the ejection covers", time.Since(phase))
	}
	var worst time.Duration
	for _, l := range lats {
		worst = max(worst, l)
	}
	t.Logf("after the ejection: %v; slowest request %s", res, worst.Round(time.Millisecond))
	if res.Failed != 0 {
		t.Errorf("lost requests: %v", res)
	}
	if worst >= perTry {
		t.Errorf("a request after the ejection took %s: it waited on the black hole", worst)
	}
	if after := scrape(ctx, t, g).value("shoal_balancer_requests_total", hole); after != tries {
		t.Errorf("the ejected black hole got %v more attempts", after-tries)
	}
}

// user is a signed-in gallery user.
type user struct {
	g *proc
	c *http.Client
}

func newUser(ctx context.Context, t *testing.T, g *proc) *user {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	u := &user{g: g, c: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL("/v1/login"), strings.NewReader(`{"user":"chaos"}`))
	resp, err := u.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	return u
}

// thumbnail asks the gallery for a thumbnail of img and returns the
// thumbnailer that made it.
func (u *user) thumbnail(ctx context.Context, img []byte) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.g.URL("/v1/thumbnails?width=16&height=16"), bytes.NewReader(img))
	req.Header.Set("Content-Type", "image/png")
	resp, err := u.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("http_%d", resp.StatusCode)
	}
	return resp.Header.Get("X-Upstream-Served-By"), nil
}

// pngs returns n different small images, so their digests spread over
// the ring.
func pngs(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		img.Set(i%32, i/32, color.RGBA{R: uint8(i), G: 100, A: 255})
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		out[i] = b.Bytes()
	}
	return out
}

// metrics is one scrape of a process's /metrics.
type metrics string

func scrape(ctx context.Context, t *testing.T, p *proc) metrics {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.AdminURL("/metrics"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	return metrics(b)
}

// value sums the samples of name whose labels mention endpoint.
func (m metrics) value(name, endpoint string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(string(m)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, `endpoint="`+endpoint+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// sample is the value of name's series with every one of labels, given
// as key="value"; false if there is none.
func (m metrics) sample(name string, labels ...string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(string(m)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		return v, err == nil
	}
	return 0, false
}

// gauge is the value of name's series without labels; false if there is
// none.
func (m metrics) gauge(name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(string(m)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// grep returns the lines that mention s.
func (m metrics) grep(s string) string {
	var out []string
	for line := range strings.Lines(string(m)) {
		if strings.Contains(line, s) {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
