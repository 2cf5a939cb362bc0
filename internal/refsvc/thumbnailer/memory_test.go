package thumbnailer

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail/thumbnailtest"
)

func newAPI(t *testing.T, cfg Config) (*API, *httptest.Server) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	api, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return api, srv
}

// TestMemoryBudget reproduces the OOM: an image within MAX_PIXELS whose
// decoded bytes exceed what the replica may hold is refused from its
// header, before a pixel is decoded.
func TestMemoryBudget(t *testing.T) {
	// 192 MiB: 96 − 32 (cache) − 16 = 48 MiB usable, 24 MiB for images.
	_, srv := newAPI(t, Config{MemoryLimit: 192 << 20, MaxBodyBytes: 4 << 20, MemoryWait: -1})
	tests := []struct {
		name     string
		body     []byte
		query    string
		wantCode int
	}{
		// 2000×1500 RGBA64, interlaced: 48 MB decoded, under 40 MP.
		{"interlaced 16-bit png", thumbnailtest.PNG(2000, 1500, true, true), "width=64&height=64", 413},
		// 3000×2000 4:2:0 progressive: 7.5 bytes a pixel, 45 MB.
		{"progressive jpeg", thumbnailtest.JPEG(3000, 2000, 3, true), "width=64&height=64", 413},
		{"same jpeg, baseline", thumbnailtest.JPEG(3000, 2000, 3, false), "width=64&height=64", 200},
		{"one pixel to 4096x4096", thumbnailtest.PNG(1, 1, false, false), "width=4096&height=4096", 413},
		{"one pixel to 1024x1024", thumbnailtest.PNG(1, 1, false, false), "width=1024&height=1024", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/v1/thumbnails?"+tt.query, "image/png", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
		})
	}
}

func TestMemoryBusyAnswers503(t *testing.T) {
	api, srv := newAPI(t, Config{MemoryLimit: 192 << 20, MaxBodyBytes: 4 << 20, MemoryWait: -1})
	release, err := api.images.Acquire(context.Background(), api.images.Capacity())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	resp, err := http.Post(srv.URL+"/v1/thumbnails?width=8&height=8", "image/png", bytes.NewReader(pngBytes(t, 20, 20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if api.uploads.InUse() != 0 {
		t.Fatalf("upload budget still holds %d after the answer", api.uploads.InUse())
	}
}

func TestNewRejectsMemoryTooSmall(t *testing.T) {
	_, err := New(Config{MemoryLimit: 48 << 20}, prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "MemoryLimit") {
		t.Fatalf("New with 48 MiB: %v, want an error naming MemoryLimit", err)
	}
	if _, err := New(Config{MemoryLimit: -1}, prometheus.NewRegistry()); err == nil {
		t.Fatal("negative MemoryLimit accepted")
	}
}
