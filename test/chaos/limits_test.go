package chaos

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail/thumbnailtest"
)

// deployMemoryLimit is the thumbnailer's memory limit in deploy/base
// (256Mi), passed as MEMORY_LIMIT as the deploy kit passes it.
const deployMemoryLimit = 256 << 20

// bomb is one image that is small to send and large to decode, with the
// thumbnail asked of it.
type bomb struct {
	name  string
	data  []byte
	query string
}

var (
	bombsOnce sync.Once
	bombList  []bomb
)

// bombs are generated once per test binary: -count=20 reuses them.
func bombs() []bomb {
	bombsOnce.Do(func() {
		bombList = []bomb{
			{"png16 interlaced 2000x1500", thumbnailtest.PNG(2000, 1500, true, true), "width=256&height=256"},
			{"png16 interlaced 6000x6000", thumbnailtest.PNG(6000, 6000, true, true), "width=256&height=256"},
			{"progressive jpeg 3000x2000", thumbnailtest.JPEG(3000, 2000, 3, true), "width=256&height=256&fit=cover"},
			{"progressive jpeg 8000x5000", thumbnailtest.JPEG(8000, 5000, 3, true), "width=256&height=256"},
			{"gif 6000x6000", thumbnailtest.GIF(6000, 6000), "width=300&height=300&fit=fill"},
			{"grey16 png with tRNS 5000x5000", thumbnailtest.GreyTransparentPNG(5000, 5000, true), "width=256&height=256"},
			{"grey png with tRNS 6000x6000", thumbnailtest.GreyTransparentPNG(6000, 6000, false), "width=256&height=256"},
			{"1x1 to 4096x4096", thumbnailtest.PNG(1, 1, false, false), "width=4096&height=4096"},
			{"1x1 to 2048x2048", thumbnailtest.PNG(1, 1, false, false), "width=2048&height=2048"},
		}
	})
	return bombList
}

// TestDecompressionBombsStayWithinTheMemoryLimit sends every bomb several
// times at once to a thumbnailer with the deploy kit's memory settings:
// every answer is a 413 or a 200 no larger than asked, and the process's
// peak RSS stays below the container's limit.
func TestDecompressionBombsStayWithinTheMemoryLimit(t *testing.T) {
	bs := bombs()
	th := startThumbnailer(t,
		"GOMAXPROCS=1", fmt.Sprintf("MEMORY_LIMIT=%d", deployMemoryLimit),
		// Queue for memory rather than 503, so every bomb is decided.
		"MEMORY_WAIT=90s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Minute}
	var mu sync.Mutex
	codes := map[string]map[int]int{}
	res := hammer(ctx, 8, 4*len(bs), func(ctx context.Context, i int) error {
		b := bs[i%len(bs)]
		req, _ := http.NewRequestWithContext(ctx, "POST", th.URL("/v1/thumbnails?"+b.query), bytes.NewReader(b.data))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20+1))
		if err != nil {
			return err
		}
		mu.Lock()
		if codes[b.name] == nil {
			codes[b.name] = map[int]int{}
		}
		codes[b.name][resp.StatusCode]++
		mu.Unlock()
		switch resp.StatusCode {
		case http.StatusRequestEntityTooLarge:
			return nil
		case http.StatusOK:
			cfg, _, err := image.DecodeConfig(bytes.NewReader(body))
			if err != nil {
				return fmt.Errorf("%s: 200 with a body that is no image: %v", b.name, err)
			}
			if cfg.Width > 4096 || cfg.Height > 4096 {
				return fmt.Errorf("%s: 200 with a %dx%d image", b.name, cfg.Width, cfg.Height)
			}
			return nil
		}
		return fmt.Errorf("%s: status %d: %.200s", b.name, resp.StatusCode, body)
	})
	peak := th.PeakRSS()
	t.Logf("%v; peak RSS %.1f MiB of %d MiB; answers %v", res, float64(peak)/(1<<20), deployMemoryLimit>>20, codes)
	if res.Failed > 0 || res.OK != 4*len(bs) {
		t.Errorf("bombs: %v", res)
	}
	if peak >= deployMemoryLimit {
		t.Errorf("peak RSS %d bytes, at or above the %d limit", peak, deployMemoryLimit)
	}
}

