package chaos

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestHarnessStartsAndStops checks the harness itself: both services come
// up ready on their own addresses, answer, and a SIGTERM ends them with
// status 0.
func TestHarnessStartsAndStops(t *testing.T) {
	th := startThumbnailer(t, "DRAIN_DELAY=0s")
	g := startGallery(t, "THUMBNAILER_ADDRS="+addrsOf(th), "DRAIN_DELAY=0s")
	if th.Host == g.Host {
		t.Fatalf("both processes on %s", th.Host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := hammer(ctx, 4, 20, func(ctx context.Context, i int) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.AdminURL("/livez"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &statusError{resp.StatusCode}
		}
		return nil
	})
	if res.OK != 20 {
		t.Fatalf("liveness: %v", res)
	}
	if rss := g.PeakRSS(); rss <= 0 {
		t.Fatalf("peak RSS of the gallery: %d", rss)
	}
	for _, p := range []*proc{g, th} {
		p.Signal(syscall.SIGTERM)
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("%s after SIGTERM: %v", p.name, err)
		}
	}
}

// statusError is a response whose status was not the one expected.
type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("status %d", e.code) }
