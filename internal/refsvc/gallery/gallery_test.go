package gallery_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/session"
)

// fakeThumbnailer answers every call with a fixed body and keeps the
// headers of the last request.
type fakeThumbnailer struct {
	mu   sync.Mutex
	last http.Header
}

func (f *fakeThumbnailer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.last = r.Header.Clone()
	f.mu.Unlock()
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("X-Served-By", "thumbnailer-0")
	io.WriteString(w, "thumb")
}

func (f *fakeThumbnailer) lastHeader() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// newGallery serves the gallery in front of up and returns its URL and a
// client with a cookie jar, signed in as ann.
func newGallery(t *testing.T, up http.Handler, cfg gallery.Config) (string, *http.Client) {
	t.Helper()
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	m, err := session.NewManager(session.Config{Secret: bytes.Repeat([]byte("s"), 32), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions, cfg.ThumbnailerURL, cfg.Logger = m, upstream.URL, slog.New(slog.DiscardHandler)
	api, err := gallery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if code, body := call(t, c, "POST", srv.URL+"/v1/login", `{"user":"ann"}`); code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	return srv.URL, c
}

func call(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestThumbnailCallHeaders checks that each call to the thumbnailer carries
// the image digest as the balancer's hash key and as an idempotency key,
// which lets the client retry it.
func TestThumbnailCallHeaders(t *testing.T) {
	up := &fakeThumbnailer{}
	url, c := newGallery(t, up, gallery.Config{})
	const img = "not decoded by the gallery"
	if code, body := call(t, c, "POST", url+"/v1/thumbnails?width=8&height=8", img); code != http.StatusOK || body != "thumb" {
		t.Fatalf("thumbnail: %d %s", code, body)
	}
	h := up.lastHeader()
	digest := thumbnail.Digest([]byte(img))
	if got := h.Get(balancer.DefaultKeyHeader); got != digest {
		t.Errorf("%s = %q, want the digest %q", balancer.DefaultKeyHeader, got, digest)
	}
	if got := h.Get(client.IdempotencyKeyHeader); got != digest {
		t.Errorf("%s = %q, want the digest %q", client.IdempotencyKeyHeader, got, digest)
	}
}
