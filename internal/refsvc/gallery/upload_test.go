package gallery_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
)

// TestUploadBytesBounded reproduces the gallery's OOM at its root: the
// bytes of uploads held at once are bounded, whatever the number of
// requests; past the bound an upload gets 503 with Retry-After.
func TestUploadBytesBounded(t *testing.T) {
	const maxBody = 100 << 10
	base, c, api := newGalleryAPI(t, &fakeThumbnailer{}, gallery.Config{MaxBodyBytes: maxBody, UploadBytes: 2 * maxBody, UploadWait: -1})
	u, _ := url.Parse(base)
	var cookie string
	for _, ck := range c.Jar.Cookies(u) {
		cookie += ck.Name + "=" + ck.Value + "; "
	}
	upload := func() *http.Response {
		req, _ := http.NewRequest("POST", base+"/v1/thumbnails?width=8&height=8", bytes.NewReader(make([]byte, maxBody)))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := upload(); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload alone: %d", resp.StatusCode)
	}
	// The handler lets go of the upload's bytes after its answer is sent.
	waitInUse(t, api, 0)
	// Three uploads stop halfway; each holds what it sent, rounded up to
	// a 64 KiB step: 192 KiB of the 200.
	for range 3 {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/thumbnails?width=8&height=8 HTTP/1.1\r\nHost: gallery\r\nCookie: %s\r\nContent-Length: %d\r\n\r\n", cookie, maxBody)
		conn.Write(make([]byte, 60<<10))
	}
	// Wait for the stalled uploads to hold their share before the next
	// upload: one sent while they are still arriving would compete with
	// them, and any of them refused would leave room.
	waitInUse(t, api, 3*64<<10)
	resp := upload()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upload past the bound: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// waitInUse waits up to 30 s for the gallery's uploads to hold want bytes.
func waitInUse(t *testing.T, api *gallery.API, want int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); gallery.UploadBytesInUse(api) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("uploads hold %d bytes after 30 s, want %d", gallery.UploadBytesInUse(api), want)
		}
	}
}
