package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/server"
)

// TestMinBodyRate reproduces the slow-body outage at its root: a body that
// stalls after its first byte is cut off once it falls behind the minimum
// rate, over HTTP/1.1 and on one stream of an h2c connection, while a body
// that keeps up is read in full.
func TestMinBodyRate(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		name := "http1"
		if h2c {
			name = "h2c"
		}
		t.Run(name, func(t *testing.T) {
			errs := make(chan error, 2)
			srv := server.New(server.Config{H2C: h2c, MinBodyRate: 1000, BodyRateGrace: 200 * time.Millisecond},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, err := io.Copy(io.Discard, r.Body)
					errs <- err
				}))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Close()

			var protos http.Protocols
			protos.SetHTTP1(!h2c)
			protos.SetUnencryptedHTTP2(h2c)
			tr := &http.Transport{Protocols: &protos}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 20 * time.Second}

			// Keeps up: 20 KB at once.
			resp, err := client.Post("http://"+ln.Addr().String(), "text/plain", bytes.NewReader(make([]byte, 20<<10)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := <-errs; err != nil {
				t.Fatalf("a body that kept up: %v", err)
			}

			// Stalls: one byte, then nothing until the test ends.
			pr, pw := io.Pipe()
			defer pw.Close()
			go pw.Write([]byte{1})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+ln.Addr().String(), pr)
			req.ContentLength = 1 << 20
			start := time.Now()
			go func() {
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			select {
			case err := <-errs:
				if !errors.Is(err, server.ErrBodyTooSlow) {
					t.Fatalf("stalled body: %v, want ErrBodyTooSlow", err)
				}
				t.Logf("stalled body cut off after %v", time.Since(start).Round(time.Millisecond))
			case <-ctx.Done():
				t.Fatal("stalled body never cut off")
			}
		})
	}
}

// TestMinBodyRateCountsOnlyTheClientsTime has a handler read the first
// byte of a body the client sent whole, then stop reading for longer than
// the grace (as one waiting for memory to hold the body does), then read
// the rest: the client sent at once and waited on the server, so its body
// is read in full, over HTTP/1.1 and h2c.
func TestMinBodyRateCountsOnlyTheClientsTime(t *testing.T) {
	const pause = 1500 * time.Millisecond
	for _, h2c := range []bool{false, true} {
		name := "http1"
		if h2c {
			name = "h2c"
		}
		t.Run(name, func(t *testing.T) {
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			// At 1 MB/s what the connection has buffered buys the
			// client milliseconds, not the pause.
			addr := serveOn(t, server.New(server.Config{H2C: h2c, MinBodyRate: 1 << 20, BodyRateGrace: 200 * time.Millisecond},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var first [1]byte
					if _, err := io.ReadFull(r.Body, first[:]); err != nil {
						done <- result{0, err}
						return
					}
					time.Sleep(pause) // the server's own wait, not the client's
					n, err := io.Copy(io.Discard, r.Body)
					done <- result{n + 1, err}
				})))
			client := newClient(t, h2c)
			const size = 256 << 10 // more than the connection's buffers hold
			go func() {
				if resp, err := client.Post("http://"+addr, "application/octet-stream", bytes.NewReader(make([]byte, size))); err == nil {
					resp.Body.Close()
				}
			}()
			select {
			case r := <-done:
				if r.err != nil || r.n != size {
					t.Fatalf("read %d of %d bytes: %v; want the whole body", r.n, size, r.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the handler never finished")
			}
		})
	}
}
