package service

import (
	"context"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
)

// TestRunRejectsBadConfiguration parses args and the environment as the
// mains do and checks that a bad setting stops the service before it
// serves, with an error naming the setting.
func TestRunRejectsBadConfiguration(t *testing.T) {
	listen := []string{"-port", "0", "-admin-port", "0", "-host", "127.0.0.1"}
	tests := []struct {
		name    string
		service string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"malformed env", "gallery", map[string]string{"DRAIN_DELAY": "five"}, nil, "DRAIN_DELAY"},
		{"malformed flag", "gallery", nil, []string{"-port", "http"}, "-port"},
		{"unknown log level", "gallery", map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{"negative connection age", "gallery", map[string]string{"MAX_CONN_AGE": "-1s"}, listen, "MaxConnAge"},
		{"bad redis URL", "gallery", map[string]string{"REDIS_URL": "mysql://x"}, listen, "REDIS_URL"},
		{"bad policy", "gallery", map[string]string{"THUMBNAILER_ADDRS": "127.0.0.1:1", "BALANCE_POLICY": "fastest"}, listen, "BALANCE_POLICY"},
		{"bad DNS name", "gallery", map[string]string{"THUMBNAILER_DNS": "no-port"}, listen, "THUMBNAILER_DNS"},
		{"negative shutdown timeout", "gallery", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, listen, "SHUTDOWN_TIMEOUT -1s is negative"},
		{"negative shed limit", "gallery", map[string]string{"SHED_MAX_LIMIT": "-1"}, listen, "SHED_MAX_LIMIT -1 is negative"},
		{"negative session TTL", "gallery", map[string]string{"SESSION_TTL": "-1m"}, listen, "SESSION_TTL -1m0s is negative"},
		{"negative thumbnailer timeout", "gallery", map[string]string{"THUMBNAILER_TIMEOUT": "-1s"}, listen, "THUMBNAILER_TIMEOUT -1s is negative"},
		{"thumbnailer negative body bound", "thumbnailer", map[string]string{"MAX_BODY_BYTES": "-1"}, listen, "MaxBodyBytes -1 is negative"},
		// Redis and the balancer were made before the failure: goleak in
		// TestMain checks that AddGallery closed them.
		{"bad thumbnailer host", "gallery", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "THUMBNAILER_ADDRS": "127.0.0.1:1", "THUMBNAILER_HOST": "a b"}, listen, "ThumbnailerURL"},
		{"thumbnailer malformed env", "thumbnailer", map[string]string{"MAX_PIXELS": "many"}, nil, "MAX_PIXELS"},
		{"thumbnailer unknown log level", "thumbnailer", map[string]string{"LOG_LEVEL": "loud"}, listen, "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet(tt.service, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cs := config.New(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			o := Options{Name: tt.service}
			Bind(cs, &o, 8080, 9090)
			var g GalleryOptions
			var tcfg thumbnailer.Config
			if tt.service == "gallery" {
				BindGallery(cs, &g)
			} else {
				BindThumbnailer(cs, &tcfg)
			}
			err := cs.Parse(tt.args)
			if err == nil && tt.service == "gallery" {
				err = RunGallery(context.Background(), o, g)
			} else if err == nil {
				err = RunThumbnailer(context.Background(), o, tcfg)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to name %s", err, tt.wantErr)
			}
		})
	}
}

// TestZeroSettingsAreValid starts both services from zero settings, with
// only the address pinned to loopback: every zero field means its default.
func TestZeroSettingsAreValid(t *testing.T) {
	thumb := start(t, "thumbnailer", func(s *Service) error { return AddThumbnailer(s, thumbnailer.Config{}) })
	gal := start(t, "gallery", func(s *Service) error { return AddGallery(context.Background(), s, GalleryOptions{}) })
	for _, r := range []*running{thumb, gal} {
		if got := r.svc.Options.LogLevel; got != "info" {
			t.Errorf("%s log level = %q, want info", r.svc.Name(), got)
		}
	}
}
