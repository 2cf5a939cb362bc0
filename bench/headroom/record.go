package main

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// recorder is the load's transport: it sends each request on a new
// connection (so every request is balanced afresh over the ready pods, as
// kube-proxy balances connections; keep-alive rebalancing is another
// bench's subject) and records each request's latency, from the send to
// the end of its body, and outcome in the window it was sent in.
type recorder struct {
	rt     http.RoundTripper
	start  time.Time
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	windows []windowSamples
}

// windowSamples is what one window's requests did.
type windowSamples struct {
	latencies []time.Duration // of every answered request, failures too
	total     int             // requests sent
	failed    int             // transport errors and non-2xx answers
}

func newRecorder(start time.Time, window time.Duration, timeout time.Duration) *recorder {
	return &recorder{
		rt: &http.Transport{
			DisableKeepAlives:     true,
			DisableCompression:    true,
			ResponseHeaderTimeout: timeout,
			MaxConnsPerHost:       0,
		},
		start: start, window: window, now: time.Now,
	}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := r.now()
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		r.record(sent, 0, true)
		return nil, err
	}
	resp.Body = &recordedBody{ReadCloser: resp.Body, r: r, sent: sent, failed: resp.StatusCode/100 != 2}
	return resp, nil
}

func (r *recorder) record(sent time.Time, latency time.Duration, failed bool) {
	i := int(sent.Sub(r.start) / r.window)
	if i < 0 {
		i = 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.windows) <= i {
		r.windows = append(r.windows, windowSamples{})
	}
	w := &r.windows[i]
	w.total++
	if failed {
		w.failed++
	}
	if latency > 0 {
		w.latencies = append(w.latencies, latency)
	}
}

// samples returns the windows recorded so far.
func (r *recorder) samples() []windowSamples {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]windowSamples(nil), r.windows...)
}

// recordedBody records its request when closed.
type recordedBody struct {
	io.ReadCloser
	r      *recorder
	sent   time.Time
	failed bool
	once   sync.Once
}

func (b *recordedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.r.record(b.sent, max(b.r.now().Sub(b.sent), time.Nanosecond), b.failed) })
	return err
}
