package shed_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/metricstest"
	"github.com/shoal-dev/shoal/shed"
)

// slowService has `workers` slots; each request queues for a slot, then
// holds it for `work`. It records how many requests were inside at once and
// how long each spent inside (queueing plus work).
type slowService struct {
	slots   chan struct{}
	work    time.Duration
	inside  atomic.Int64
	maxSeen atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
}

func newSlowService(workers int, work time.Duration) *slowService {
	return &slowService{slots: make(chan struct{}, workers), work: work}
}

func (s *slowService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	n := s.inside.Add(1)
	defer s.inside.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case s.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	time.Sleep(s.work) // the work itself: a fixed service time
	<-s.slots
	s.mu.Lock()
	s.latencies = append(s.latencies, time.Since(start))
	s.mu.Unlock()
	io.WriteString(w, "done")
}

func (s *slowService) maxLatency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Max(s.latencies)
}

type burstResult struct {
	codes           map[int]int
	badRejections   int // 503s without Retry-After
	transportErrors int
}

// burst sends clients × perClient requests to url, clients at a time.
func burst(t *testing.T, url string, clients, perClient int) burstResult {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	res := burstResult{codes: map[int]int{}}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range perClient {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := c.Do(req)
				if err != nil {
					mu.Lock()
					res.transportErrors++
					mu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				res.codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
					res.badRejections++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

// TestOverloadBurst sends the same bounded burst to a slow two-worker
// service twice over loopback: once bare, once behind the limiter. Bare,
// every request queues inside the service, so the last waits behind the
// whole burst. Behind the limiter the excess gets 503 with Retry-After at
// once, no more than the limit are ever inside, and the admitted requests'
// time inside stays that of a short queue.
func TestOverloadBurst(t *testing.T) {
	const (
		workers   = 2
		work      = 20 * time.Millisecond
		clients   = 64
		perClient = 4
		maxLimit  = 4
	)
	// Bare, the last of `clients` simultaneous requests waits for all the
	// others: at least this long inside the service.
	queuedFloor := time.Duration(clients/workers-1) * work

	bare := newSlowService(workers, work)
	srv := httptest.NewServer(bare)
	res := burst(t, srv.URL, clients, perClient)
	srv.Close()
	if res.codes[http.StatusOK] != clients*perClient {
		t.Fatalf("bare service: %v, %d transport errors; want all %d OK", res.codes, res.transportErrors, clients*perClient)
	}

	reg := prometheus.NewRegistry()
	l, err := shed.New(shed.Config{InitialLimit: maxLimit, MaxLimit: maxLimit, Window: 100 * time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	shedded := newSlowService(workers, work)
	srv = httptest.NewServer(l.Middleware(shedded))
	res = burst(t, srv.URL, clients, perClient)
	srv.Close()

	t.Logf("bare: max %v inside (floor %v), %d at once; shed: %v, max %v inside, %d at once, limit now %d",
		bare.maxLatency(), queuedFloor, bare.maxSeen.Load(), res.codes, shedded.maxLatency(), shedded.maxSeen.Load(), l.Limit())

	ok, rejected := res.codes[http.StatusOK], res.codes[http.StatusServiceUnavailable]
	if ok == 0 || rejected == 0 || ok+rejected != clients*perClient || res.transportErrors != 0 {
		t.Fatalf("shed service: %v, %d transport errors; want only 200s and 503s, some of each", res.codes, res.transportErrors)
	}
	if res.badRejections != 0 {
		t.Errorf("%d rejections lack Retry-After", res.badRejections)
	}
	if got := shedded.maxSeen.Load(); got > maxLimit {
		t.Errorf("%d requests inside at once, above the limit %d", got, maxLimit)
	}
	if got := bare.maxSeen.Load(); got <= maxLimit {
		t.Errorf("bare service saw only %d at once; the burst did not overload it", got)
	}
	if got := shedded.maxLatency(); got >= queuedFloor {
		t.Errorf("admitted requests spent up to %v inside, as long as an unshed queue (%v)", got, queuedFloor)
	}
	if v := metricstest.Value(t, reg, "shed_rejected_total"); int(v) != rejected {
		t.Errorf("shed_rejected_total = %v, want %d", v, rejected)
	}
	if v := metricstest.Value(t, reg, "shed_in_flight"); v != 0 {
		t.Errorf("shed_in_flight after the burst = %v", v)
	}
}
