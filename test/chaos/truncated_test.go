package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cutUpload sends a POST of path to addr whose body is body, framed as
// frame says, and half-closes the connection before the body is whole: a
// client whose upload was cut off (a dropped proxy, a killed process
// behind a load balancer that half-closes) and that still reads the
// answer. It returns the answer's status and body.
func cutUpload(ctx context.Context, addr, path, cookie string, body []byte, frame string) (int, []byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: chaos\r\nContent-Type: image/png\r\n", path)
	if cookie != "" {
		fmt.Fprintf(&head, "Cookie: %s\r\n", cookie)
	}
	var wire []byte
	switch frame {
	case "content-length over":
		// The whole image, but a Content-Length 100 bytes longer.
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", len(body)+100)
		wire = body
	case "content-length half":
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", len(body))
		wire = body[:len(body)/2]
	case "chunked without last chunk":
		// The whole image in one chunk, and no zero-length chunk to end
		// the body.
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		wire = fmt.Appendf(nil, "%x\r\n%s\r\n", len(body), body)
	case "chunked cut mid-chunk":
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		wire = fmt.Appendf(nil, "%x\r\n%s", len(body), body[:len(body)/2])
	default:
		return 0, nil, fmt.Errorf("unknown framing %q", frame)
	}
	if _, err := io.WriteString(conn, head.String()); err != nil {
		return 0, nil, fmt.Errorf("write headers: %w", err)
	}
	if _, err := conn.Write(wire); err != nil {
		return 0, nil, fmt.Errorf("write body: %w", err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, nil, fmt.Errorf("half-close: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("read response body: %w", err)
	}
	return resp.StatusCode, b, nil
}

// TestCutOffUploadsAreRefused sends a valid image to the thumbnailer and
// the gallery in bodies that end before their framing says they do: a
// Content-Length longer than what was sent, a chunked body without its
// last chunk, each cut at the image's end or in its middle. An incomplete
// message must not be handled as a whole one (RFC 9112, section 8): each
// must be answered 400 with a JSON error saying the image was not
// received in full, never a thumbnail of what happened to arrive (nor,
// at the gallery, an entry in the user's history).
func TestCutOffUploadsAreRefused(t *testing.T) {
	th := startThumbnailer(t)
	g := startGallery(t, "THUMBNAILER_ADDRS="+th.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cookie := login(ctx, t, &http.Client{Timeout: 10 * time.Second}, g.URL("/v1/login"))
	img := pngBody(t)
	frames := []string{"content-length over", "content-length half", "chunked without last chunk", "chunked cut mid-chunk"}
	tests := []struct {
		name         string
		addr, cookie string
	}{
		{"thumbnailer", th.Addr, ""},
		{"gallery", g.Addr, cookie},
	}
	for _, tt := range tests {
		for i, frame := range frames {
			t.Run(tt.name+"/"+frame, func(t *testing.T) {
				// A size of its own: no answer comes from a cache.
				path := fmt.Sprintf("/v1/thumbnails?width=%d&height=16", 16+i)
				code, body, err := cutUpload(ctx, tt.addr, path, tt.cookie, img, frame)
				if err != nil {
					t.Fatal(err)
				}
				var e struct{ Error string }
				if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "not be read in full") {
					t.Errorf("status %d, body %.200q; want 400 with a JSON error saying the image could not be read in full", code, body)
				}
			})
		}
	}
}
