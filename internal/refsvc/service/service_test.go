package service

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/internal/testkit/redistest"
	"github.com/shoal-dev/shoal/metricstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// running is a service started by a test and stopped when it ends.
type running struct {
	svc  *Service
	url  string // public base URL
	adm  string // admin base URL
	done chan error
}

func start(t *testing.T, name string, add func(*Service) error) *running {
	t.Helper()
	o := Options{Name: name, Host: "127.0.0.1", PodName: name, DrainDelay: -1, ShutdownTimeout: 5 * time.Second}
	svc, err := New(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := add(svc); err != nil {
		svc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: svc, url: URL(svc.Addr()), adm: URL(svc.AdminAddr()), done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s stopped with %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	})
	healthtest.Wait(t, r.adm+"/readyz", http.StatusOK)
	return r
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 3), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type reply struct {
	code int
	hdr  http.Header
	body []byte
}

func do(t *testing.T, c *http.Client, method, url string, body []byte) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func startSystem(t *testing.T, redisURL string) (thumb, gal *running) {
	t.Helper()
	thumb = start(t, "thumbnailer-0", func(s *Service) error { return AddThumbnailer(s, thumbnailer.Config{}) })
	gal = start(t, "gallery-0", func(s *Service) error {
		return AddGallery(context.Background(), s, GalleryOptions{
			RedisURL: redisURL, SessionSecret: strings.Repeat("s", 32), SessionTTL: time.Minute,
			ThumbnailerAddrs: strings.TrimPrefix(thumb.url, "http://"), Policy: "consistent_hash", Timeout: 10 * time.Second,
		})
	})
	return thumb, gal
}

func TestReferenceSystemWithRedis(t *testing.T) {
	redis := redistest.Start(t)
	thumb, gal := startSystem(t, "redis://"+redis.Addr()+"/0")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	img := testPNG(t, 120, 60)

	if r := do(t, c, "POST", gal.url+"/v1/thumbnails?width=40&height=40", img); r.code != http.StatusUnauthorized {
		t.Fatalf("thumbnail without a session: %d %s, want 401", r.code, r.body)
	}
	if r := do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"ann"}`)); r.code != http.StatusOK {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	for range 2 {
		r := do(t, c, "POST", gal.url+"/v1/thumbnails?width=40&height=40&fit=cover", img)
		if r.code != http.StatusOK {
			t.Fatalf("thumbnail: %d %s", r.code, r.body)
		}
		got, err := png.Decode(bytes.NewReader(r.body))
		if err != nil || got.Bounds().Dx() != 40 || got.Bounds().Dy() != 40 {
			t.Fatalf("thumbnail result: %v, %v", err, got)
		}
		if r.hdr.Get("X-Served-By") != "gallery-0" || r.hdr.Get("X-Upstream-Served-By") != "thumbnailer-0" {
			t.Errorf("served by %q via %q", r.hdr.Get("X-Served-By"), r.hdr.Get("X-Upstream-Served-By"))
		}
	}
	r := do(t, c, "GET", gal.url+"/v1/history", nil)
	var hist struct {
		User    string                 `json:"user"`
		History []gallery.HistoryEntry `json:"history"`
	}
	if err := json.Unmarshal(r.body, &hist); err != nil || r.code != 200 {
		t.Fatalf("history: %d %s %v", r.code, r.body, err)
	}
	if hist.User != "ann" || len(hist.History) != 2 || hist.History[0].ServedBy != "thumbnailer-0" || hist.History[0].Width != 40 {
		t.Fatalf("history = %+v", hist)
	}

	// A session lives in Redis, not in the gallery process: a second
	// gallery replica with the same secret serves the same user.
	gal2 := start(t, "gallery-1", func(s *Service) error {
		return AddGallery(context.Background(), s, GalleryOptions{
			RedisURL: "redis://" + redis.Addr() + "/0", SessionSecret: strings.Repeat("s", 32), SessionTTL: time.Minute,
			ThumbnailerURL: thumb.url, Timeout: 10 * time.Second,
		})
	})
	c2 := &http.Client{Jar: jar}
	for _, cookie := range jar.Cookies(mustURL(t, gal.url)) {
		jar.SetCookies(mustURL(t, gal2.url), []*http.Cookie{cookie})
	}
	if r := do(t, c2, "GET", gal2.url+"/v1/history", nil); r.code != 200 || !bytes.Contains(r.body, []byte(`"user":"ann"`)) {
		t.Fatalf("history on a second replica: %d %s", r.code, r.body)
	}

	// Redis down: session routes answer 503 with a clear message; the
	// replica stays ready (every replica shares Redis, see
	// docs/dependencies.md) and names the dependency as degraded; all
	// recovers when Redis returns.
	redis.Stop()
	r = do(t, c, "GET", gal.url+"/v1/history", nil)
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("history with Redis down: %d %s", r.code, r.body)
	}
	waitDegraded(t, gal.adm+"/readyz", true)
	redis.Restart()
	waitDegraded(t, gal.adm+"/readyz", false)
	// Redis restarted empty (no persistence), so the old session is gone:
	// the gallery answers 401, and a new sign-in works.
	if r := do(t, c, "GET", gal.url+"/v1/history", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("history after Redis lost its data: %d %s, want 401", r.code, r.body)
	}
	if r := do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"ann"}`)); r.code != http.StatusOK {
		t.Fatalf("login after Redis returned: %d %s", r.code, r.body)
	}
}

