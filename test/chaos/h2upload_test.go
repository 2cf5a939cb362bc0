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

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// uploadBlock is an HPACK block for an upload to path over h2c declaring
// size bytes, with cookie when set; every field a literal, so that it can
// be sent again on the same connection.
func uploadBlock(addr, path, cookie string, size int) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.SetMaxDynamicTableSize(0)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: addr},
		{Name: "content-type", Value: "image/png"}, {Name: "content-length", Value: fmt.Sprint(size)},
	}
	if cookie != "" {
		fields = append(fields, hpack.HeaderField{Name: "cookie", Value: cookie})
	}
	for _, f := range fields {
		_ = enc.WriteField(f)
	}
	return buf.Bytes()
}

// h2Uploads is an attacker holding h2c uploads open on raw connections:
// each connection keeps as many uploads open as the server lets it (at
// most streams), each declaring a 10 MiB body and sending at once as much
// of data bytes as the server's flow-control windows take, in DATA
// frames as large as it reads (at most frame), and nothing more; a
// stream the server ends or resets is opened again. It takes everything
// the server offers: the memory the server spends on it is the server's
// settings' doing.
type h2Uploads struct {
	addr, path, cookie string
	conns, streams     int
	data, frame        int
	// opened counts streams opened, ended those the server ended.
	opened, ended atomic.Int64
}

// run attacks until ctx ends.
func (a *h2Uploads) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range a.conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				a.conn(ctx)
			}
		})
	}
	wg.Wait()
}

// h2Peer is what the server's frames told one attacking connection.
type h2Peer struct {
	mu       sync.Mutex
	changed  chan struct{}   // closed and replaced on every change
	settled  bool            // the server's first SETTINGS arrived
	streams  int             // its SETTINGS_MAX_CONCURRENT_STREAMS
	window   int             // its SETTINGS_INITIAL_WINDOW_SIZE
	frame    int             // its SETTINGS_MAX_FRAME_SIZE
	conn     int             // the connection's send window
	open     map[uint32]bool // streams open
	finished bool            // the connection is gone
}

func (p *h2Peer) update(f func()) {
	p.mu.Lock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// end counts stream id ended, once, in ended: a server ends a stream
// whose body it did not read with its answer and then a reset.
func (p *h2Peer) end(id uint32, ended *atomic.Int64) {
	p.update(func() {
		if p.open[id] {
			delete(p.open, id)
			ended.Add(1)
		}
	})
}

// wait returns once cond (called under p.mu) holds, false if the
// connection ended or ctx did first.
func (p *h2Peer) wait(ctx context.Context, cond func() bool) bool {
	for {
		p.mu.Lock()
		ok, finished, ch := cond(), p.finished, p.changed
		p.mu.Unlock()
		switch {
		case ok:
			return true
		case finished:
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// conn runs one connection until the server closes it or ctx ends.
func (a *h2Uploads) conn(ctx context.Context) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", a.addr)
	if err != nil {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return
	}
	wr := http2.NewFramer(c, nil)
	if wr.WriteSettings() != nil {
		return
	}
	p := &h2Peer{changed: make(chan struct{}), open: map[uint32]bool{}, streams: 100, window: 65535, frame: 16 << 10, conn: 65535}
	var reader sync.WaitGroup
	defer reader.Wait()
	defer c.Close()
	reader.Go(func() {
		defer p.update(func() { p.finished = true })
		rd := http2.NewFramer(io.Discard, c)
		rd.SetMaxReadFrameSize(1 << 24)
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if f.IsAck() {
					continue
				}
				p.update(func() {
					p.settled = true
					_ = f.ForeachSetting(func(s http2.Setting) error {
						switch s.ID {
						case http2.SettingMaxConcurrentStreams:
							p.streams = int(s.Val)
						case http2.SettingInitialWindowSize:
							p.window = int(s.Val)
						case http2.SettingMaxFrameSize:
							p.frame = int(s.Val)
						}
						return nil
					})
				})
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					p.update(func() { p.conn += int(f.Increment) })
				}
			case *http2.RSTStreamFrame:
				p.end(f.StreamID, &a.ended)
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					p.end(f.StreamID, &a.ended)
				}
			case *http2.DataFrame:
				if f.StreamEnded() {
					p.end(f.StreamID, &a.ended)
				}
			case *http2.GoAwayFrame:
				return
			}
		}
	})
	if !p.wait(ctx, func() bool { return p.settled }) {
		return
	}
	block := uploadBlock(a.addr, a.path, a.cookie, 10<<20)
	chunk := make([]byte, a.frame)
	for id := uint32(1); ; id += 2 {
		if !p.wait(ctx, func() bool { return len(p.open) < min(a.streams, p.streams) }) {
			return
		}
		p.update(func() { p.open[id] = true })
		if wr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}) != nil {
			return
		}
		a.opened.Add(1)
		p.mu.Lock()
		left := min(a.data, p.window)
		p.mu.Unlock()
		for left > 0 {
			var n int
			if !p.wait(ctx, func() bool {
				n = min(left, a.frame, p.frame, p.conn)
				return n > 0
			}) {
				return
			}
			p.update(func() { p.conn -= n })
			if wr.WriteData(id, false, chunk[:n]) != nil {
				return
			}
			left -= n
		}
	}
}

