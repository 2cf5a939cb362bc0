package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stalledUploads opens n connections to addr, each sending the headers
// of an upload of 10 MiB and its first 64 KiB, then nothing more until
// ctx ends; a connection the server closes is opened again a second
// later. sent counts
// the uploads whose first 64 KiB were written.
func stalledUploads(ctx context.Context, addr, path string, n int, wg *sync.WaitGroup, sent *atomic.Int64) {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: chaos\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", path, 10<<20)
	first := make([]byte, 64<<10)
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
					continue
				}
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				if _, err := io.WriteString(conn, head); err == nil {
					if _, err := conn.Write(first); err == nil {
						sent.Add(1)
					}
				}
				io.Copy(io.Discard, conn) // until the server closes it, or ctx ends
				stop()
				conn.Close()
				// Holding, not flooding: a second before the next.
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
}

// TestStalledUploadsDoNotStarveUploads has 400 connections each send the
// first 64 KiB of a 10 MiB upload to a thumbnailer and stall, which holds
// 25 MiB, more than its uploads budget, in blocks that will never fill,
// while an ordinary client uploads images for 5 s: a body that arrives
// slowly is evicted for one that waits (shed.Budget.ReadAllEvictable), a
// request waiting for memory holds no slot of the shedder, and at least
// 90% of the ordinary uploads are answered 200 (5% before).
func TestStalledUploadsDoNotStarveUploads(t *testing.T) {
	th := startThumbnailer(t, fmt.Sprintf("MEMORY_LIMIT=%d", deployMemoryLimit))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	attack, stopAttack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopAttack()
	var sent atomic.Int64
	const conns = 400
	stalledUploads(attack, th.Addr, "/v1/thumbnails?width=32&height=32", conns, &wg, &sent)
	// Wait until the stalled uploads hold the budget.
	for sent.Load() < conns && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	img := pngBody(t)
	client := &http.Client{Timeout: 30 * time.Second}
	var mu sync.Mutex
	codes := map[int]int{}
	ordinary := func(ctx context.Context, i int) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", th.URL(fmt.Sprintf("/v1/thumbnails?width=%d&height=32", 16+i%16)), bytes.NewReader(img))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		mu.Lock()
		codes[resp.StatusCode]++
		mu.Unlock()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %.100s", resp.StatusCode, body)
		}
		return nil
	}
	// Ordinary uploads for 5 s: past the first second, in which the
	// stalled bodies are too young to be judged by their rate.
	res := loadResult{Errors: map[string]int{}}
	for start := time.Now(); time.Since(start) < 5*time.Second && ctx.Err() == nil; {
		r := hammer(ctx, 4, 40, ordinary)
		res.OK, res.Failed = res.OK+r.OK, res.Failed+r.Failed
		for k, v := range r.Errors {
			res.Errors[k] += v
		}
	}
	share := float64(res.OK) / float64(max(1, res.OK+res.Failed))
	t.Logf("under %d stalled uploads (%d sent): %v; answers %v (%.1f%% served)", conns, sent.Load(), res, codes, 100*share)
	if share < 0.9 {
		t.Errorf("%.1f%% of ordinary uploads answered 200, want at least 90%%", 100*share)
	}
}
