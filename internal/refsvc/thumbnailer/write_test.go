package thumbnailer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
)

// noisePNG is a w×h PNG of random pixels, whose thumbnails compress no
// better than it does.
func noisePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rand.Read(img.Pix)
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// smallBuffers sets a small send buffer on every accepted connection, so
// that a client that does not read blocks the server's writes after tens
// of kilobytes instead of the megabytes the kernel would buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// newSmallBufferAPI serves cfg's API over HTTP/1.1 and h2c on a listener
// with small send buffers.
func newSmallBufferAPI(t *testing.T, cfg Config) (*API, *httptest.Server) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	api, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = smallBuffers{srv.Listener}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protos
	srv.Start()
	t.Cleanup(srv.Close)
	return api, srv
}

// unreadRequest posts body for a thumbnail of query over HTTP/1.1 on a
// connection with a small receive buffer, reads the response's headers
// and nothing more. The connection is closed when the test ends.
func unreadRequest(t *testing.T, addr, query string, body []byte) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(conn, "POST /v1/thumbnails?%s HTTP/1.1\r\nHost: thumbnailer\r\nContent-Length: %d\r\n\r\n", query, len(body))
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// eventually polls cond every 5ms until it holds, failing the test after
// 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within 30s", what)
		case <-tick.C:
		}
	}
}

// TestUnreadResultHoldsOnlyItsBytes: while a client does not read its
// result, the request holds the result's bytes in the results budget and
// nothing of the uploads or images budgets, which the next request can
// have in full at once.
func TestUnreadResultHoldsOnlyItsBytes(t *testing.T) {
	api, srv := newSmallBufferAPI(t, Config{MemoryWait: -1, WriteStall: -1})
	conn, _, resp := unreadRequest(t, srv.Listener.Addr().String(), "width=512&height=512&fit=fill", noisePNG(t, 128, 128))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "miss" {
		t.Fatalf("status %d, X-Cache %q, want a 200 miss", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	size := resp.ContentLength
	if size < 512<<10 {
		t.Fatalf("a %d-byte result is too small to fill the buffers", size)
	}
	eventually(t, "the request holding its result's bytes only", func() bool {
		return api.results.inUse() == size && api.images.InUse() == 0 && api.uploads.InUse() == 0
	})
	release, err := api.images.Acquire(context.Background(), api.images.Capacity())
	if err != nil {
		t.Fatalf("the whole images budget while a result is unread: %v", err)
	}
	release()
	conn.Close()
	eventually(t, "the result's bytes released once the client left", func() bool { return api.results.inUse() == 0 })
}

// TestWriteStallCutsOffANonReader: a client that stops reading its result
// is cut off WriteStall after the buffers fill, over HTTP/1.1 and h2c,
// and the request releases the result's memory; a cached result (a hit)
// alike.
func TestWriteStallCutsOffANonReader(t *testing.T) {
	const stall = 100 * time.Millisecond
	api, srv := newSmallBufferAPI(t, Config{WriteStall: stall})
	img := pngBytes(t, 20, 20)
	// A cached result larger than the h2c client's flow-control windows
	// (4 MiB a stream) and every buffer in between.
	opts := thumbnail.Options{Width: 4000, Height: 4000}
	big := make([]byte, 12<<20) // within DefaultCacheBytes
	api.cache.Add(thumbnail.Key{Digest: thumbnail.Digest(img), Options: opts}, thumbnail.Entry{Data: big, ContentType: "image/png"})
	query := "width=4000&height=4000"

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn, br, resp := unreadRequest(t, srv.Listener.Addr().String(), query, img)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "hit" {
			t.Fatalf("status %d, X-Cache %q, want a 200 hit", resp.StatusCode, resp.Header.Get("X-Cache"))
		}
		eventually(t, "the result's bytes released", func() bool { return api.results.inUse() == 0 })
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, br)
		if n >= resp.ContentLength {
			t.Fatalf("read %d of %d bytes (%v): the response was not cut off", n, resp.ContentLength, err)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Post(srv.URL+"/v1/thumbnails?"+query, "image/png", bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
		}
		eventually(t, "the result's bytes released", func() bool { return api.results.inUse() == 0 })
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil || n >= resp.ContentLength {
			t.Fatalf("read %d of %d bytes (%v): the stream was not cut off", n, resp.ContentLength, err)
		}
	})
}

