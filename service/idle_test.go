package service

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-dev/shoal/health"
)

// TestIdleServiceRunsOnlyItsServers checks that an idle service runs no
// goroutine it does not need: the accept loops of its public and admin
// servers, the health checker and one per check when there are checks, an
// upstream's resolver, and nothing for the parts made when first used (the
// gRPC server without GRPC_PORT, an upstream's connections).
func TestIdleServiceRunsOnlyItsServers(t *testing.T) {
	check := health.Check{Name: "dep", Func: func(context.Context) error { return nil }, Interval: time.Hour}
	tests := []struct {
		name  string
		setup func(*Service) error
		want  int // goroutines started by the kit, at most
	}{
		{"defaults", nil, 2},
		{"gRPC service registered without GRPC_PORT", func(s *Service) error {
			s.GRPCServer().RegisterService(&grpc.ServiceDesc{ServiceName: "x.v1.X", HandlerType: (*any)(nil)}, struct{}{})
			return nil
		}, 2},
		{"an upstream never called", func(s *Service) error {
			_, err := s.Upstream(UpstreamConfig{Name: "peer", Target: "127.0.0.1:1,127.0.0.1:2"})
			return err
		}, 3},
		{"a health check", func(s *Service) error { return s.Health.Add(check) }, 4},
		{"two health checks", func(s *Service) error {
			if err := s.Health.Add(check); err != nil {
				return err
			}
			c := check
			c.Name = "dep2"
			return s.Health.Add(c)
		}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, Options{}, tc.setup)
			// The probe start waited on has its connection closed, so only
			// what the service keeps running is left.
			http.DefaultClient.CloseIdleConnections()
			// Goroutines that start-up left to finish get time to do so.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for got := kitGoroutines(); len(got) > tc.want; got = kitGoroutines() {
				select {
				case <-ctx.Done():
					t.Fatalf("idle service runs %d goroutines of the kit, want at most %d:\n\n%s", len(got), tc.want, strings.Join(got, "\n\n"))
				case <-tick.C:
				}
			}
			if code := get(t, http.DefaultClient, r.adm+"/readyz", nil).code; code != http.StatusOK {
				t.Errorf("/readyz = %d", code)
			}
		})
	}
}

// kitGoroutines are the stacks of the goroutines running the toolkit's
// code, leaving out the test's own (started by start and by package
// testing) and the main goroutine.
func kitGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		i := strings.LastIndex(g, "\ncreated by ")
		if i < 0 || !strings.Contains(g, "github.com/shoal-dev/shoal/") {
			continue
		}
		if by := g[i:]; strings.Contains(by, "service.start") || strings.Contains(by, "testing.") {
			continue
		}
		out = append(out, g)
	}
	return out
}
