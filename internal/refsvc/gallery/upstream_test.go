package gallery_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
)

// An upstream that sheds (503 with Retry-After) reaches the gallery's
// caller as a 503 with the same Retry-After, so the caller backs off;
// other upstream failures stay a 502.
func TestUpstreamErrorMapping(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		retryAfter     string
		wantStatus     int
		wantRetryAfter string
	}{
		{name: "shedding", status: http.StatusServiceUnavailable, retryAfter: "2", wantStatus: http.StatusServiceUnavailable, wantRetryAfter: "2"},
		{name: "503 without Retry-After", status: http.StatusServiceUnavailable, wantStatus: http.StatusBadGateway},
		{name: "500 with Retry-After", status: http.StatusInternalServerError, retryAfter: "2", wantStatus: http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
			})
			url, c := newGallery(t, up, gallery.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", strings.NewReader("img"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Retry-After") != tt.wantRetryAfter {
				t.Fatalf("got %d with Retry-After %q, want %d with %q", resp.StatusCode, resp.Header.Get("Retry-After"), tt.wantStatus, tt.wantRetryAfter)
			}
		})
	}
}

// hostileBody streams up to size bytes of zeros in 64 KiB writes (with a
// Content-Length of size when declared, chunked otherwise) until the
// gallery stops reading, and counts what it managed to send.
type hostileBody struct {
	status   int
	size     int64
	declared bool
	sent     atomic.Int64
	done     chan struct{} // closed when the handler returns
}

func (h *hostileBody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer close(h.done)
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "image/png")
	if h.declared {
		w.Header().Set("Content-Length", strconv.FormatInt(h.size, 10))
	}
	w.WriteHeader(h.status)
	chunk := make([]byte, 64<<10)
	for left := h.size; left > 0; {
		n, err := w.Write(chunk[:min(left, int64(len(chunk)))])
		h.sent.Add(int64(n))
		left -= int64(n)
		if err != nil {
			return
		}
	}
}

// TestUpstreamBodyIsBounded: a thumbnailer answering far more than the
// thumbnail asked for can take (1 GiB, with or without a Content-Length,
// as a result or as an error) gets the caller a 502 with a JSON error;
// the gallery allocates a few megabytes for it at most, and stops reading
// (the thumbnailer cannot send the gigabyte). At the limit, the answer
// passes.
func TestUpstreamBodyIsBounded(t *testing.T) {
	const gib = 1 << 30
	limit := thumbnail.MaxResultBytes(thumbnail.Options{Width: 8, Height: 8})
	tests := []struct {
		name       string
		status     int
		size       int64
		declared   bool
		wantStatus int
		wantError  string
	}{
		{"1 GiB declared", http.StatusOK, gib, true, http.StatusBadGateway, "larger than 4360 bytes, the most a 8x8 thumbnail takes"},
		{"1 GiB chunked", http.StatusOK, gib, false, http.StatusBadGateway, "larger than 4360 bytes, the most a 8x8 thumbnail takes"},
		{"1 GiB error", http.StatusBadRequest, gib, false, http.StatusBadGateway, "larger than 4096 bytes"},
		{"one byte over, chunked", http.StatusOK, limit + 1, false, http.StatusBadGateway, "larger than 4360 bytes"},
		{"at the limit", http.StatusOK, limit, true, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &hostileBody{status: tt.status, size: tt.size, declared: tt.declared, done: make(chan struct{})}
			url, c := newGallery(t, up, gallery.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", strings.NewReader("img"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			select {
			case <-up.done:
			case <-ctx.Done():
				t.Fatalf("the upstream is still sending: %d bytes so far", up.sent.Load())
			}
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d, %d bytes; upstream sent %d bytes; %d bytes allocated", resp.StatusCode, len(body), up.sent.Load(), allocated)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantError != "" {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, tt.wantError) {
					t.Errorf("body %s, want a JSON error holding %q", body, tt.wantError)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
			}
			if allocated > 64<<20 {
				t.Errorf("the request allocated %d bytes", allocated)
			}
			if sent := up.sent.Load(); sent > 64<<20 {
				t.Errorf("the gallery let the upstream send %d bytes", sent)
			}
		})
	}
}
