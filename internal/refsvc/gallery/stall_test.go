package gallery_test

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// stallingThumbnailer answers 200 with the headers of a thumbnail and a
// few bytes of it, then sends nothing more until its caller leaves: a
// replica whose body stalls after its headers.
func stallingThumbnailer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", "4096")
		w.Header().Set("X-Served-By", "stalling")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("\x89PNG\r\n\x1a\n"))
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBodyStallIsRetriedElsewhere balances a gallery over thumbnailers
// whose bodies stall after the headers, and asks for thumbnails of new
// images. A call that meets the stall fails at its per-try timeout in the
// middle of the body, after the client's retries were decided (they only
// see headers). The gallery calls again, once, with the same idempotency
// key, and the balancer sends the call to the replica not yet tried: with
// a good replica beside a stalling one every thumbnail is made; with two
// stalling ones, the caller gets a 502 within THUMBNAILER_TIMEOUT.
func TestBodyStallIsRetriedElsewhere(t *testing.T) {
	// Each try gets half: long enough for a try after a stall to make a
	// thumbnail under the race detector on a loaded machine.
	const timeout = 6 * time.Second
	tests := []struct {
		name     string
		good     bool
		calls    int // round robin: two meet the stalling replica at least once
		wantCode int
	}{
		{"one replica stalls", true, 2, http.StatusOK},
		{"every replica stalls", false, 1, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs := hostPort(stallingThumbnailer(t).URL)
			if tt.good {
				addrs += "," + hostPort(start(t, thumbnailerProgram(), "thumbnailer-good", nil).url)
			} else {
				addrs += "," + hostPort(stallingThumbnailer(t).URL)
			}
			gal := start(t, galleryProgram(), "gallery-stall", map[string]string{
				"SESSION_SECRET": secret, "BALANCE_POLICY": "round_robin", "THUMBNAILER_TIMEOUT": timeout.String(),
				"THUMBNAILER_ADDRS": addrs,
			})
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			if r := do(t, c, "POST", gal.url+"/v1/login", []byte(`{"user":"di"}`)); r.code != http.StatusOK {
				t.Fatalf("login: %d %s", r.code, r.body)
			}
			var codes []int
			stalled := 0
			for i := range tt.calls {
				start := time.Now()
				r := do(t, c, "POST", gal.url+fmt.Sprintf("/v1/thumbnails?width=%d&height=8", 8+i), testPNG(t, 20+i, 20))
				took := time.Since(start)
				codes = append(codes, r.code)
				if took > timeout/4 {
					stalled++
				}
				if r.code != tt.wantCode || took > timeout+2*time.Second {
					t.Errorf("call %d: %d %s after %v, want %d within %v", i, r.code, r.body, took.Round(time.Millisecond), tt.wantCode, timeout+2*time.Second)
					continue
				}
				if by := r.hdr.Get("X-Upstream-Served-By"); tt.good && by != "thumbnailer-good" {
					t.Errorf("call %d served by %q", i, by)
				}
			}
			cut := strings.Count(gal.logs.String(), "thumbnailer response cut short")
			t.Logf("statuses %v; %d calls met a stall; %d answers cut short", codes, stalled, cut)
			if stalled == 0 || cut == 0 {
				t.Error("no call met a stalling replica")
			}
		})
	}
}
