package thumbnailer

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
)

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newServer(t *testing.T, cfg Config) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Logger = slog.New(slog.DiscardHandler)
	api, err := New(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, reg
}

func TestThumbnailStatuses(t *testing.T) {
	srv, _ := newServer(t, Config{MaxBodyBytes: 64 << 10, MaxPixels: 200 * 200})
	good := pngBytes(t, 120, 80)
	tests := []struct {
		name      string
		query     string
		body      []byte
		wantCode  int
		wantInErr string
	}{
		{"ok", "width=60&height=60&fit=contain", good, 200, ""},
		{"missing width", "height=60", good, 400, "width is required"},
		{"bad fit", "width=6&height=6&fit=zoom", good, 400, "fit"},
		{"garbage body", "width=6&height=6", []byte("not an image"), 400, "bad image"},
		{"truncated", "width=6&height=6", good[:len(good)-20], 400, "bad image"},
		{"too many pixels", "width=6&height=6", pngBytes(t, 300, 300), 413, "too large"},
		{"body too big", "width=6&height=6", bytes.Repeat([]byte{0}, 65<<10), 413, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/v1/thumbnails?"+tt.query, "image/png", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantCode, body)
			}
			if tt.wantInErr == "" {
				img, err := png.Decode(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("result is not a PNG: %v", err)
				}
				if b := img.Bounds(); b.Dx() != 60 || b.Dy() != 40 {
					t.Errorf("result %v, want 60x40", b)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %q is not JSON: %v", body, err)
			}
			if !strings.Contains(e.Error, tt.wantInErr) {
				t.Errorf("error %q does not mention %q", e.Error, tt.wantInErr)
			}
		})
	}
}

func TestNewRejectsNegativeBounds(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"negative body bound", Config{MaxBodyBytes: -1}, "MaxBodyBytes -1 is negative"},
		{"negative pixel bound", Config{MaxPixels: -1}, "MaxPixels -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	// A negative CacheBytes is documented: no cache.
	if _, err := New(Config{CacheBytes: -1}, prometheus.NewRegistry()); err != nil {
		t.Fatalf("New with CacheBytes -1: %v", err)
	}
}

func TestThumbnailCacheByDigest(t *testing.T) {
	srv, reg := newServer(t, Config{})
	img := pngBytes(t, 50, 50)
	var first []byte
	for i, want := range []string{"miss", "hit"} {
		resp, err := http.Post(srv.URL+"/v1/thumbnails?width=10&height=10", "image/png", bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Cache"); got != want {
			t.Errorf("request %d X-Cache = %q, want %q", i, got, want)
		}
		if got, want := resp.Header.Get(DigestHeader), thumbnail.Digest(img); got != want {
			t.Errorf("request %d %s = %q, want the image's digest %q", i, DigestHeader, got, want)
		}
		if i == 0 {
			first = body
		} else if !bytes.Equal(first, body) {
			t.Error("cached result differs from the computed one")
		}
	}
	const want = `
# HELP thumbnailer_cache_lookups_total Thumbnail cache lookups by result (hit or miss).
# TYPE thumbnailer_cache_lookups_total counter
thumbnailer_cache_lookups_total{result="hit"} 1
thumbnailer_cache_lookups_total{result="miss"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "thumbnailer_cache_lookups_total"); err != nil {
		t.Fatal(err)
	}
}
