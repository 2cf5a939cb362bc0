package service

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestUpstream(t *testing.T) {
	tests := []struct {
		name         string
		g            GalleryOptions
		wantBase     string
		wantBalancer bool
		wantErr      string
	}{
		{"one URL", GalleryOptions{ThumbnailerURL: "http://10.0.0.1:8080"}, "http://10.0.0.1:8080", false, ""},
		{"address list", GalleryOptions{ThumbnailerAddrs: "127.0.0.1:1, 127.0.0.1:2", ThumbnailerHost: "thumbs", Policy: "round_robin"}, "http://thumbs", true, ""},
		{"DNS name", GalleryOptions{ThumbnailerDNS: "thumbnailer.test:8080", ThumbnailerHost: "thumbnailer", Policy: "consistent_hash", DNSServer: "127.0.0.1:1"}, "http://thumbnailer", true, ""},
		{"bad policy", GalleryOptions{ThumbnailerAddrs: "127.0.0.1:1", Policy: "fastest"}, "", false, "BALANCE_POLICY"},
		{"DNS name without port", GalleryOptions{ThumbnailerDNS: "thumbnailer"}, "", false, "THUMBNAILER_DNS"},
		{"bad address", GalleryOptions{ThumbnailerAddrs: "no-port"}, "", false, "THUMBNAILER_ADDRS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.g.Timeout = 10 * time.Second
			up, err := newUpstream(tt.g, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newUpstream error = %v, want it to name %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if up.BaseURL != tt.wantBase || up.Client == nil || (up.balancer != nil) != tt.wantBalancer {
				t.Errorf("upstream = base %q, client %v, balancer %v; want base %q, balancer %v",
					up.BaseURL, up.Client != nil, up.balancer != nil, tt.wantBase, tt.wantBalancer)
			}
			// Close stops the balancer's resolver (goleak checks) and may
			// be repeated.
			for range 2 {
				if err := up.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
		})
	}
}
