package chaos

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMUnderKeepAliveLoad stops one of two replicas while clients
// POST to both over kept-alive connections, and counts what was lost: it
// must be nothing. The load goes through an endpoint list of both
// replicas, and the victim leaves the list only once its readiness has
// failed and it has answered requests in its drain, as kube-proxy drops a
// pod some time after its readiness fails. So requests reach the victim
// on connections it kept alive from before the SIGTERM (the ones the drain
// used to close under them), every later one carries Connection: close or
// GOAWAY, and none is sent after its drain ends.
func TestSIGTERMUnderKeepAliveLoad(t *testing.T) {
	const (
		workers = 4
		// count bounds the load, which stops anyway once the victim has
		// exited.
		count = 20000
		// drainDelay leaves the victim in its drain well after the test
		// has taken it out of the endpoint list.
		drainDelay = "4s"
		// inDrain is how many of the victim's answers after its readiness
		// failed make the test take it out of the list.
		inDrain = 40
	)
	thumbBody := pngBody(t)
	tests := []struct {
		name    string
		service string // gallery or thumbnailer
		h2c     bool
	}{
		{"gallery HTTP/1.1", "gallery", false},
		{"gallery h2c", "gallery", true},
		{"thumbnailer HTTP/1.1", "thumbnailer", false},
		{"thumbnailer h2c", "thumbnailer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{"DRAIN_DELAY=" + drainDelay, "H2C=true"}
			start, path, body := startThumbnailer, "/v1/thumbnails?width=16&height=16", thumbBody
			if tt.service == "gallery" {
				th := startThumbnailer(t)
				env = append(env, "THUMBNAILER_ADDRS="+addrsOf(th))
				start, path, body = startGallery, "/v1/login", []byte(`{"user":"chaos"}`)
			}
			victim, survivor := start(t, env...), start(t, env...)

			tr := &http.Transport{MaxIdleConnsPerHost: workers}
			var protos http.Protocols
			if tt.h2c {
				protos.SetUnencryptedHTTP2(true)
			} else {
				protos.SetHTTP1(true)
			}
			tr.Protocols = &protos
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

			var (
				endpoints atomic.Pointer[[]*proc]
				signalled atomic.Bool // set just before the SIGTERM
				failing   atomic.Bool // set once the victim's readiness failed
				served    atomic.Int64
				// Answers of the victim to requests sent after the SIGTERM,
				// after its readiness failed, and of those on a kept-alive
				// connection.
				afterSignal, inDrainSeen, keptAlive atomic.Int64
			)
			endpoints.Store(&[]*proc{victim, survivor})
			post := func(ctx context.Context, i int) error {
				eps := *endpoints.Load()
				p := eps[i%len(eps)]
				role := "survivor"
				if p == victim {
					role = "victim"
				}
				after, drained := signalled.Load(), failing.Load()
				var reused bool
				trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }}
				req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace),
					http.MethodPost, p.URL(path), bytes.NewReader(body))
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				switch {
				case err != nil && ctx.Err() != nil:
					return ctx.Err() // the test stopped the load
				case err != nil && resp == nil:
					return fmt.Errorf("%s: %w", role, err)
				case err != nil:
					return fmt.Errorf("%s: reading the response: %w", role, err)
				case resp.StatusCode != http.StatusOK:
					return fmt.Errorf("%s: %w", role, &statusError{resp.StatusCode})
				}
				served.Add(1)
				if p == victim && after {
					afterSignal.Add(1)
					if reused {
						keptAlive.Add(1)
					}
					if drained {
						inDrainSeen.Add(1)
					}
				}
				return nil
			}

			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			loadCtx, stopLoad := context.WithCancel(ctx)
			defer stopLoad()
			loaded := make(chan loadResult, 1)
			go func() { loaded <- hammer(loadCtx, workers, count, post) }()

			waitUntil(t, ctx, "load to flow", func() bool { return served.Load() >= 200 })
			signalled.Store(true)
			victim.Signal(syscall.SIGTERM)
			signalledAt := time.Now()
			waitUntil(t, ctx, "the victim's readiness to fail", func() bool { return readyz(victim) == http.StatusServiceUnavailable })
			failing.Store(true)
			waitUntil(t, ctx, "the victim to answer in its drain", func() bool { return inDrainSeen.Load() >= inDrain })
			endpoints.Store(&[]*proc{survivor})
			dropped := time.Since(signalledAt)

			if err := victim.Wait(ctx); err != nil {
				t.Errorf("victim after SIGTERM: %v", err)
			}
			stopLoad()
			res := <-loaded
			t.Logf("%v; the victim answered %d requests sent after SIGTERM (%d on kept-alive connections) and left the endpoints %v after it",
				res, afterSignal.Load(), keptAlive.Load(), dropped.Round(time.Millisecond))
			if res.Failed > 0 {
				t.Errorf("%d requests failed around the SIGTERM", res.Failed)
			}
			if keptAlive.Load() == 0 {
				t.Errorf("no request reached the victim on a kept-alive connection after SIGTERM: the test proves nothing")
			}
		})
	}
}

// readyz is the status of p's /readyz, or 0 when it does not answer.
func readyz(p *proc) int {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(p.AdminURL("/readyz"))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitUntil polls cond until it holds, failing the test when ctx ends
// first.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// pngBody is a small PNG for the thumbnailer.
func pngBody(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for x := range 64 {
		img.Set(x, x, color.RGBA{R: 200, A: 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
