package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// noisePNG is a w×h PNG of random pixels: it compresses to nearly its raw
// size, and so does any thumbnail made of it.
func noisePNG(t testing.TB, w, h int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var (
	unreadOnce   sync.Once
	unreadBig    []byte   // 800×800 of noise: asked at 2048×2048, a ~10 MB PNG
	unreadUpload [][]byte // 900×900 of noise, each ~2.4 MB
)

func unreadImages(t testing.TB) ([]byte, [][]byte) {
	unreadOnce.Do(func() {
		unreadBig = noisePNG(t, 800, 800, 1)
		for i := range 4 {
			unreadUpload = append(unreadUpload, noisePNG(t, 900, 900, uint64(10+i)))
		}
	})
	return unreadBig, unreadUpload
}

// nonReaders has n clients ask addr for thumbnails of big, each of its
// own size near 2048×2048 (never a cache hit), on its own connection with
// a small receive buffer, until one is answered 200: that one it holds
// open with its body unread until ctx ends, counted in held. Anything
// else (a 503, a refused connection) it asks again, after Retry-After or
// a second, as a client honouring it would.
func nonReaders(ctx context.Context, addr string, big []byte, n int, wg *sync.WaitGroup, held *atomic.Int64) {
	var asked atomic.Int64
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				query := fmt.Sprintf("width=%d&height=2048", 2048-asked.Add(1)%1024)
				wait := holdUnread(ctx, addr, query, big, held)
				if wait == 0 {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		})
	}
}

// holdUnread makes one request and, if it is answered 200, holds its body
// unread until ctx ends, and returns 0. Otherwise it returns how long to
// wait before asking again.
func holdUnread(ctx context.Context, addr, query string, big []byte, held *atomic.Int64) (wait time.Duration) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return time.Second
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// A small window: the server's writes block after a few tens of
	// kilobytes rather than after the kernel's autotuned megabytes.
	_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(conn, "POST /v1/thumbnails?%s HTTP/1.1\r\nHost: chaos\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", query, len(big))
	if _, err := conn.Write(big); err != nil {
		return time.Second
	}
	// The status line and headers only (a 4 KiB buffer), never the body.
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		return time.Second
	}
	if resp.StatusCode != http.StatusOK {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 && s <= 5 {
			return max(time.Duration(s)*time.Second, 100*time.Millisecond)
		}
		return time.Second
	}
	held.Add(1)
	<-ctx.Done()
	return 0
}

