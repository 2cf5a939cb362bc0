package gallery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
)

// An upstream that sheds (503 with Retry-After) reaches the gallery's
// caller as a 503 with the same Retry-After, so the caller backs off;
// other upstream failures stay a 502.
func TestUpstreamErrorMapping(t *testing.T) {
	tests := []struct {
		name           string
		status         int
		retryAfter     string
		wantStatus     int
		wantRetryAfter string
	}{
		{name: "shedding", status: http.StatusServiceUnavailable, retryAfter: "2", wantStatus: http.StatusServiceUnavailable, wantRetryAfter: "2"},
		{name: "503 without Retry-After", status: http.StatusServiceUnavailable, wantStatus: http.StatusBadGateway},
		{name: "500 with Retry-After", status: http.StatusInternalServerError, retryAfter: "2", wantStatus: http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
			})
			url, c := newGallery(t, up, gallery.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", strings.NewReader("img"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Retry-After") != tt.wantRetryAfter {
				t.Fatalf("got %d with Retry-After %q, want %d with %q", resp.StatusCode, resp.Header.Get("Retry-After"), tt.wantStatus, tt.wantRetryAfter)
			}
		})
	}
}

// hostileBody streams up to size bytes of zeros in 64 KiB writes (with a
// Content-Length of size when declared, chunked otherwise) until the
// gallery stops reading, and counts what it managed to send.
type hostileBody struct {
	status   int
	size     int64
	declared bool
	sent     atomic.Int64
	done     chan struct{} // closed when the handler returns
}

func (h *hostileBody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer close(h.done)
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "image/png")
	if h.declared {
		w.Header().Set("Content-Length", strconv.FormatInt(h.size, 10))
	}
	w.WriteHeader(h.status)
	chunk := make([]byte, 64<<10)
	for left := h.size; left > 0; {
		n, err := w.Write(chunk[:min(left, int64(len(chunk)))])
		h.sent.Add(int64(n))
		left -= int64(n)
		if err != nil {
			return
		}
	}
}

// TestUpstreamBodyIsBounded: a thumbnailer answering far more than the
// thumbnail asked for can take (1 GiB, with or without a Content-Length)
// gets the caller a 502 with a JSON error, and one answering an error of
// 1 GiB the error's status with a message of the gallery's own; the
// gallery allocates a few megabytes for it at most, and stops reading
// (the thumbnailer cannot send the gigabyte). At the limit, the answer
// passes.
func TestUpstreamBodyIsBounded(t *testing.T) {
	const gib = 1 << 30
	limit := thumbnail.MaxResultBytes(thumbnail.Options{Width: 8, Height: 8})
	tests := []struct {
		name       string
		status     int
		size       int64
		declared   bool
		wantStatus int
		wantError  string
	}{
		{"1 GiB declared", http.StatusOK, gib, true, http.StatusBadGateway, "larger than 4360 bytes, the most a 8x8 thumbnail takes"},
		{"1 GiB chunked", http.StatusOK, gib, false, http.StatusBadGateway, "larger than 4360 bytes, the most a 8x8 thumbnail takes"},
		{"1 GiB error", http.StatusBadRequest, gib, false, http.StatusBadRequest, "the thumbnailer refused the image"},
		{"one byte over, chunked", http.StatusOK, limit + 1, false, http.StatusBadGateway, "larger than 4360 bytes"},
		{"at the limit", http.StatusOK, limit, true, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &hostileBody{status: tt.status, size: tt.size, declared: tt.declared, done: make(chan struct{})}
			url, c := newGallery(t, up, gallery.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", strings.NewReader("img"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			select {
			case <-up.done:
			case <-ctx.Done():
				t.Fatalf("the upstream is still sending: %d bytes so far", up.sent.Load())
			}
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d, %d bytes; upstream sent %d bytes; %d bytes allocated", resp.StatusCode, len(body), up.sent.Load(), allocated)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantError != "" {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, tt.wantError) {
					t.Errorf("body %s, want a JSON error holding %q", body, tt.wantError)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
			}
			if allocated > 64<<20 {
				t.Errorf("the request allocated %d bytes", allocated)
			}
			if sent := up.sent.Load(); sent > 64<<20 {
				t.Errorf("the gallery let the upstream send %d bytes", sent)
			}
		})
	}
}

