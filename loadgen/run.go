package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// job is one request handed from the scheduler to a worker.
type job struct {
	offset   time.Duration
	intended time.Time
	key      []string // value of the key header, nil without one
}

// generator holds what the workers share during a run; all of it is
// read-only once the run starts, apart from rec and inFlight.
type generator struct {
	cfg      Config
	url      *url.URL
	host     string
	header   http.Header
	keyName  string // canonical KeyHeader
	servedBy string // canonical ServedByHeader
	rt       http.RoundTripper
	grpc     *grpcCaller // set for a gRPC run, which uses none of the HTTP fields
	rec      *recorder
	inFlight atomic.Int64
	sent     atomic.Int64 // for the progress line
}

// Run sends the load cfg describes and reports how it was served. It
// returns an error only for an invalid cfg; failed requests are counted
// in the report. When ctx ends early, Run stops scheduling, cancels the
// requests in flight and returns the report so far, marked Interrupted.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	g := &generator{
		cfg:      c,
		keyName:  http.CanonicalHeaderKey(c.KeyHeader),
		servedBy: http.CanonicalHeaderKey(c.ServedByHeader),
		rec:      newRecorder(c.Window),
	}
	target, method := redacted(c.URL), c.Method
	if c.GRPC != nil {
		gc, err := newGRPCCaller(&c)
		if err != nil {
			return nil, err
		}
		defer gc.cc.Close()
		g.grpc = gc
		target, method = c.GRPC.Target, c.GRPC.Method
	} else if err := g.setupHTTP(); err != nil {
		return nil, err
	} else if tr, ok := g.rt.(*http.Transport); ok && c.Transport == nil {
		defer tr.CloseIdleConnections()
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job, c.MaxInFlight)
	var workers sync.WaitGroup
	start := time.Now()

	stopProgress := func() {}
	if c.Progress != nil {
		stopProgress = g.startProgress(start)
	}

	interrupted := g.schedule(runCtx, start, jobs, &workers)
	close(jobs)
	workers.Wait()
	elapsed := time.Since(start)
	stopProgress()

	rep := g.rec.report(elapsed)
	rep.Target, rep.Method, rep.Start = target, method, start
	rep.ServedByHeader = c.ServedByHeader
	if g.grpc != nil {
		rep.GRPC = true
		rep.ServedByHeader = g.grpc.servedBy
	}
	rep.Interrupted = interrupted
	return rep, nil
}

// setupHTTP prepares the request every job sends.
func (g *generator) setupHTTP() error {
	c := &g.cfg
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("loadgen: parse URL: %w", err)
	}
	g.url, g.header, g.rt = u, http.Header{}, c.Transport
	for k, v := range c.Header {
		if http.CanonicalHeaderKey(k) == "Host" {
			g.host = v[len(v)-1]
			continue
		}
		g.header[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	if g.rt == nil {
		g.rt = newTransport(c)
	}
	return nil
}

func newTransport(c *Config) *http.Transport {
	d := &net.Dialer{Timeout: c.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// No Proxy: a load generator measures the target, and a library
		// reads no environment.
		DialContext:         dialLoopback(d.DialContext),
		MaxIdleConns:        c.Connections,
		MaxIdleConnsPerHost: c.Connections,
		MaxConnsPerHost:     c.Connections,
		IdleConnTimeout:     90 * time.Second,
		DisableKeepAlives:   c.NoKeepAlive,
		DisableCompression:  true,
		TLSHandshakeTimeout: c.Timeout,
	}
	if c.H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}

// schedule runs the timetable: at each intended time it hands a job to
// a worker, starting workers as the number in flight grows, or records
// a drop when MaxInFlight are in flight. It reports whether ctx ended
// the run.
func (g *generator) schedule(ctx context.Context, start time.Time, jobs chan job, workers *sync.WaitGroup) bool {
	c := &g.cfg
	tt := newTimetable(c.steps())
	keys := newKeySource(c.Keys, c.Seed)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var scheduled, started int64
	for c.Count == 0 || scheduled < c.Count {
		off, ok := tt.next()
		if !ok || (c.Duration > 0 && off >= c.Duration) {
			return false
		}
		at := start.Add(off)
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return true
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return true
		}
		scheduled++
		var key []string
		if g.keyName != "" {
			key = keys.next()
		}
		n := g.inFlight.Add(1)
		if n > int64(c.MaxInFlight) {
			g.inFlight.Add(-1)
			g.rec.record(result{offset: off, kind: KindDropped, msg: msgDropped})
			continue
		}
		// Every queued job has an idle worker: workers started never
		// fall below the jobs queued or running.
		if n > started {
			started++
			workers.Go(func() { g.work(ctx, jobs) })
		}
		g.sent.Add(1)
		jobs <- job{offset: off, intended: at, key: key}
	}
	return false
}