// trickle is a body that yields one byte a second until ctx ends.
type trickle struct{ ctx context.Context }

func (r trickle) Read(p []byte) (int, error) {
	select {
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	case <-time.After(time.Second):
	}
	p[0] = 'x'
	return 1, nil
}

// slowClients keeps n HTTP/1.1 uploads open at a byte a second against
// addr, reconnecting each as the server cuts it off, until ctx ends. It
// returns once every one has sent its headers and first byte.
func slowClients(ctx context.Context, t *testing.T, addr, path string, n int, wg *sync.WaitGroup, cutOff *atomic.Int64) {
	started := make(chan struct{}, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: chaos\r\nContent-Length: 1000000\r\n\r\nx", path)
				if first {
					started <- struct{}{}
					first = false
				}
				io.Copy(conn, trickle{ctx}) // ends when the server cuts it off
				if ctx.Err() == nil {
					cutOff.Add(1)
				}
				stop()
				conn.Close()
			}
		}()
	}
	for range n {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("slow clients did not start")
		}
	}
}

// h2cFlood opens one h2c connection to url and sends streams requests on
// it, each with a body trickling a byte a second, until ctx ends.
func h2cFlood(ctx context.Context, url string, streams int, wg *sync.WaitGroup) *http.Transport {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos, MaxConnsPerHost: 1}
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", url, trickle{ctx})
				req.ContentLength = 1000000
				if resp, err := tr.RoundTrip(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	return tr
}

// TestSlowBodiesDoNotStopTheService runs 50 uploads at a byte a second
// (reconnecting as the server cuts them off) and an h2c connection of 25
// such streams against a thumbnailer, and requires at least 95% of the
// ordinary requests made meanwhile to be answered 200.
func TestSlowBodiesDoNotStopTheService(t *testing.T) {
	th := startThumbnailer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	attack, stopAttack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopAttack()
	const path = "/v1/thumbnails?width=32&height=32"
	var cutOff atomic.Int64
	slowClients(attack, t, th.Addr, path, 50, &wg, &cutOff)
	tr := h2cFlood(attack, th.URL(path), 25, &wg)
	defer tr.CloseIdleConnections()

	img := pngBody(t)
	client := &http.Client{Timeout: 30 * time.Second}
	ordinary := func(ctx context.Context, i int) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", th.URL(fmt.Sprintf("/v1/thumbnails?width=%d&height=32", 16+i%16)), bytes.NewReader(img))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	start := time.Now()
	// Serve ordinary requests until every slow upload has been cut off
	// once (and reconnected): the load spans the attack's whole cycle.
	res := loadResult{Errors: map[string]int{}}
	for round := 0; round == 0 || (cutOff.Load() < 50 && ctx.Err() == nil); round++ {
		r := hammer(ctx, 4, 50, ordinary)
		res.OK, res.Failed = res.OK+r.OK, res.Failed+r.Failed
		for k, v := range r.Errors {
			res.Errors[k] += v
		}
	}
	share := float64(res.OK) / float64(max(1, res.OK+res.Failed))
	t.Logf("under 50 slow uploads (%d cut off) and 25 slow h2c streams, for %v: %v (%.1f%% served)",
		cutOff.Load(), time.Since(start).Round(time.Millisecond), res, 100*share)
	if cutOff.Load() < 50 {
		t.Errorf("only %d slow uploads were cut off", cutOff.Load())
	}
	if share < 0.95 {
		t.Errorf("%.1f%% of ordinary requests answered 200, want at least 95%%: %v", 100*share, res)
	}
}