// TestHostileUpstreamAnswers: whatever a broken or hostile thumbnailer
// answers, the gallery's answer is its own: a JSON error or a PNG or JPEG,
// with nosniff; the thumbnailer's error body and Content-Type never pass
// (a message from a JSON error does, escaped); a Retry-After passes only
// as one delay of 0 to 3600 seconds; X-Served-By only as a short
// printable name; nothing else of the thumbnailer's headers.
func TestHostileUpstreamAnswers(t *testing.T) {
	const script = `<script>alert(document.cookie)</script>`
	longName := strings.Repeat("a", 300)
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string

		wantStatus     int
		wantType       string
		wantError      string // in the JSON error; "" for an image
		wantRetryAfter string
		wantServedBy   string
	}{
		{name: "400 html with a script", status: 400, header: http.Header{"Content-Type": {"text/html"}}, body: script,
			wantStatus: 400, wantType: "application/json", wantError: "the thumbnailer refused the image"},
		{name: "400 json", status: 400, header: http.Header{"Content-Type": {"application/json"}}, body: `{"error":"thumbnail: bad image: not a PNG, JPEG or GIF"}`,
			wantStatus: 400, wantType: "application/json", wantError: "thumbnail: bad image: not a PNG, JPEG or GIF"},
		{name: "400 json with a script", status: 400, header: http.Header{"Content-Type": {"application/json"}}, body: `{"error":"` + script + `"}`,
			wantStatus: 400, wantType: "application/json", wantError: script},
		{name: "413 json, other charset", status: 413, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: `{"error":"too large"}`,
			wantStatus: 413, wantType: "application/json", wantError: "too large"},
		{name: "400 json that is not", status: 400, header: http.Header{"Content-Type": {"application/json"}}, body: script,
			wantStatus: 400, wantType: "application/json", wantError: "the thumbnailer refused the image"},
		{name: "400 sniffable, no type", status: 400, body: "<html>" + script,
			wantStatus: 400, wantType: "application/json", wantError: "the thumbnailer refused the image"},
		{name: "400 json message too long", status: 400, header: http.Header{"Content-Type": {"application/json"}}, body: `{"error":"` + strings.Repeat("x", 5000) + `"}`,
			wantStatus: 400, wantType: "application/json", wantError: "the thumbnailer refused the image"},
		{name: "404 html", status: 404, header: http.Header{"Content-Type": {"text/html"}}, body: script,
			wantStatus: 502, wantType: "application/json", wantError: "thumbnailer failed with status 404"},
		{name: "401 with a cookie", status: 401, header: http.Header{"Set-Cookie": {"session=stolen"}, "Www-Authenticate": {"Basic"}},
			wantStatus: 502, wantType: "application/json", wantError: "thumbnailer failed with status 401"},
		{name: "503 Retry-After 2", status: 503, header: http.Header{"Retry-After": {"2"}},
			wantStatus: 503, wantType: "application/json", wantError: "shedding", wantRetryAfter: "2"},
		{name: "503 Retry-After 0", status: 503, header: http.Header{"Retry-After": {"0"}},
			wantStatus: 503, wantType: "application/json", wantError: "shedding", wantRetryAfter: "0"},
		{name: "503 Retry-After 3600", status: 503, header: http.Header{"Retry-After": {"3600"}},
			wantStatus: 503, wantType: "application/json", wantError: "shedding", wantRetryAfter: "3600"},
		{name: "503 Retry-After leading zeros", status: 503, header: http.Header{"Retry-After": {"0007"}},
			wantStatus: 503, wantType: "application/json", wantError: "shedding", wantRetryAfter: "7"},
		{name: "503 Retry-After 3601", status: 503, header: http.Header{"Retry-After": {"3601"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After huge", status: 503, header: http.Header{"Retry-After": {"99999999999999999999999"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After HTTP-date", status: 503, header: http.Header{"Retry-After": {"Fri, 31 Dec 1999 23:59:59 GMT"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After negative", status: 503, header: http.Header{"Retry-After": {"-1"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After signed", status: 503, header: http.Header{"Retry-After": {"+5"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After fraction", status: 503, header: http.Header{"Retry-After": {"1.5"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After two values", status: 503, header: http.Header{"Retry-After": {"1", "2"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "503 Retry-After list", status: 503, header: http.Header{"Retry-After": {"1, 2"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		// The upstream's server turns CR and LF into spaces: the value
		// arrives as "2  Set-Cookie: x=y", no header of its own.
		{name: "503 Retry-After with CRLF", status: 503, header: http.Header{"Retry-After": {"2\r\nSet-Cookie: x=y"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 503"},
		{name: "500 Retry-After", status: 500, header: http.Header{"Retry-After": {"2"}},
			wantStatus: 502, wantType: "application/json", wantError: "status 500"},
		{name: "200 html with a script", status: 200, header: http.Header{"Content-Type": {"text/html"}}, body: script,
			wantStatus: 502, wantType: "application/json", wantError: "other than a PNG or JPEG"},
		{name: "200 svg", status: 200, header: http.Header{"Content-Type": {"image/svg+xml"}}, body: `<svg onload="alert(1)"/>`,
			wantStatus: 502, wantType: "application/json", wantError: "other than a PNG or JPEG"},
		{name: "200 no type", status: 200, body: "<html>" + script,
			wantStatus: 502, wantType: "application/json", wantError: "other than a PNG or JPEG"},
		{name: "200 png", status: 200, header: http.Header{"Content-Type": {"image/png"}, "X-Served-By": {"thumbnailer-7f9c@10.0.0.7:8080"}}, body: "\x89PNG",
			wantStatus: 200, wantType: "image/png", wantServedBy: "thumbnailer-7f9c@10.0.0.7:8080"},
		{name: "200 jpeg with parameters", status: 200, header: http.Header{"Content-Type": {"image/jpeg; q=1"}}, body: "\xff\xd8",
			wantStatus: 200, wantType: "image/jpeg"},
		{name: "200 png, served by a script", status: 200, header: http.Header{"Content-Type": {"image/png"}, "X-Served-By": {script}}, body: "\x89PNG",
			wantStatus: 200, wantType: "image/png"},
		{name: "200 png, served by a long name", status: 200, header: http.Header{"Content-Type": {"image/png"}, "X-Served-By": {longName}}, body: "\x89PNG",
			wantStatus: 200, wantType: "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				for k, vs := range tt.header {
					w.Header()[k] = vs
				}
				if tt.header.Get("Content-Type") == "" {
					w.Header()["Content-Type"] = nil // no sniffing on this side either
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			url, c := newGallery(t, up, gallery.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", strings.NewReader("img"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != tt.wantStatus || h.Get("Content-Type") != tt.wantType {
				t.Fatalf("%d %s %q, want %d %s", resp.StatusCode, h.Get("Content-Type"), body, tt.wantStatus, tt.wantType)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			if got := h.Values("Retry-After"); (tt.wantRetryAfter == "" && len(got) != 0) || (tt.wantRetryAfter != "" && (len(got) != 1 || got[0] != tt.wantRetryAfter)) {
				t.Errorf("Retry-After %q, want %q", got, tt.wantRetryAfter)
			}
			if got := h.Get("X-Upstream-Served-By"); got != tt.wantServedBy {
				t.Errorf("X-Upstream-Served-By %q, want %q", got, tt.wantServedBy)
			}
			for _, k := range []string{"Www-Authenticate", "X-Served-By"} {
				if v := h.Values(k); len(v) != 0 {
					t.Errorf("the thumbnailer's %s reached the caller: %q", k, v)
				}
			}
			for _, c := range h.Values("Set-Cookie") { // the gallery's own session cookie may be
				if strings.Contains(c, "stolen") || strings.Contains(c, "x=y") {
					t.Errorf("the thumbnailer's cookie reached the caller: %q", c)
				}
			}
			if tt.wantError == "" {
				if string(body) != tt.body {
					t.Errorf("body %q, want the thumbnail %q", body, tt.body)
				}
				return
			}
			if bytes.Contains(body, []byte("<")) {
				t.Errorf("body %q holds markup", body)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, tt.wantError) {
				t.Errorf("body %q, want a JSON error holding %q", body, tt.wantError)
			}
		})
	}
}