func (g *generator) work(ctx context.Context, jobs <-chan job) {
	for j := range jobs {
		if g.grpc != nil {
			g.rec.record(g.grpc.do(ctx, g.cfg.Timeout, j))
		} else {
			g.rec.record(g.do(ctx, j))
		}
		g.inFlight.Add(-1)
	}
}

// do sends one request and reads its response.
func (g *generator) do(ctx context.Context, j job) result {
	res := result{offset: j.offset}
	// The timeout runs from the actual send: a late start is already
	// charged to the latency, and must not also turn into a timeout.
	reqCtx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	h := g.header
	if j.key != nil {
		h = make(http.Header, len(g.header)+1)
		for k, v := range g.header {
			h[k] = v
		}
		h[g.keyName] = j.key
	}
	req := (&http.Request{
		Method:     g.cfg.Method,
		URL:        g.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       g.host,
	}).WithContext(reqCtx)
	if body := g.cfg.Body; len(body) > 0 {
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := g.rt.RoundTrip(req)
	if err != nil {
		res.kind, res.msg = g.classify(ctx, err)
		return res
	}
	if v := resp.Header[g.servedBy]; len(v) > 0 {
		res.servedBy = v[0]
	}
	var head []byte
	if resp.StatusCode >= 400 {
		// The start of an error body usually says why; keep it for the
		// sample.
		var buf [maxSampleLen]byte
		n, _ := io.ReadFull(resp.Body, buf[:])
		head = buf[:n]
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		res.kind, res.msg = g.classify(ctx, err)
		return res
	}
	res.latency = time.Since(j.intended)
	res.answered = true
	res.status = resp.StatusCode
	if resp.StatusCode >= 400 {
		res.kind = statusKind(resp.StatusCode)
		res.msg = statusSample(resp.StatusCode, head)
	}
	return res
}

// classify names the kind of a transport error and gives its sample
// message; a request cut short by the end of the run is canceled,
// whatever the error says.
func (g *generator) classify(runCtx context.Context, err error) (kind, msg string) {
	if runCtx.Err() != nil {
		return KindCanceled, msgCanceled
	}
	return classify(err), sample(err.Error())
}

// keySource picks balance keys uniformly from n, repeatably for a seed.
type keySource struct {
	rng  *rand.Rand
	vals [][]string // header values, built once so a pick does not allocate
}

func newKeySource(n int, seed uint64) *keySource {
	vals := make([][]string, n)
	for i := range vals {
		vals[i] = []string{"key-" + strconv.Itoa(i)}
	}
	return &keySource{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), vals: vals}
}

func (k *keySource) next() []string { return k.vals[k.rng.IntN(len(k.vals))] }

// startProgress writes a progress line every ProgressEvery and a last
// one when the returned stop is called; stop waits for the writer.
func (g *generator) startProgress(start time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(g.cfg.ProgressEvery)
		defer t.Stop()
		lastSent, lastAt := int64(0), start
		line := func(now time.Time) {
			sent := g.sent.Load()
			p := g.rec.progress()
			rate := 0.0
			if dt := now.Sub(lastAt).Seconds(); dt > 0 {
				rate = float64(sent-lastSent) / dt
			}
			lastSent, lastAt = sent, now
			fmt.Fprintf(g.cfg.Progress, "%7.1fs  sent %d  rate %.0f/s  p99 %s  errors %d\n",
				now.Sub(start).Seconds(), sent, rate, fmtDur(p.p99), p.errors)
		}
		for {
			select {
			case <-done:
				line(time.Now())
				return
			case now := <-t.C:
				line(now)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// redacted is rawURL as reports print it: with any password replaced by
// "xxxxx". It is called on a URL Validate accepted.
func redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Redacted()
}
