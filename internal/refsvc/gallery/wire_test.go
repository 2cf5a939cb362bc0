package gallery

import (
	"log/slog"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/service"
)

// TestThumbnailerTarget: each way of naming the thumbnailer becomes one
// upstream target, the first set winning, and Add builds its upstream
// (a DNS resolver that never reaches its server included; goleak in
// TestMain checks that closing the Service stops it).
func TestThumbnailerTarget(t *testing.T) {
	tests := []struct {
		name         string
		s            Settings
		wantTarget   string
		wantVariable string
	}{
		{"default", Settings{}, DefaultThumbnailerURL, "THUMBNAILER_URL"},
		{"one URL", Settings{ThumbnailerURL: "http://10.0.0.1:8080"}, "http://10.0.0.1:8080", "THUMBNAILER_URL"},
		{"address list", Settings{ThumbnailerAddrs: "127.0.0.1:1, 127.0.0.1:2", ThumbnailerURL: "http://10.0.0.1:8080"}, "127.0.0.1:1, 127.0.0.1:2", "THUMBNAILER_ADDRS"},
		{"DNS name", Settings{ThumbnailerDNS: "thumbnailer.test:8080"}, "dns:///thumbnailer.test:8080", "THUMBNAILER_DNS"},
		{"DNS name and server", Settings{ThumbnailerDNS: "thumbnailer.test:8080", DNSServer: "127.0.0.1:1"}, "dns://127.0.0.1:1/thumbnailer.test:8080", "THUMBNAILER_DNS"},
		{"addresses before DNS", Settings{ThumbnailerAddrs: "127.0.0.1:1", ThumbnailerDNS: "thumbnailer.test:8080"}, "127.0.0.1:1", "THUMBNAILER_ADDRS"},
		{"target before all", Settings{Thumbnailer: "dns://127.0.0.1:1/thumbs.test:8080", ThumbnailerAddrs: "127.0.0.1:1", ThumbnailerDNS: "x:1", ThumbnailerURL: "http://x"}, "dns://127.0.0.1:1/thumbs.test:8080", "THUMBNAILER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, variable := tt.s.withDefaults().thumbnailerTarget()
			if target != tt.wantTarget || variable != tt.wantVariable {
				t.Fatalf("target %q from %s, want %q from %s", target, variable, tt.wantTarget, tt.wantVariable)
			}
			svc, err := service.New(service.Options{Host: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			tt.s.SessionSecret = "0123456789abcdef0123456789abcdef"
			if err := Add(svc, tt.s); err != nil {
				t.Fatalf("Add: %v", err)
			}
		})
	}
}

// TestThumbnailRouteTimeout: the thumbnail route's deadline is what it may
// wait for, added up.
func TestThumbnailRouteTimeout(t *testing.T) {
	tests := []struct {
		name string
		s    Settings
		want time.Duration
	}{
		{"defaults", Settings{}, 16600 * time.Millisecond},
		{"long call", Settings{Timeout: time.Minute}, 66600 * time.Millisecond},
		{"slow Redis", Settings{RedisTimeout: 2 * time.Second}, 20 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.withDefaults().thumbnailRouteTimeout(); got != tt.want {
				t.Errorf("thumbnailRouteTimeout = %v, want %v", got, tt.want)
			}
		})
	}
}
