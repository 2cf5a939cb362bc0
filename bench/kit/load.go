package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// loadResult is what one closed-loop phase measured.
type loadResult struct {
	ok      int            // 200 responses
	errors  map[string]int // by kind: "http_503", "transport"
	elapsed time.Duration  // from the first request sent to the last response read
	latency []time.Duration
}

func (r loadResult) errorCount() int {
	n := 0
	for _, c := range r.errors {
		n += c
	}
	return n
}

// rate is the 200 responses per second.
func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// percentile returns the q-quantile (0 < q <= 1) of the latencies by the
// nearest-rank method; latency must be sorted.
func (r loadResult) percentile(q float64) time.Duration {
	if len(r.latency) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.latency)))) - 1
	return r.latency[min(max(i, 0), len(r.latency)-1)]
}

// newLoadClient returns a client that keeps one connection per worker.
func newLoadClient(conc int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns:        conc,
			MaxIdleConnsPerHost: conc,
			MaxConnsPerHost:     conc,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// drive sends GET url from conc workers, each sending its next request
// when the previous response has been read, until d has passed or ctx
// ends. Requests started before the end are completed and counted.
func drive(ctx context.Context, client *http.Client, url string, conc int, d time.Duration) loadResult {
	type worker struct {
		ok      int
		errors  map[string]int
		latency []time.Duration
	}
	workers := make([]worker, conc)
	began := time.Now()
	end := began.Add(d)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.errors = make(map[string]int)
		w.latency = make([]time.Duration, 0, 1<<14)
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				w.errors["request"]++
				return
			}
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						w.errors["transport"]++
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat := time.Since(t0)
				switch {
				case err != nil:
					w.errors["body"]++
				case resp.StatusCode != http.StatusOK:
					w.errors["http_"+strconv.Itoa(resp.StatusCode)]++
				default:
					w.ok++
					w.latency = append(w.latency, lat)
				}
			}
		})
	}
	wg.Wait()
	r := loadResult{errors: make(map[string]int), elapsed: time.Since(began)}
	for _, w := range workers {
		r.ok += w.ok
		for k, v := range w.errors {
			r.errors[k] += v
		}
		r.latency = append(r.latency, w.latency...)
	}
	slices.Sort(r.latency)
	return r
}
