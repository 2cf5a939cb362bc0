package gallery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/deadline"
	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/internal/testkit/redistest"
	"github.com/shoal-dev/shoal/metricstest"
	"github.com/shoal-dev/shoal/service"
	"github.com/shoal-dev/shoal/tracing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// galleryProgram and thumbnailerProgram are the services as their mains
// run them, without tracing (see traced).
func galleryProgram() service.Program {
	var s gallery.Settings
	return service.Program{
		Name:  "gallery",
		Bind:  func(cs *config.Set) { gallery.Bind(cs, &s) },
		Setup: func(svc *service.Service) error { return gallery.Add(svc, s) },
	}
}

func thumbnailerProgram() service.Program {
	var cfg thumbnailer.Config
	return service.Program{
		Name:  "thumbnailer",
		Bind:  func(cs *config.Set) { thumbnailer.Bind(cs, &cfg) },
		Setup: func(svc *service.Service) error { return thumbnailer.Add(svc, cfg) },
	}
}

// logBuffer collects a service's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the decoded log lines whose message is msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(b.buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// running is a service started by a test as its main starts it: settings
// from variables, parsed by service.Program. It stops when the test ends,
// or earlier by stop.
type running struct {
	svc  *service.Service
	url  string // public base URL
	adm  string // admin base URL
	logs *logBuffer
	stop func()
}

// baseEnv pins a started service to loopback, on free ports, with no
// drain and its memory budgets independent of the machine's.
var baseEnv = map[string]string{
	"HOST": "127.0.0.1", "PORT": "0", "ADMIN_PORT": "0",
	"DRAIN_DELAY": "-1ns", "SHUTDOWN_TIMEOUT": "5s", "MEMORY_LIMIT": "1073741824",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// start runs p as the replica named pod, with env over baseEnv, and waits
// until it is ready.
func start(t *testing.T, p service.Program, pod string, env map[string]string) *running {
	t.Helper()
	vars := maps.Clone(baseEnv)
	vars["POD_NAME"] = pod
	maps.Copy(vars, env)
	logs := &logBuffer{}
	p.Options.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	started := make(chan *service.Service, 1)
	setup := p.Setup
	p.Setup = func(svc *service.Service) error {
		if setup != nil {
			if err := setup(svc); err != nil {
				return err
			}
		}
		started <- svc
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil, lookup(vars), io.Discard) }()
	var svc *service.Service
	select {
	case svc = <-started:
	case err := <-done:
		cancel()
		t.Fatalf("%s: %v", pod, err)
	}
	r := &running{svc: svc, url: service.URL(svc.Addr()), adm: service.URL(svc.AdminAddr()), logs: logs}
	r.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s stopped with %v", pod, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", pod)
		}
	})
	t.Cleanup(r.stop)
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

