package service

import (
	"context"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/refsvc/config"
)

func TestMainRejectsBadConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"malformed env", map[string]string{"DRAIN_DELAY": "five"}, nil, "DRAIN_DELAY"},
		{"malformed flag", nil, []string{"-port", "http"}, "-port"},
		{"unknown log level", map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{"negative connection age", map[string]string{"MAX_CONN_AGE": "-1s"}, []string{"-port", "0", "-admin-port", "0"}, "MaxConnAge"},
		{"bad redis URL", map[string]string{"REDIS_URL": "mysql://x"}, []string{"-port", "0", "-admin-port", "0", "-host", "127.0.0.1"}, "REDIS_URL"},
		{"bad policy", map[string]string{"THUMBNAILER_ADDRS": "127.0.0.1:1", "BALANCE_POLICY": "fastest"}, []string{"-port", "0", "-admin-port", "0", "-host", "127.0.0.1"}, "BALANCE_POLICY"},
		{"bad DNS name", map[string]string{"THUMBNAILER_DNS": "no-port"}, []string{"-port", "0", "-admin-port", "0", "-host", "127.0.0.1"}, "THUMBNAILER_DNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := Main(context.Background(), "gallery", tt.args, func(cs *config.Set) func(context.Context, *Service) error {
				var g GalleryOptions
				BindGallery(cs, &g)
				return func(ctx context.Context, s *Service) error { return AddGallery(ctx, s, g) }
			})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Main error = %v, want it to name %s", err, tt.wantErr)
			}
		})
	}
}
