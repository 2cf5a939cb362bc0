package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Protocols bench/stack loads a server with.
const (
	protoHTTP1 = "http1" // hey (Debian), as the earlier tables measured
	protoH2C   = "h2c"   // this program's own client, in a child process
)

// loadSpec is one measurement: what to send, to where, for how long.
type loadSpec struct {
	proto    string
	url      string
	method   string
	bodyFile string // "" for no body
	d        time.Duration
	conc     int
}

// loadRPS loads s.url and returns the answered requests per second; any
// status other than 200 fails the measurement. The load runs in another
// process in both modes so its garbage and goroutines are not counted
// against the server measured.
func loadRPS(hey string, s loadSpec) (float64, error) {
	if s.proto == protoHTTP1 {
		args := []string{"-z", s.d.String(), "-c", strconv.Itoa(s.conc), "-m", s.method}
		if s.bodyFile != "" {
			args = append(args, "-D", s.bodyFile, "-T", "image/jpeg")
		}
		return heyRPS(hey, append(args, s.url))
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	args := []string{"-load-client", "-duration", s.d.String(), "-concurrency", strconv.Itoa(s.conc),
		"-method", s.method, "-body", s.bodyFile, s.url}
	out, err := exec.Command(self, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("h2c load client: %w: %s", err, ee.Stderr)
		}
		return 0, fmt.Errorf("h2c load client: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// h2cLoad is the child process's job: conc closed-loop workers, each on
// its own HTTP/2 connection with prior knowledge (one stream in flight
// per connection, as hey keeps one request per HTTP/1.1 connection), for
// d; it prints the answered requests per second.
func h2cLoad(url, method, bodyFile string, d time.Duration, conc int) error {
	var body []byte
	if bodyFile != "" {
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			return err
		}
		body = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		ok     atomic.Int64
		failed atomic.Int64
		first  atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	for range conc {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos, DisableCompression: true}
		c := &http.Client{Transport: tr}
		wg.Go(func() {
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
				if err != nil {
					first.CompareAndSwap(nil, &err)
					cancel()
					return
				}
				if body == nil {
					req.Body = nil
				}
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						return // the measurement ended mid-request
					}
					// A request racing the GOAWAY the connection
					// limits send may fail; hey goes on after errors
					// too. Counted, and too many fail the run.
					if failed.Add(1) > 100 && failed.Load()*100 > ok.Load() {
						err = fmt.Errorf("%d requests failed, the last with %w", failed.Load(), err)
						first.CompareAndSwap(nil, &err)
						cancel()
						return
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err := fmt.Errorf("status %d", resp.StatusCode)
					first.CompareAndSwap(nil, &err)
					cancel()
					return
				}
				if ctx.Err() == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d requests failed\n", n)
	}
	// Only answers that arrived within d are counted.
	fmt.Printf("%.1f\n", float64(ok.Load())/d.Seconds())
	return nil
}