// TestUnreadResultsDoNotStopUploads has four clients ask a thumbnailer
// (with the deploy kit's 256 MiB) for ~10 MB thumbnails, each a new one,
// and hold their answers unread, asking again whenever they are turned
// away. Meanwhile, for 20s from the first answer held, ordinary clients
// upload 2.4 MB images: every one must be answered 200 within 8s, nine in
// ten within 2s, and the process's peak RSS stay below the limit.
func TestUnreadResultsDoNotStopUploads(t *testing.T) {
	const (
		nonReading = 4
		workers    = 4
		minLoad    = 20 * time.Second
		bound      = 8 * time.Second
		p90Bound   = 2 * time.Second
	)
	big, uploads := unreadImages(t)
	th := startThumbnailer(t, fmt.Sprintf("MEMORY_LIMIT=%d", deployMemoryLimit))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	attack, stopAttack := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopAttack()
	var held atomic.Int64
	nonReaders(attack, th.Addr, big, nonReading, &wg, &held)
	waitFor(ctx, t, "an unread answer held", func() bool { return held.Load() > 0 })

	client := &http.Client{Timeout: time.Minute}
	var (
		mu   sync.Mutex
		took []time.Duration
		made atomic.Int64
	)
	ordinary := func(ctx context.Context, _ int) error {
		i := made.Add(1)
		start := time.Now()
		// A new width each time: every upload is decoded and resized.
		req, _ := http.NewRequestWithContext(ctx, "POST",
			th.URL(fmt.Sprintf("/v1/thumbnails?width=%d&height=256", 100+i%2000)), bytes.NewReader(uploads[i%int64(len(uploads))]))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		mu.Lock()
		took = append(took, d)
		mu.Unlock()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %.100s", resp.StatusCode, body)
		}
		if d > bound {
			return fmt.Errorf("200 after more than %v", bound)
		}
		return nil
	}
	res := loadResult{Errors: map[string]int{}}
	start := time.Now()
	for time.Since(start) < minLoad && ctx.Err() == nil {
		r := hammer(ctx, workers, 4*workers, ordinary)
		res.OK, res.Failed = res.OK+r.OK, res.Failed+r.Failed
		for k, v := range r.Errors {
			res.Errors[k] += v
		}
	}
	stopAttack()
	slices.Sort(took)
	peak := th.PeakRSS()
	p50, p90, worst := took[len(took)/2], took[len(took)*9/10], took[len(took)-1]
	t.Logf("%d of %d clients holding an answer unread; ordinary 2.4 MB uploads for %v: %v; p50 %v, p90 %v, max %v; peak RSS %.1f MiB of %d MiB",
		held.Load(), nonReading, time.Since(start).Round(time.Second), res,
		p50.Round(time.Millisecond), p90.Round(time.Millisecond), worst.Round(time.Millisecond), float64(peak)/(1<<20), deployMemoryLimit>>20)
	if res.Failed > 0 {
		t.Errorf("ordinary uploads: %v", res)
	}
	if p90 > p90Bound {
		t.Errorf("ordinary uploads: p90 %v, want at most %v", p90, p90Bound)
	}
	if peak >= deployMemoryLimit {
		t.Errorf("peak RSS %d bytes, at or above the %d limit", peak, deployMemoryLimit)
	}
}

// waitFor polls cond every 20ms until it holds, failing the test if ctx
// ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestUnreadResultIsCutOff asks a thumbnailer for a ~10 MB thumbnail over
// HTTP/1.1 and h2c and reads none of it: once the buffers are full, the
// thumbnailer cuts the response off after WRITE_STALL (and says so in its
// log), so the client gets less than the Content-Length.
func TestUnreadResultIsCutOff(t *testing.T) {
	big, _ := unreadImages(t)
	th := startThumbnailer(t, "WRITE_STALL=300ms", "H2C=true")
	const logged = "thumbnail response cut off"
	tests := []struct {
		name string
		h2c  bool
	}{
		{"HTTP/1.1", false},
		{"h2c", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			before := strings.Count(th.Logs(), logged)
			path := fmt.Sprintf("/v1/thumbnails?width=%d&height=2048", 2048-i)
			var body io.Reader
			var size int64
			if tt.h2c {
				var protos http.Protocols
				protos.SetUnencryptedHTTP2(true)
				tr := &http.Transport{Protocols: &protos}
				defer tr.CloseIdleConnections()
				req, _ := http.NewRequestWithContext(ctx, "POST", th.URL(path), bytes.NewReader(big))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
					t.Fatalf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
				}
				body, size = resp.Body, resp.ContentLength
			} else {
				conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", th.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10)
				_ = conn.SetDeadline(time.Now().Add(time.Minute))
				fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: chaos\r\nContent-Length: %d\r\n\r\n", path, len(big))
				if _, err := conn.Write(big); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReaderSize(conn, 4096)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
				body, size = br, resp.ContentLength
			}
			waitFor(ctx, t, "the thumbnailer to cut the response off", func() bool {
				return strings.Count(th.Logs(), logged) > before
			})
			n, err := io.Copy(io.Discard, body)
			if n >= size {
				t.Fatalf("read %d of %d bytes (%v): the response was not cut off", n, size, err)
			}
			t.Logf("read %d of %d bytes: %v", n, size, err)
		})
	}
}
