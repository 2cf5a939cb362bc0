package up_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/loadgen"
)

// galleryHost is the Ingress host of the local overlay.
const galleryHost = "gallery.localhost"

// bodies sends each request with the next of a set of images, so that
// the gallery's consistent hashing over the image digest spreads the load
// over every thumbnailer, and counts the responses by the replica that
// served them at each hop (X-Served-By of the gallery, X-Upstream-Served-By
// of the thumbnailer behind it).
type bodies struct {
	images [][]byte
	next   atomic.Uint64
	rt     *http.Transport

	mu       sync.Mutex
	gallery  map[string]int64
	upstream map[string]int64
	// failed counts the answers other than 200 by status, the replica
	// that gave them (X-Served-By; none when the front door answered)
	// and the start of the body: what a failed check shows.
	failed map[string]int64
}

var _ http.RoundTripper = (*bodies)(nil)

func newBodies(images [][]byte) *bodies {
	return &bodies{
		images: images,
		rt: &http.Transport{
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		gallery:  map[string]int64{},
		upstream: map[string]int64{},
		failed:   map[string]int64{},
	}
}

func (b *bodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	img := b.images[int(b.next.Add(1)%uint64(len(b.images)))]
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(img))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(img)), nil }
	r.ContentLength = int64(len(img))
	resp, err := b.rt.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK {
		b.mu.Lock()
		b.gallery[resp.Header.Get("X-Served-By")]++
		b.upstream[resp.Header.Get("X-Upstream-Served-By")]++
		b.mu.Unlock()
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		by := resp.Header.Get("X-Served-By")
		if by == "" {
			by = "no X-Served-By"
		}
		key := fmt.Sprintf("%d from %s: %.80s", resp.StatusCode, by, strings.TrimSpace(string(body)))
		b.mu.Lock()
		b.failed[key]++
		b.mu.Unlock()
	}
	return resp, err
}

// failures returns a copy of the counts of answers other than 200.
func (b *bodies) failures() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.failed)
}

// served returns copies of the counts by gallery and by thumbnailer replica.
func (b *bodies) served() (gallery, upstream map[string]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.gallery), maps.Clone(b.upstream)
}

func (b *bodies) close() { b.rt.CloseIdleConnections() }

// totals adds up the reports of the back-to-back runs of a steady load.
type totals struct {
	runs                                     int
	scheduled, sent, dropped, completed, ok  int64
	errors                                   map[string]int64
	elapsed                                  time.Duration
	maxLatency                               time.Duration
	unattributed                             int64
	firstReportStart, lastReportStartPlusRun time.Time
}

func (t *totals) add(r *loadgen.Report) {
	if t.errors == nil {
		t.errors = map[string]int64{}
		t.firstReportStart = r.Start
	}
	t.runs++
	t.scheduled += r.Scheduled
	t.sent += r.Sent
	t.dropped += r.Dropped
	t.completed += r.Completed
	t.ok += r.OK
	t.unattributed += r.Unattributed
	for k, v := range r.Errors {
		t.errors[k] += v
	}
	t.elapsed += r.Elapsed
	t.maxLatency = max(t.maxLatency, r.Latency.Max)
	t.lastReportStartPlusRun = r.Start.Add(r.Elapsed)
}

func (t *totals) String() string {
	return fmt.Sprintf("%d requests in %d runs over %s: %d completed, %d ok, %d dropped, errors %v, max latency %s",
		t.scheduled, t.runs, t.lastReportStartPlusRun.Sub(t.firstReportStart).Round(time.Millisecond),
		t.completed, t.ok, t.dropped, t.errors, t.maxLatency.Round(time.Millisecond))
}

// check fails t unless every scheduled request was sent and answered 2xx.
func (t *totals) check(tb testing.TB) {
	tb.Helper()
	if t.scheduled == 0 {
		tb.Fatal("no request was sent")
	}
	if len(t.errors) > 0 || t.dropped != 0 || t.sent != t.scheduled || t.completed != t.sent || t.ok != t.completed {
		tb.Errorf("load lost requests: %s", t)
	}
}

// steadyLoad posts images to the gallery through the Ingress at rate per
// second, in runs of two seconds each, back to back until stop is closed,
// so the load has no end fixed in advance yet every run ends with its
// requests answered (ending a run by its context would cancel them).
type steadyLoad struct {
	b    *bodies
	stop chan struct{}
	done chan struct{}
	res  totals
	err  error
	runs atomic.Int64
}

func startLoad(ctx context.Context, t *testing.T, ingress, cookie string, rate float64, images [][]byte) *steadyLoad {
	t.Helper()
	l := &steadyLoad{b: newBodies(images), stop: make(chan struct{}), done: make(chan struct{})}
	cfg := loadgen.Config{
		URL:    "http://" + ingress + "/v1/thumbnails?width=32&height=32&fit=cover",
		Method: http.MethodPost,
		Header: http.Header{
			"Host":         {galleryHost},
			"Cookie":       {cookie},
			"Content-Type": {"image/png"},
		},
		Body:           images[0], // replaced per request by bodies
		Rate:           rate,
		Duration:       2 * time.Second,
		MaxInFlight:    200,
		Timeout:        20 * time.Second,
		Transport:      l.b,
		ServedByHeader: "X-Upstream-Served-By",
	}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				l.err = ctx.Err()
				return
			default:
			}
			rep, err := loadgen.Run(ctx, cfg)
			if err != nil {
				l.err = err
				return
			}
			l.res.add(rep)
			l.runs.Add(1)
		}
	}()
	t.Cleanup(func() {
		l.finish()
		l.b.close()
	})
	return l
}

// waitRuns waits until n runs have ended.
func (l *steadyLoad) waitRuns(ctx context.Context, n int64) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for l.runs.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d load runs: %w", n, ctx.Err())
		case <-l.done:
			return fmt.Errorf("load ended after %d runs: %v", l.runs.Load(), l.err)
		case <-tick.C:
		}
	}
	return nil
}

// finish stops the load after its current run and returns the totals.
func (l *steadyLoad) finish() (*totals, error) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return &l.res, l.err
}

func sortedKeys(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
