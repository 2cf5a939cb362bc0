package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// outcome is how one request ended, as the client saw it.
type outcome uint8

const (
	answered outcome = iota // 200
	rejected                // 503 or 429: shed
	timedOut                // no complete answer within the timeout
	failed                  // another status, or a transport error
	notSent                 // the generator's cap on outstanding requests was reached
)

// sample is one request of an open-loop run.
type sample struct {
	at      time.Duration // scheduled send time, from the run's start
	latency time.Duration // from the scheduled send time to the end of the body
	out     outcome
	// critical says the request carried the critical priority header,
	// which Shoal's shedder turns away last.
	critical bool
}

// phase is a stretch of constant arrival rate.
type phase struct {
	rate float64 // requests per second
	dur  time.Duration
}

// generator sends requests to one target.
type generator struct {
	url            string // of the resize endpoint
	timeout        time.Duration
	maxOutstanding int
	criticalEvery  int // every criticalEvery-th request is critical; 0 none
	client         *http.Client

	mu       sync.Mutex
	failures map[string]int // failed requests by reason
}

func newGenerator(url string, timeout time.Duration, maxOutstanding int) *generator {
	tr := &http.Transport{
		DialContext:         dialNoTimeWait, // bounded by the request's context
		MaxIdleConnsPerHost: maxOutstanding,
		// A timed-out request's connection closes after its slot is
		// freed; without a cap on the connections themselves the next
		// dials could pass the limit on open files before it has.
		MaxConnsPerHost:    maxOutstanding,
		IdleConnTimeout:    30 * time.Second,
		DisableCompression: true,
	}
	return &generator{url: url, timeout: timeout, maxOutstanding: maxOutstanding, client: &http.Client{Transport: tr}, failures: map[string]int{}}
}

func (g *generator) close() { g.client.CloseIdleConnections() }

// dialNoTimeWait dials connections that close with a reset. A server that
// does not shed keeps thousands of requests waiting until their timeouts,
// and a client that closes each of those connections normally leaves it in
// TIME_WAIT for a minute: the ephemeral ports run short, and every later
// connect spends its time searching for a free one (in a system call that
// holds the generator's only P), so the generator, not the server, would
// set the pace.
func dialNoTimeWait(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return c, nil
}

// openLoopResult is what openLoop recorded.
type openLoopResult struct {
	samples []sample
	// maxLag is the longest a request started after its scheduled time:
	// the generator's own health.
	maxLag time.Duration
}

// openLoop sends requests at the phases' constant rates, each at its
// scheduled time whatever the earlier ones are doing, and waits for them
// all. Latency runs from the scheduled time, so a stall in the generator
// counts against the server, never for it. onPhase, if not nil, is called
// as each phase begins with its index.
func (g *generator) openLoop(ctx context.Context, phases []phase, onPhase func(int)) openLoopResult {
	total := 0
	for _, p := range phases {
		total += int(p.rate * p.dur.Seconds())
	}
	res := openLoopResult{samples: make([]sample, 0, total)}
	var (
		wg     sync.WaitGroup
		slots  = make(chan struct{}, g.maxOutstanding)
		maxLag atomic.Int64
	)
	res.samples = res.samples[:total]
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	i := 0
	var offset time.Duration
loop:
	for pi, p := range phases {
		if onPhase != nil {
			onPhase(pi)
		}
		n := int(p.rate * p.dur.Seconds())
		for k := range n {
			due := offset + time.Duration(float64(k)*float64(time.Second)/p.rate)
			if wait := due - time.Since(start); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					break loop
				case <-timer.C:
				}
			}
			select {
			case slots <- struct{}{}:
			default:
				res.samples[i] = sample{at: due, out: notSent}
				i++
				continue
			}
			wg.Add(1)
			go func(i int, due time.Duration) {
				defer wg.Done()
				defer func() { <-slots }()
				lag := int64(time.Since(start) - due)
				for m := maxLag.Load(); lag > m && !maxLag.CompareAndSwap(m, lag); m = maxLag.Load() {
				}
				res.samples[i] = g.one(ctx, start, due, i)
			}(i, due)
			i++
		}
		offset += p.dur
	}
	wg.Wait()
	res.samples = res.samples[:i]
	res.maxLag = time.Duration(maxLag.Load())
	return res
}

// one sends request i and classifies its answer.
func (g *generator) one(ctx context.Context, start time.Time, due time.Duration, i int) sample {
	s := sample{at: due}
	// The timeout runs from the scheduled time, as the latency does: a
	// client that meant to send at due gives up timeout later.
	rctx, cancel := context.WithDeadline(ctx, start.Add(due+g.timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, g.url+"?"+imageQueryParam+"="+strconv.Itoa(i), nil)
	if err != nil {
		s.out = failed
		return s
	}
	if g.criticalEvery > 0 && i%g.criticalEvery == 0 {
		req.Header.Set(priorityHeader, priorityCritical)
		s.critical = true
	}
	resp, err := g.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	s.latency = time.Since(start) - due
	var ne net.Error
	switch {
	case errors.Is(rctx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		s.out = timedOut
	case err != nil:
		s.out = failed
		g.fail(failureReason(err))
	case resp.StatusCode == http.StatusOK:
		s.out = answered
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		s.out = rejected
	default:
		s.out = failed
		g.fail("status " + strconv.Itoa(resp.StatusCode))
	}
	return s
}

func (g *generator) fail(reason string) {
	g.mu.Lock()
	g.failures[reason]++
	g.mu.Unlock()
}

// failureReason names a transport error by its cause, without the URL.
func failureReason(err error) string {
	var (
		se syscall.Errno
		oe *net.OpError
	)
	switch {
	case errors.As(err, &se):
		return se.Error()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &oe):
		return oe.Op + ": " + oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// failureSummary lists the failures by reason, most common first.
func (g *generator) failureSummary() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var reasons []string
	for r := range g.failures {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int { return cmp.Or(g.failures[b]-g.failures[a], strings.Compare(a, b)) })
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", g.failures[r], r))
	}
	return strings.Join(parts, ", ")
}

// closedLoop keeps conns requests outstanding for warm and then periods
// periods of length period, and returns the rate of 200s in each period:
// the server's throughput when it is never offered more than it takes.
func (g *generator) closedLoop(ctx context.Context, conns int, warm, period time.Duration, periods int) []float64 {
	total := warm + time.Duration(periods)*period
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	start := time.Now()
	counts := make([]atomic.Int64, periods)
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			for i := c; ctx.Err() == nil; i += conns {
				s := g.one(ctx, start, time.Since(start), i)
				if k := int((time.Since(start) - warm) / period); s.out == answered && time.Since(start) >= warm && k < periods {
					counts[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	rates := make([]float64, periods)
	for k := range counts {
		rates[k] = float64(counts[k].Load()) / period.Seconds()
	}
	return rates
}
