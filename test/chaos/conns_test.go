package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestConnectionFloodStaysWithinTheMemoryLimit opens 6,000 connections
// to a gallery with the deploy kit's 128 MiB, half of them sending one
// request and then idling on keep-alive, half never sending anything,
// while an ordinary client keeps asking for its history (signed out: a
// 401 from the handler). Unbounded, each costs
// the process buffers and a goroutine (8,000 idle connections once took a
// service to 175 MiB); with MAX_CONNS at its default the gallery holds at
// most 1,024, its peak RSS stays well below the limit, and the ordinary
// client is served throughout.
func TestConnectionFloodStaysWithinTheMemoryLimit(t *testing.T) {
	const flood, maxConns = 6000, 1024
	th := startThumbnailer(t)
	g := startGallery(t, "THUMBNAILER_ADDRS="+th.Addr,
		fmt.Sprintf("MEMORY_LIMIT=%d", galleryMemoryLimit))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	// The ordinary client, on its own keep-alive connection, from before
	// the flood until after it.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	var served, failed int
	var firstErr error
	ask := func() {
		// Signed out, the history answers 401 from the gallery's handler.
		resp, err := client.Get(g.URL("/v1/history"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		served++
	}
	ask()

	d := net.Dialer{Timeout: 10 * time.Second}
	for i := 0; i < flood && ctx.Err() == nil; i++ {
		c, err := d.DialContext(ctx, "tcp", g.Addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if i%2 == 0 {
			// One request, read in full, then idle.
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := fmt.Fprintf(c, "GET /readyz HTTP/1.1\r\nHost: g\r\n\r\n"); err == nil {
				if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
		if i%500 == 0 {
			ask()
		}
	}
	ask()
	// The flood's connections the gallery still holds.
	open := 0
	buf := make([]byte, 1)
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	peak := g.PeakRSS()
	m := scrape(ctx, t, g)
	evicted, ok := m.sample("http_server_connections_closed_total", `server="public"`, `reason="evicted"`)
	t.Logf("%d connections opened, %d still open, %.0f reported evicted; gallery peak RSS %.1f MiB; ordinary client: %d served, %d failed (%v)",
		len(conns), open, evicted, float64(peak)/(1<<20), served, failed, firstErr)
	// Most of the flood was closed to keep the cap, and the metric says
	// so (some silent ones may have met their read timeout first).
	if !ok || evicted < float64(len(conns)-open)/2 {
		t.Errorf("http_server_connections_closed_total{server=\"public\",reason=\"evicted\"} = %v (found: %v), want at least half of the %d closed",
			evicted, ok, len(conns)-open)
	}
	if open > maxConns {
		t.Errorf("the gallery holds %d of the flood's connections, want at most MAX_CONNS (%d)", open, maxConns)
	}
	if peak > galleryMemoryLimit/2 {
		t.Errorf("gallery peak RSS %.1f MiB, want below half its %d MiB limit", float64(peak)/(1<<20), galleryMemoryLimit>>20)
	}
	if failed > 0 {
		t.Errorf("the ordinary client failed %d of %d requests during the flood (first: %v)", failed, served+failed, firstErr)
	}
}
