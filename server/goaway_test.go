package server_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/shoal-dev/shoal/server"
)

// TestH2CGoAway speaks raw HTTP/2 frames to show what a client sees when a
// connection reaches its request limit: the response, then a graceful
// GOAWAY (NO_ERROR) naming the last stream served, and no Connection header.
func TestH2CGoAway(t *testing.T) {
	tests := []struct {
		name       string
		limit      int
		requests   int
		wantGoAway bool
	}{
		{"under limit", 3, 2, false},
		{"at limit", 3, 3, true},
		{"limit 1", 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, server.Config{H2C: true, MaxConnRequests: tt.limit})
			conn, err := net.Dial("tcp", rec.url[len("http://"):])
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(conn, conn)
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			var hbuf bytes.Buffer
			enc := hpack.NewEncoder(&hbuf)
			dec := hpack.NewDecoder(4096, nil)

			var goAway *http2.GoAwayFrame
			for i := range tt.requests {
				stream := uint32(2*i + 1)
				hbuf.Reset()
				for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "test"}, {":path", "/"}} {
					enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
				}
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
				// Read until this stream ends; a GOAWAY may come before or after.
				for ended := false; !ended; {
					f, err := fr.ReadFrame()
					if err != nil {
						t.Fatalf("stream %d: %v", stream, err)
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.HeadersFrame:
						fields, err := dec.DecodeFull(f.HeaderBlockFragment())
						if err != nil {
							t.Fatal(err)
						}
						for _, hf := range fields {
							if hf.Name == "connection" {
								t.Errorf("HTTP/2 response carries a Connection header: %q", hf.Value)
							}
							if hf.Name == ":status" && hf.Value != "200" {
								t.Errorf("stream %d status %s", stream, hf.Value)
							}
						}
						ended = f.StreamEnded()
					case *http2.DataFrame:
						ended = f.StreamEnded()
					case *http2.GoAwayFrame:
						goAway = f
					}
				}
			}
			if !tt.wantGoAway {
				if goAway != nil {
					t.Fatalf("GOAWAY %v before the limit", goAway)
				}
				return
			}
			for goAway == nil {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("waiting for GOAWAY: %v", err)
				}
				if g, ok := f.(*http2.GoAwayFrame); ok {
					goAway = g
				}
			}
			if last := uint32(2*tt.requests - 1); goAway.ErrCode != http2.ErrCodeNo || goAway.LastStreamID != last {
				t.Fatalf("GOAWAY code %v last stream %d, want NO_ERROR and %d", goAway.ErrCode, goAway.LastStreamID, last)
			}
			// With no stream left open, the server then closes the connection.
			for {
				if _, err := fr.ReadFrame(); err != nil {
					if err != io.EOF {
						t.Logf("connection ended with %v", err)
					}
					break
				}
			}
		})
	}
}

// An h2c client that resets every stream it opens, as a rapid-reset
// flood does, has its connection closed once its resets pass the limit;
// the handler runs for few of them. A client that resets a few of many
// streams keeps its connection.
func TestH2CRapidResetClosesTheConnection(t *testing.T) {
	tests := []struct {
		name      string
		streams   int
		resetEach int // reset every resetEach-th stream; 1 resets them all
		wantClose bool
	}{
		{"every stream reset", 2000, 1, true},
		{"one in ten reset", 2000, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ran atomic.Int64
			// Uploads: a handler waits for the body, which never comes,
			// so a reset finds it running unless it had not started.
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ran.Add(1)
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			})
			var closes closeCounter
			// At net/http's own 250 streams a connection, so that the
			// reset streams reach the handler chain whose rule this tests:
			// at the default 8, net/http drops a stream reset while its
			// handler waits for a turn, and on a loaded machine it drops
			// nearly all of them, which leaves the rule nothing to count.
			addr := limitServer(t, server.Config{H2C: true, OnClose: closes.add, MaxConnStreams: 250}, h, nil)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(conn, conn)
			if err := fr.WriteSettings(); err != nil {
				t.Fatal(err)
			}
			// The server's frames are read and dropped, so its writes
			// never block; the reader ends when the connection does.
			readDone := make(chan error, 1)
			go func() {
				for {
					if _, err := fr.ReadFrame(); err != nil {
						readDone <- err
						return
					}
				}
			}()
			var hbuf bytes.Buffer
			enc := hpack.NewEncoder(&hbuf)
			enc.SetMaxDynamicTableSize(0)
			for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "test"}, {":path", "/"}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			block := hbuf.Bytes()
			writeErr := error(nil)
			for i := range tt.streams {
				id := uint32(2*i + 1)
				if writeErr = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); writeErr != nil {
					break
				}
				if i%tt.resetEach == 0 {
					writeErr = fr.WriteRSTStream(id, http2.ErrCodeCancel)
				} else {
					writeErr = fr.WriteData(id, true, nil) // an empty body, ended
				}
				if writeErr != nil {
					break
				}
			}
			var closed bool
			if tt.wantClose {
				// The close shows as a failed write or the reader's end.
				select {
				case <-readDone:
					closed = true
				case <-time.After(30 * time.Second):
				}
				closed = closed || writeErr != nil
			} else {
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				select {
				case err := <-readDone:
					var ne net.Error
					closed = !(errors.As(err, &ne) && ne.Timeout())
				case <-time.After(30 * time.Second):
				}
			}
			if closed != tt.wantClose {
				t.Errorf("connection closed: %v, want %v (write error %v; handler ran %d times for %d streams)", closed, tt.wantClose, writeErr, ran.Load(), tt.streams)
			}
			want := 0
			if tt.wantClose {
				want = 1
			}
			closes.wait(t, server.CloseResets, want)
			t.Logf("handler ran %d times for %d streams", ran.Load(), tt.streams)
		})
	}
}
