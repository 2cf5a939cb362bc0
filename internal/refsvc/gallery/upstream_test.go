package gallery_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
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
