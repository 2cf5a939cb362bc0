package service

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/config"
)

// TestPprofOnlyWhenAsked starts a service with and without PPROF and asks
// its admin port for the profiles and the command line.
func TestPprofOnlyWhenAsked(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantIndex int
	}{
		{"off by default", nil, http.StatusNotFound},
		{"PPROF=false", map[string]string{"PPROF": "false"}, http.StatusNotFound},
		{"PPROF=true", map[string]string{"PPROF": "true"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			cs := config.New(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			Bind(cs, &o, 0, 0)
			if err := cs.Parse([]string{"-host", "127.0.0.1", "-drain-delay", "-1ns", "-shutdown-timeout", "5s"}); err != nil {
				t.Fatal(err)
			}
			svc, err := New(o, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("stopped with %v", err)
					}
				case <-time.After(30 * time.Second):
					t.Error("did not stop")
				}
			})
			adm := URL(svc.AdminAddr())
			healthtest.Wait(t, adm+"/livez", http.StatusOK)
			for path, want := range map[string]int{"/debug/pprof/": tt.wantIndex, "/debug/pprof/cmdline": http.StatusNotFound} {
				if r := do(t, http.DefaultClient, "GET", adm+path, nil); r.code != want {
					t.Errorf("GET %s: %d, want %d", path, r.code, want)
				}
			}
		})
	}
}
