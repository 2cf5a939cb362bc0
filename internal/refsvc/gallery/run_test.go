package gallery_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/service"
)

// TestRunRejectsBadConfiguration runs the gallery as its main does, with
// args and variables, and checks that a bad setting stops it before it
// serves, with an error naming the setting.
func TestRunRejectsBadConfiguration(t *testing.T) {
	listen := []string{"-port", "0", "-admin-port", "0", "-host", "127.0.0.1"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"malformed env", map[string]string{"DRAIN_DELAY": "five"}, nil, "DRAIN_DELAY"},
		{"malformed flag", nil, []string{"-port", "http"}, "-port"},
		{"unknown log level", map[string]string{"LOG_LEVEL": "loud"}, listen, "LOG_LEVEL"},
		{"negative connection requests", map[string]string{"MAX_CONN_REQUESTS": "-1"}, listen, "MaxConnRequests"},
		{"bad redis URL", map[string]string{"REDIS_URL": "mysql://x"}, listen, "REDIS_URL"},
		{"bad policy", map[string]string{"THUMBNAILER_ADDRS": "127.0.0.1:1", "BALANCE_POLICY": "fastest"}, listen, "BALANCE_POLICY"},
		{"bad DNS name", map[string]string{"THUMBNAILER_DNS": "no-port"}, listen, "THUMBNAILER_DNS"},
		{"bad address", map[string]string{"THUMBNAILER_ADDRS": "no-port"}, listen, "THUMBNAILER_ADDRS"},
		{"bad URL", map[string]string{"THUMBNAILER_URL": "ftp://thumbnailer"}, listen, "THUMBNAILER_URL"},
		{"bad target", map[string]string{"THUMBNAILER": "ftp://thumbnailer"}, listen, "gallery: THUMBNAILER: "},
		{"target wins", map[string]string{"THUMBNAILER": "no-port", "THUMBNAILER_ADDRS": "127.0.0.1:1", "THUMBNAILER_DNS": "thumbnailer:8080"}, listen, "gallery: THUMBNAILER: "},
		{"k8s target, which needs EndpointSlices", map[string]string{"THUMBNAILER": "k8s:///thumbnailer.media:http"}, listen, "EndpointSlices"},
		{"negative shutdown timeout", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, listen, "SHUTDOWN_TIMEOUT -1s is negative"},
		{"negative session TTL", map[string]string{"SESSION_TTL": "-1m"}, listen, "SESSION_TTL -1m0s is negative"},
		{"negative thumbnailer timeout", map[string]string{"THUMBNAILER_TIMEOUT": "-1s"}, listen, "THUMBNAILER_TIMEOUT -1s is negative"},
		{"negative memory limit", map[string]string{"MEMORY_LIMIT": "-1"}, listen, "MEMORY_LIMIT -1 is negative"},
		{"unknown cookie setting", map[string]string{"COOKIE_SECURE": "auto"}, listen, "COOKIE_SECURE"},
		// Redis and the balancer were made before the failure: goleak in
		// TestMain checks that Add closed the one and the Service the
		// other.
		{"bad thumbnailer host", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "THUMBNAILER_ADDRS": "127.0.0.1:1", "THUMBNAILER_HOST": "a b"}, listen, "ThumbnailerURL"},
	}
	// A cancelled context: a configuration that is wrongly accepted serves
	// and stops at once, and the test fails on its nil error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := galleryProgram()
			p.Options.Logger = slog.New(slog.DiscardHandler)
			err := p.Run(ctx, tt.args, lookup(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to name %s", err, tt.wantErr)
			}
		})
	}
}

// TestZeroSettingsAreValid runs the gallery from zero Settings: every zero
// field means its default.
func TestZeroSettingsAreValid(t *testing.T) {
	p := service.Program{Name: "gallery", Setup: func(svc *service.Service) error { return gallery.Add(svc, gallery.Settings{}) }}
	start(t, p, "gallery-0", nil)
}