// TestH2CUploadsStayWithinTheMemoryLimit attacks each service over h2c
// on its public port with uploads that never finish, taking all the
// server's settings allow: connections each sending a body's first 1 MiB
// in one DATA frame (what net/http's default windows and frame size let
// through) and then nothing, and connections each holding as many
// streams as they may open, without a byte of body. Before the server
// bounded them, the first cost a mebibyte of frame buffer and one of
// unread body per connection (a gallery with 128 MiB peaked at 1.2 GiB
// under 400 connections, a thumbnailer with 256 MiB at 1.3 GiB under
// 600), and the second a goroutine and its request per stream, 250 a
// connection (a thumbnailer at 761 MiB under 300 connections, a gallery
// at 518 MiB under 200); neither is counted in the upload budget. Meanwhile an ordinary client
// uploads over HTTP/1.1: each upload must be answered, 200 or 503 with
// Retry-After (the attack may hold the whole upload budget, as slow
// HTTP/1.1 bodies can), and the process's peak RSS stay below the
// deploy kit's limit.
func TestH2CUploadsStayWithinTheMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		gallery bool
		conns   int
		streams int // most streams a connection keeps open
		data    int // body bytes sent on each stream
		frame   int // largest DATA frame
	}{
		{"gallery/1 MiB DATA frames on 400 connections", true, 400, 1, 1 << 20, 1 << 20},
		{"thumbnailer/1 MiB DATA frames on 600 connections", false, 600, 1, 1 << 20, 1 << 20},
		{"thumbnailer/streams without body on 1000 connections", false, 1000, 250, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			th := startThumbnailer(t, fmt.Sprintf("MEMORY_LIMIT=%d", deployMemoryLimit))
			target, limit := th, int64(deployMemoryLimit)
			var cookie string
			if tt.gallery {
				target = startGallery(t, "THUMBNAILER_ADDRS="+th.Addr, fmt.Sprintf("MEMORY_LIMIT=%d", galleryMemoryLimit))
				limit = galleryMemoryLimit
				cookie = login(ctx, t, &http.Client{Timeout: 10 * time.Second}, target.URL("/v1/login"))
			}
			a := &h2Uploads{addr: target.Addr, path: "/v1/thumbnails?width=32&height=32", cookie: cookie,
				conns: tt.conns, streams: tt.streams, data: tt.data, frame: tt.frame}
			attack, stopAttack := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { a.run(attack) })
			defer wg.Wait()
			defer stopAttack()
			waitFor(ctx, t, "a stream open on every attacking connection", func() bool {
				return a.opened.Load() >= int64(tt.conns)
			})

			img := pngBody(t)
			client := &http.Client{Timeout: 30 * time.Second}
			var mu sync.Mutex
			codes := map[int]int{}
			ordinary := func(ctx context.Context, i int) error {
				req, _ := http.NewRequestWithContext(ctx, "POST", target.URL(fmt.Sprintf("/v1/thumbnails?width=%d&height=16", 16+i%100)), bytes.NewReader(img))
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
				switch {
				case resp.StatusCode == http.StatusOK:
					return nil
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
					// A client honouring it waits; this one asks at once,
					// to keep the pressure on.
					return nil
				}
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			// The attack's streams wait for the upload budget (5s) or
			// for the body rate's grace (5s): ordinary uploads outlast
			// one such round.
			start := time.Now()
			res := loadResult{Errors: map[string]int{}}
			for time.Since(start) < 7*time.Second && ctx.Err() == nil {
				r := hammer(ctx, 2, 20, ordinary)
				res.OK, res.Failed = res.OK+r.OK, res.Failed+r.Failed
				for k, v := range r.Errors {
					res.Errors[k] += v
				}
			}
			peak := target.PeakRSS()
			stopAttack()
			t.Logf("%d streams opened, %d ended by the server; ordinary uploads: %v, answers %v; peak RSS %.1f MiB of %d MiB",
				a.opened.Load(), a.ended.Load(), res, codes, float64(peak)/(1<<20), limit>>20)
			if res.Failed > 0 {
				t.Errorf("ordinary uploads: %v; want each answered 200, or 503 with Retry-After", res)
			}
			if peak >= limit {
				t.Errorf("peak RSS %.1f MiB, at or above the %d MiB limit", float64(peak)/(1<<20), limit>>20)
			}
		})
	}
}