func do(t *testing.T, c *http.Client, method, url string, body []byte, hdr ...string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
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

func hostPort(u string) string { return strings.TrimPrefix(u, "http://") }

var secret = strings.Repeat("s", 32)

// startSystem starts a thumbnailer and a gallery that balances calls to
// it, with sessions in Redis at redisURL ("" keeps them in memory).
func startSystem(t *testing.T, redisURL string) (thumb, gal *running) {
	t.Helper()
	thumb = start(t, thumbnailerProgram(), "thumbnailer-0", nil)
	gal = start(t, galleryProgram(), "gallery-0", map[string]string{
		"REDIS_URL": redisURL, "SESSION_SECRET": secret, "SESSION_TTL": "1m",
		"THUMBNAILER_ADDRS": hostPort(thumb.url), "BALANCE_POLICY": "consistent_hash", "THUMBNAILER_TIMEOUT": "10s",
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
	// gallery replica with the same secret serves the same user. It calls
	// the thumbnailer by URL, as through a ClusterIP Service.
	gal2 := start(t, galleryProgram(), "gallery-1", map[string]string{
		"REDIS_URL": "redis://" + redis.Addr() + "/0", "SESSION_SECRET": secret, "SESSION_TTL": "1m",
		"THUMBNAILER_URL": thumb.url,
	})
	c2 := &http.Client{Jar: jar}
	for _, cookie := range jar.Cookies(mustURL(t, gal.url)) {
		jar.SetCookies(mustURL(t, gal2.url), []*http.Cookie{cookie})
	}
	if r := do(t, c2, "GET", gal2.url+"/v1/history", nil); r.code != 200 || !bytes.Contains(r.body, []byte(`"user":"ann"`)) {
		t.Fatalf("history on a second replica: %d %s", r.code, r.body)
	}
	if r := do(t, c2, "POST", gal2.url+"/v1/thumbnails?width=8&height=8", img); r.code != 200 || r.hdr.Get("X-Upstream-Served-By") != "thumbnailer-0" {
		t.Fatalf("thumbnail on a second replica, by URL: %d %s", r.code, r.body)
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

// TestRedisCriticalFailsReadiness: with REDIS_CRITICAL, an unreachable
// Redis takes the replica out of readiness, and its return brings it back.
func TestRedisCriticalFailsReadiness(t *testing.T) {
	redis := redistest.Start(t)
	gal := start(t, galleryProgram(), "gallery-critical", map[string]string{
		"REDIS_URL": "redis://" + redis.Addr() + "/0", "REDIS_CRITICAL": "true", "SESSION_SECRET": secret,
		"THUMBNAILER_URL": "http://127.0.0.1:1",
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
		for _, want := range []string{"http_requests_total", "http_request_duration_seconds", "http_requests_in_flight", "http_handler_panics_total", "go_goroutines", "go_info"} {
			if !strings.Contains(fams, want) {
				t.Errorf("%s /metrics lacks %s", s.svc.Name(), want)
			}
		}
	}
	if !bytes.Contains(metricstest.Scrape(t, thumb.adm+"/metrics"), []byte(`route="/v1/thumbnails"`)) {
		t.Error("thumbnailer metrics are not labelled by route pattern")
	}
	if !bytes.Contains(metricstest.Scrape(t, gal.adm+"/metrics"), []byte(`upstream="thumbnailer"`)) {
		t.Error("gallery metrics have no series of its thumbnailer upstream")
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
	if r := do(t, http.DefaultClient, "GET", gal.url+"/v1/history", nil, "Cookie", "shoal_session=forged.value"); r.code != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d, want 401", r.code)
	}
	for _, s := range []*running{thumb, gal} {
		healthtest.Wait(t, s.adm+"/livez", http.StatusOK)
	}
}

func TestGalleryHashesEachDigestOntoOneThumbnailer(t *testing.T) {
	var addrs []string
	for _, name := range []string{"thumbnailer-0", "thumbnailer-1", "thumbnailer-2"} {
		r := start(t, thumbnailerProgram(), name, nil)
		addrs = append(addrs, hostPort(r.url))
	}
	gal := start(t, galleryProgram(), "gallery-0", map[string]string{
		"SESSION_SECRET": secret, "THUMBNAILER_ADDRS": strings.Join(addrs, ","), "BALANCE_POLICY": "consistent_hash",
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

// TestCookieSecureSetting signs in over plain HTTP under each COOKIE_SECURE
// and looks at the session cookie's Secure attribute.
func TestCookieSecureSetting(t *testing.T) {
	tests := []struct {
		name       string
		setting    string
		proto      string
		wantSecure bool
	}{
		{"default is always", "", "", true},
		{"always", "always", "http", true},
		{"never", "never", "https", false},
		{"forwarded https", "forwarded", "https", true},
		{"forwarded http", "forwarded", "http", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gal := start(t, galleryProgram(), "gallery-0", map[string]string{"COOKIE_SECURE": tt.setting})
			var hdr []string
			if tt.proto != "" {
				hdr = []string{"X-Forwarded-Proto", tt.proto}
			}
			r := do(t, http.DefaultClient, "POST", gal.url+"/v1/login", []byte(`{"user":"ann"}`), hdr...)
			cs := (&http.Response{Header: r.hdr}).Cookies()
			if r.code != http.StatusOK || len(cs) != 1 {
				t.Fatalf("login: %d with cookies %v", r.code, cs)
			}
			if cs[0].Secure != tt.wantSecure {
				t.Errorf("Secure = %v, want %v", cs[0].Secure, tt.wantSecure)
			}
		})
	}
	t.Run("unknown value", func(t *testing.T) {
		err := gallery.Settings{CookieSecure: "auto"}.Validate()
		if err == nil || !strings.Contains(err.Error(), "COOKIE_SECURE") {
			t.Fatalf("Validate = %v, want an error naming COOKIE_SECURE", err)
		}
	})
}

// TestThumbnailRouteDeadline: the thumbnail route's deadline comes from
// THUMBNAILER_TIMEOUT, not REQUEST_TIMEOUT, so a thumbnailer call may
// take longer than the other routes may. The deadline the gallery sends
// with the call (a try gets half of THUMBNAILER_TIMEOUT) is above
// REQUEST_TIMEOUT.
func TestThumbnailRouteDeadline(t *testing.T) {
	up := &fakeThumbnailer{}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	gal := start(t, galleryProgram(), "gallery-0", map[string]string{
		"SESSION_SECRET": secret, "THUMBNAILER_URL": srv.URL, "REQUEST_TIMEOUT": "1s", "THUMBNAILER_TIMEOUT": "6s",
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if r := do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"ann"}`)); r.code != http.StatusOK {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	if r := do(t, c, "POST", gal.url+"/v1/thumbnails?width=8&height=8", testPNG(t, 16, 16)); r.code != http.StatusOK {
		t.Fatalf("thumbnail: %d %s", r.code, r.body)
	}
	sent := up.lastHeader().Get(deadline.Header)
	if ms, err := strconv.Atoi(sent); err != nil || ms <= 1000 || ms > 3000 {
		t.Errorf("%s: %q, want above REQUEST_TIMEOUT (1000) and at most a try's 3000", deadline.Header, sent)
	}
}

// traced adds tracing to p as the mains do (tracing.Bind, tracing.New,
// svc.Trace first), its spans going to exp instead of a collector.
func traced(p service.Program, exp sdktrace.SpanExporter) service.Program {
	var tc tracing.Config
	bind, setup := p.Bind, p.Setup
	p.Bind = func(cs *config.Set) {
		bind(cs)
		tracing.Bind(cs, &tc)
	}
	p.Setup = func(svc *service.Service) error {
		tc.ServiceName, tc.Logger, tc.Exporter = p.Name, svc.Logger, exp
		tracer, err := tracing.New(tc)
		if err != nil {
			return err
		}
		svc.Trace(tracer)
		return setup(svc)
	}
	return p
}

// TestTraceCrossesToThumbnailer sends the gallery a request in a trace,
// by traceparent, and finds that trace continued in the thumbnailer the
// gallery called through its balancer: in both services' request log
// lines, and in their spans, each a child of the one before.
func TestTraceCrossesToThumbnailer(t *testing.T) {
	thumbSpans, galSpans := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	thumb := start(t, traced(thumbnailerProgram(), thumbSpans), "thumbnailer-0", nil)
	gal := start(t, traced(galleryProgram(), galSpans), "gallery-0", map[string]string{
		"SESSION_SECRET": secret, "THUMBNAILER_ADDRS": hostPort(thumb.url),
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if r := do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"ann"}`)); r.code != http.StatusOK {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	const (
		traceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan = "00f067aa0ba902b7"
	)
	r := do(t, c, "POST", gal.url+"/v1/thumbnails?width=8&height=8", testPNG(t, 16, 16),
		"traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	if r.code != http.StatusOK {
		t.Fatalf("thumbnail: %d %s", r.code, r.body)
	}

	// The request log lines: the gallery's, and the thumbnailer's for the
	// call it made, share the trace ID and the request ID. A line is
	// written once the handler returns, which may be after the client has
	// its answer.
	galLine := waitLogLine(t, gal.logs, "/v1/thumbnails", traceID)
	thumbLine := waitLogLine(t, thumb.logs, "/v1/thumbnails", traceID)
	if galLine["request_id"] == "" || thumbLine["request_id"] != galLine["request_id"] {
		t.Errorf("request IDs: gallery %v, thumbnailer %v; want one, the same", galLine["request_id"], thumbLine["request_id"])
	}

	// The spans: the gallery's server span is the child of the caller's;
	// its call to the thumbnailer a client span in the same trace; the
	// thumbnailer's server span the child of that.
	galServer := waitSpan(t, galSpans, trace.SpanKindServer, traceID)
	if got := galServer.Parent.SpanID().String(); got != callerSpan || !galServer.Parent.IsRemote() {
		t.Errorf("gallery server span's parent %s (remote %v), want the caller's %s", got, galServer.Parent.IsRemote(), callerSpan)
	}
	waitSpan(t, galSpans, trace.SpanKindClient, traceID)
	thumbServer := waitSpan(t, thumbSpans, trace.SpanKindServer, traceID)
	// The call has ended before the gallery answered, retries included.
	var calls []string
	for _, s := range galSpans.GetSpans() {
		if s.SpanKind == trace.SpanKindClient && s.SpanContext.TraceID() == galServer.SpanContext.TraceID() {
			calls = append(calls, s.SpanContext.SpanID().String())
		}
	}
	if parent := thumbServer.Parent.SpanID().String(); !slices.Contains(calls, parent) {
		t.Errorf("thumbnailer server span's parent %s, want a client span of the gallery's: %v", parent, calls)
	}
	for name, s := range map[string]tracetest.SpanStub{"gallery": galServer, "thumbnailer": thumbServer} {
		if got, _ := s.Resource.Set().Value("service.name"); got.AsString() != name {
			t.Errorf("%s's span %q has service.name %q", name, s.Name, got.AsString())
		}
	}
}

// waitLogLine waits for the request log line of a request to route in the
// trace traceID, and returns it.
func waitLogLine(t *testing.T, logs *logBuffer, route, traceID string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		for _, l := range logs.lines(t, "request") {
			if r, _ := l["route"].(string); strings.HasSuffix(r, route) && l["trace_id"] == traceID {
				return l
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no request log line for %s in trace %s:\n%s", route, traceID, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitSpan waits for exp to hold an ended span of kind in the trace
// traceID, and returns it.
func waitSpan(t *testing.T, exp *tracetest.InMemoryExporter, kind trace.SpanKind, traceID string) tracetest.SpanStub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var seen []string
		for _, s := range exp.GetSpans() {
			if s.SpanKind == kind && s.SpanContext.TraceID().String() == traceID {
				return s
			}
			seen = append(seen, s.Name+" "+s.SpanKind.String()+" "+s.SpanContext.TraceID().String())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %v span in trace %s; spans: %v", kind, traceID, seen)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
