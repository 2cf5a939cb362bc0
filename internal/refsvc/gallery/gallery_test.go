package gallery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strconv"
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
	base, c, _ := newGalleryAPI(t, up, cfg)
	return base, c
}

// newGalleryAPI is newGallery that also returns the API it serves.
func newGalleryAPI(t *testing.T, up http.Handler, cfg gallery.Config) (string, *http.Client, *gallery.API) {
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
	return srv.URL, c, api
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

func TestHistoryKeepsTheNewestEntries(t *testing.T) {
	tests := []struct {
		name       string
		maxHistory int
		calls      int
		wantWidths []int
	}{
		{"empty", 2, 0, []int{}},
		{"under the bound", 3, 2, []int{1, 2}},
		{"over the bound", 2, 4, []int{3, 4}},
		{"default bound", 0, 3, []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, c := newGallery(t, &fakeThumbnailer{}, gallery.Config{MaxHistory: tt.maxHistory})
			for i := 1; i <= tt.calls; i++ {
				if code, body := call(t, c, "POST", url+"/v1/thumbnails?width="+strconv.Itoa(i)+"&height=8", "img"); code != http.StatusOK {
					t.Fatalf("thumbnail %d: %d %s", i, code, body)
				}
			}
			code, body := call(t, c, "GET", url+"/v1/history", "")
			var got struct {
				User    string                 `json:"user"`
				History []gallery.HistoryEntry `json:"history"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusOK {
				t.Fatalf("history: %d %s %v", code, body, err)
			}
			widths := []int{}
			for _, e := range got.History {
				widths = append(widths, e.Width)
				if e.ServedBy != "thumbnailer-0" || e.Bytes != len("thumb") || e.ContentType != "image/png" {
					t.Errorf("entry = %+v", e)
				}
			}
			if got.User != "ann" || !slices.Equal(widths, tt.wantWidths) {
				t.Errorf("history of %q has widths %v, want %v", got.User, widths, tt.wantWidths)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	m, err := session.NewManager(session.Config{Secret: bytes.Repeat([]byte("s"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	const up = "http://thumbnailer:8080"
	tests := []struct {
		name    string
		cfg     gallery.Config
		wantErr string
	}{
		{"no sessions", gallery.Config{ThumbnailerURL: up}, "gallery: Sessions is required"},
		{"no thumbnailer URL", gallery.Config{Sessions: m}, `ThumbnailerURL ""`},
		{"thumbnailer URL without host", gallery.Config{Sessions: m, ThumbnailerURL: "http://"}, "with a host"},
		{"negative timeout", gallery.Config{Sessions: m, ThumbnailerURL: up, Timeout: -time.Second}, "Timeout -1s is negative"},
		{"negative body bound", gallery.Config{Sessions: m, ThumbnailerURL: up, MaxBodyBytes: -1}, "MaxBodyBytes -1 is negative"},
		{"negative history bound", gallery.Config{Sessions: m, ThumbnailerURL: up, MaxHistory: -1}, "MaxHistory -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gallery.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "gallery: ") {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := gallery.New(gallery.Config{Sessions: m, ThumbnailerURL: up}); err != nil {
		t.Fatalf("New with only the required fields: %v", err)
	}
}