// waitDegraded polls readiness until the sessions check is, or is not,
// named degraded; readiness must answer 200 throughout.
func waitDegraded(t *testing.T, url string, degraded bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		code, rep := healthtest.Get(t, url)
		if code != http.StatusOK {
			t.Fatalf("readyz %d %+v with REDIS_CRITICAL off, want 200", code, rep)
		}
		if slices.Contains(rep.Degraded, "sessions") == degraded {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("readyz degraded %v, want sessions degraded: %v", rep.Degraded, degraded)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRedisCriticalFailsReadiness: with RedisCritical, an unreachable
// Redis takes the replica out of readiness, and its return brings it back.
func TestRedisCriticalFailsReadiness(t *testing.T) {
	redis := redistest.Start(t)
	gal := start(t, "gallery-critical", func(s *Service) error {
		return AddGallery(context.Background(), s, GalleryOptions{
			RedisURL: "redis://" + redis.Addr() + "/0", RedisCritical: true, SessionSecret: strings.Repeat("s", 32),
			ThumbnailerURL: "http://127.0.0.1:1",
		})
	})
	redis.Stop()
	if rep := healthtest.Wait(t, gal.adm+"/readyz", http.StatusServiceUnavailable); !slices.Equal(rep.Failing, []string{"sessions"}) {
		t.Errorf("readyz failing %v, want [sessions]", rep.Failing)
	}
	redis.Restart()
	healthtest.Wait(t, gal.adm+"/readyz", http.StatusOK)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMetricsPassPromtool(t *testing.T) {
	thumb, gal := startSystem(t, "")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"bo"}`))
	do(t, c, "POST", gal.url+"/v1/thumbnails?width=10&height=10", testPNG(t, 30, 30))
	do(t, c, "GET", gal.url+"/nope", nil)
	for _, s := range []*running{thumb, gal} {
		exp := metricstest.Scrape(t, s.adm+"/metrics")
		metricstest.Promtool(t, exp)
		fams := strings.Join(metricstest.Families(exp), " ")
		for _, want := range []string{"http_requests_total", "http_request_duration_seconds", "http_requests_in_flight", "go_goroutines", "go_info"} {
			if !strings.Contains(fams, want) {
				t.Errorf("%s /metrics lacks %s", s.svc.Name(), want)
			}
		}
	}
	if !bytes.Contains(metricstest.Scrape(t, thumb.adm+"/metrics"), []byte(`route="/v1/thumbnails"`)) {
		t.Error("thumbnailer metrics are not labelled by route pattern")
	}
}

func TestMalformedRequestsNeverCrash(t *testing.T) {
	thumb, gal := startSystem(t, "")
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	tests := []struct {
		name     string
		method   string
		url      string
		body     []byte
		wantCode int
	}{
		{"login not JSON", "POST", gal.url + "/v1/login", []byte("{{"), 400},
		{"login unknown field", "POST", gal.url + "/v1/login", []byte(`{"user":"a","admin":true}`), 400},
		{"login empty user", "POST", gal.url + "/v1/login", []byte(`{"user":""}`), 400},
		{"login user too long", "POST", gal.url + "/v1/login", []byte(`{"user":"` + strings.Repeat("x", 65) + `"}`), 400},
		{"login control character", "POST", gal.url + "/v1/login", []byte(`{"user":"a\u0000b"}`), 400},
		{"login ok", "POST", gal.url + "/v1/login", []byte(`{"user":"cy"}`), 200},
		{"thumbnail garbage", "POST", gal.url + "/v1/thumbnails?width=5&height=5", []byte("\x89PNG garbage"), 400},
		{"thumbnail no size", "POST", gal.url + "/v1/thumbnails", testPNG(t, 8, 8), 400},
		{"thumbnail negative size", "POST", gal.url + "/v1/thumbnails?width=-1&height=5", testPNG(t, 8, 8), 400},
		{"thumbnail truncated", "POST", gal.url + "/v1/thumbnails?width=5&height=5", testPNG(t, 64, 64)[:60], 400},
		{"wrong method", "GET", gal.url + "/v1/thumbnails", nil, 405},
		{"direct garbage", "POST", thumb.url + "/v1/thumbnails?width=5&height=5&fit=%00", []byte{0, 1, 2}, 400},
		{"unknown route", "GET", thumb.url + "/../../etc/passwd", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, tt.method, tt.url, tt.body)
			if r.code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", r.code, tt.wantCode, r.body)
			}
			if r.hdr.Get("X-Served-By") == "" {
				t.Error("response has no X-Served-By")
			}
			if tt.wantCode >= 400 && tt.wantCode != 404 && tt.wantCode != 405 {
				var e struct{ Error string }
				if json.Unmarshal(r.body, &e) != nil || e.Error == "" {
					t.Errorf("error body %q names no error", r.body)
				}
			}
		})
	}
	// A forged cookie gives a fresh, unauthenticated session, never a 500.
	req, _ := http.NewRequest("GET", gal.url+"/v1/history", nil)
	req.Header.Set("Cookie", "shoal_session=forged.value")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d, want 401", resp.StatusCode)
	}
	for _, s := range []*running{thumb, gal} {
		healthtest.Wait(t, s.adm+"/livez", http.StatusOK)
	}
}

func TestPortClash(t *testing.T) {
	a := start(t, "a", func(*Service) error { return nil })
	o := Options{Host: "127.0.0.1", Port: a.svc.Addr().(*net.TCPAddr).Port}
	_, err := New(o, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "listening on port") {
		t.Fatalf("New on a taken port: %v", err)
	}
}

func TestGalleryHashesEachDigestOntoOneThumbnailer(t *testing.T) {
	var addrs []string
	for _, name := range []string{"thumbnailer-0", "thumbnailer-1", "thumbnailer-2"} {
		r := start(t, name, func(s *Service) error { return AddThumbnailer(s, thumbnailer.Config{}) })
		addrs = append(addrs, strings.TrimPrefix(r.url, "http://"))
	}
	gal := start(t, "gallery-0", func(s *Service) error {
		return AddGallery(context.Background(), s, GalleryOptions{
			SessionSecret: strings.Repeat("s", 32), SessionTTL: time.Minute,
			ThumbnailerAddrs: strings.Join(addrs, ","), Policy: "consistent_hash", Timeout: 10 * time.Second,
		})
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if r := do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"dee"}`)); r.code != 200 {
		t.Fatalf("login: %d", r.code)
	}
	upstreams := map[string]int{}
	for i := range 12 {
		img := testPNG(t, 20+i, 20)
		var first string
		for range 3 {
			r := do(t, c, "POST", gal.url+"/v1/thumbnails?width=8&height=8", img)
			if r.code != 200 {
				t.Fatalf("thumbnail: %d %s", r.code, r.body)
			}
			up := r.hdr.Get("X-Upstream-Served-By")
			if first == "" {
				first = up
			} else if up != first {
				t.Fatalf("image %d went to %s, then %s: the digest key is not sticky", i, first, up)
			}
		}
		upstreams[first]++
	}
	if len(upstreams) < 2 {
		t.Errorf("12 distinct images all hashed onto %v", upstreams)
	}
}
