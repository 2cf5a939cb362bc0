//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// request sends one request and returns the replica that answered.
type request func(ctx context.Context) (servedBy string, err error)

// newConnClient opens a new TCP connection for every request, so each one
// is a fresh choice of kube-proxy's Service rules.
func newConnClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

// httpRequest builds a request func: method and url fixed, body made fresh
// per call, any status in ok counted as success.
func httpRequest(c *http.Client, method, url, contentType string, body func() io.Reader, ok ...int) request {
	return func(ctx context.Context) (string, error) {
		var b io.Reader
		if body != nil {
			b = body()
		}
		req, err := http.NewRequestWithContext(ctx, method, url, b)
		if err != nil {
			return "", err
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return "", fmt.Errorf("read body: %w", err)
		}
		by := resp.Header.Get("X-Served-By")
		for _, code := range ok {
			if resp.StatusCode == code {
				if by == "" {
					return "", fmt.Errorf("%s %s: %d without X-Served-By", method, url, resp.StatusCode)
				}
				return by, nil
			}
		}
		return by, fmt.Errorf("%s %s: status %d", method, url, resp.StatusCode)
	}
}

// spread sends n requests one after another and counts them per replica.
func spread(ctx context.Context, do request, n int) (map[string]int, error) {
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		by, err := do(ctx)
		if err != nil {
			return counts, fmt.Errorf("request %d: %w", i, err)
		}
		counts[by]++
	}
	return counts, nil
}

// loadResult sums up a steady load run.
type loadResult struct {
	OK, Failed int
	Errors     []string // the first few failures
	ServedBy   map[string]int
}

// steadyLoad runs workers that each send one request per interval until ctx
// ends or stop is closed. It is bounded by ctx's deadline.
func steadyLoad(ctx context.Context, stop <-chan struct{}, workers int, interval time.Duration, do request) loadResult {
	var (
		mu  sync.Mutex
		res = loadResult{ServedBy: map[string]int{}}
		wg  sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-stop:
					return
				case <-tick.C:
				}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				by, err := do(rctx)
				cancel()
				if ctx.Err() != nil {
					return // the run's own deadline, not a lost request
				}
				mu.Lock()
				if err != nil {
					res.Failed++
					if len(res.Errors) < 10 {
						res.Errors = append(res.Errors, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
				} else {
					res.OK++
					res.ServedBy[by]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return res
}