// TestResultsBudgetSpentAnswers503: a result that finds the results budget
// spent by no one it may cut off is answered 503 with Retry-After after
// MemoryWait, releasing the rest of its memory, and the retry finds it
// cached.
func TestResultsBudgetSpentAnswers503(t *testing.T) {
	api, srv := newAPI(t, Config{MemoryWait: 100 * time.Millisecond})
	// Held by no writer: nothing to cut off.
	held, err := api.results.acquire(context.Background(), nil, api.results.capacity, 0)
	if err != nil {
		t.Fatal(err)
	}
	release := func() { api.results.release(held) }
	img := pngBytes(t, 40, 40)
	post := func() (*http.Response, []byte) {
		resp, err := http.Post(srv.URL+"/v1/thumbnails?width=16&height=16", "image/png", bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := post()
	var e struct{ Error string }
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || e.Error == "" {
		t.Fatalf("status %d, Retry-After %q, body %s; want 503 with Retry-After 1 and an error", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if api.images.InUse() != 0 || api.uploads.InUse() != 0 {
		t.Fatalf("after the 503: images %d, uploads %d still held", api.images.InUse(), api.uploads.InUse())
	}
	release()
	resp, body = post()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "hit" {
		t.Fatalf("retry: status %d, X-Cache %q: %s; want a 200 hit", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
	if got := strconv.Itoa(len(body)); resp.Header.Get("Content-Length") != got {
		t.Fatalf("Content-Length %s, body %s bytes", resp.Header.Get("Content-Length"), got)
	}
	if api.results.inUse() != 0 {
		t.Fatalf("results budget holds %d after the answer", api.results.inUse())
	}
}

// TestStalledWriterIsCutForAnotherResult: with no WriteStall, a client
// that stops reading keeps its result's bytes until another result needs
// them; then it is cut off once it has been stalled for cutAfter, and the
// other result is written.
func TestStalledWriterIsCutForAnotherResult(t *testing.T) {
	// 192 MiB: 96 − 32 (cache) − 16 = 48 MiB usable, 12 MiB for results.
	api, srv := newSmallBufferAPI(t, Config{MemoryLimit: 192 << 20, MaxBodyBytes: 4 << 20, MemoryWait: 20 * time.Second, WriteStall: -1})
	cached := func(img []byte, size int) string {
		opts := thumbnail.Options{Width: 4000, Height: 4000}
		api.cache.Add(thumbnail.Key{Digest: thumbnail.Digest(img), Options: opts}, thumbnail.Entry{Data: make([]byte, size), ContentType: "image/png"})
		return "width=4000&height=4000"
	}
	stuckImg, otherImg := pngBytes(t, 20, 20), pngBytes(t, 21, 21)
	stuckQuery := cached(stuckImg, 10<<20)
	otherQuery := cached(otherImg, 3<<20)

	conn, br, resp := unreadRequest(t, srv.Listener.Addr().String(), stuckQuery, stuckImg)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	other, err := http.Post(srv.URL+"/v1/thumbnails?"+otherQuery, "image/png", bytes.NewReader(otherImg))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, other.Body)
	other.Body.Close()
	if other.StatusCode != http.StatusOK || err != nil || n != 3<<20 {
		t.Fatalf("the other result: status %d, %d bytes read (%v)", other.StatusCode, n, err)
	}
	t.Logf("the other result written in %v", time.Since(start).Round(time.Millisecond))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, br); n >= resp.ContentLength {
		t.Fatalf("read %d of %d bytes (%v): the stalled client was not cut off", n, resp.ContentLength, err)
	}
	eventually(t, "the results budget empty", func() bool { return api.results.inUse() == 0 })
}
