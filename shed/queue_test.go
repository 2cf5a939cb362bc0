package shed_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/shed"
)

// queueHarness serves requests through a limiter of a fixed limit whose
// handler holds each request tagged "hold" until the test lets it go, and
// otherwise takes work on the fake clock.
type queueHarness struct {
	t     *testing.T
	l     *shed.Limiter
	c     *clock
	h     http.Handler
	mu    sync.Mutex
	holds map[string]chan struct{}
}

type answer struct {
	name string
	code int
}

func newQueueHarness(t *testing.T, limit int, work time.Duration, critical bool) *queueHarness {
	q := &queueHarness{t: t, c: newClock(), holds: map[string]chan struct{}{}}
	cfg := shed.Config{InitialLimit: limit, MaxLimit: limit, MinLimit: limit, Now: q.c.Now}
	if critical {
		cfg.Critical = func(r *http.Request) bool { return r.Header.Get("X-Critical") == "1" }
	}
	q.l = newLimiter(t, cfg, nil)
	q.h = q.l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := r.Header.Get("X-Hold"); name != "" {
			<-q.hold(name)
			return
		}
		q.c.Advance(work)
	}))
	// Enough requests one at a time for windows to close and the long
	// RTT, which bounds a wait, to be learned.
	for range 30 {
		q.h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		q.c.Advance(time.Millisecond)
	}
	return q
}

// start sends request name; hold makes its handler wait for release(name).
// It returns once the request holds a slot, waits for one, or was
// answered; the answer comes on out.
func (q *queueHarness) start(ctx context.Context, name string, hold, critical bool, out chan<- answer) {
	req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	if hold {
		q.mu.Lock()
		q.holds[name] = make(chan struct{})
		q.mu.Unlock()
		req.Header.Set("X-Hold", name)
	}
	if critical {
		req.Header.Set("X-Critical", "1")
	}
	inFlight, waiting := q.l.InFlight(), shed.Waiting(q.l)
	answered := q.send(req, name, out)
	for q.l.InFlight() == inFlight && shed.Waiting(q.l) == waiting {
		select {
		case <-answered:
			return
		default:
			runtime.Gosched()
		}
	}
}

// send serves req in a goroutine whose answer comes on out; the channel
// it returns is closed once it was answered.
func (q *queueHarness) send(req *http.Request, name string, out chan<- answer) <-chan struct{} {
	answered := make(chan struct{})
	go func() {
		rec := httptest.NewRecorder()
		q.h.ServeHTTP(rec, req)
		out <- answer{name, rec.Code}
		close(answered)
	}()
	return answered
}

func (q *queueHarness) hold(name string) chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.holds[name]
}

func (q *queueHarness) release(name string) { close(q.hold(name)) }

// awaitAll waits for answers, in any order, which must be want.
func (q *queueHarness) awaitAll(out <-chan answer, want ...answer) {
	q.t.Helper()
	var got []answer
	for range want {
		select {
		case a := <-out:
			got = append(got, a)
		case <-time.After(10 * time.Second):
			q.t.Fatalf("answers %v within 10s, want %v", got, want)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			q.t.Fatalf("answers %v, want %v", got, want)
		}
	}
}

// await waits for the next answer, which must be want.
func (q *queueHarness) await(out <-chan answer, want answer) {
	q.t.Helper()
	select {
	case got := <-out:
		if got != want {
			q.t.Fatalf("answer %v, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		q.t.Fatalf("no answer within 10s, want %v", want)
	}
}

func (q *queueHarness) wantState(inFlight, waiting int) {
	q.t.Helper()
	if got, gotW := q.l.InFlight(), shed.Waiting(q.l); got != inFlight || gotW != waiting {
		q.t.Fatalf("%d in flight, %d waiting; want %d and %d", got, gotW, inFlight, waiting)
	}
}

// TestMiddlewareQueue: a request that finds the limit full waits a little
// for a slot instead of being turned away at once, so the work does not
// pause between one request's end and the next arrival: at most half the
// limit of them, each at most the long RTT, the newest and critical ones
// first; nothing is leaked when a waiting client leaves.
func TestMiddlewareQueue(t *testing.T) {
	ok, busy := http.StatusOK, http.StatusServiceUnavailable
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a full queue turns the newcomer away; the waiter gets the freed slot", func(t *testing.T) {
			q := newQueueHarness(t, 2, time.Minute, false)
			out := make(chan answer, 8)
			q.start(t.Context(), "a", true, false, out)
			q.start(t.Context(), "b", true, false, out)
			q.start(t.Context(), "waits", false, false, out)
			q.wantState(2, 1)
			q.start(t.Context(), "new", false, false, out)
			q.await(out, answer{"new", busy})
			q.wantState(2, 1)
			q.release("a")
			q.awaitAll(out, answer{"a", ok}, answer{"waits", ok})
			q.release("b")
			q.await(out, answer{"b", ok})
			q.wantState(0, 0)
		}},
		{"a critical newcomer takes the place of another", func(t *testing.T) {
			// A limit of 2: 1 for the others, a queue of 1.
			q := newQueueHarness(t, 2, time.Minute, true)
			out := make(chan answer, 8)
			q.start(t.Context(), "a", true, false, out)
			q.start(t.Context(), "crit", true, true, out)
			q.start(t.Context(), "other", false, false, out)
			q.wantState(2, 1)
			// It takes the place of the other: nothing else tells that
			// it waits.
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("X-Critical", "1")
			q.send(req, "crit waits", out)
			q.await(out, answer{"other", busy})
			q.wantState(2, 1)
			q.start(t.Context(), "crit late", false, true, out)
			q.await(out, answer{"crit late", busy}) // the queue holds only critical requests
			q.release("a")
			q.awaitAll(out, answer{"a", ok}, answer{"crit waits", ok})
			q.release("crit")
			q.await(out, answer{"crit", ok})
			q.wantState(0, 0)
		}},
		{"a wait ends after the long RTT", func(t *testing.T) {
			q := newQueueHarness(t, 1, 20*time.Millisecond, false)
			out := make(chan answer, 8)
			q.start(t.Context(), "a", true, false, out)
			start := time.Now()
			q.start(t.Context(), "waits", false, false, out)
			q.await(out, answer{"waits", busy})
			if waited := time.Since(start); waited < 10*time.Millisecond {
				t.Fatalf("turned away after %v, want about the long RTT (20ms)", waited)
			}
			q.wantState(1, 0)
			q.release("a")
			q.await(out, answer{"a", ok})
			q.wantState(0, 0)
		}},
		{"a critical request waits ahead of the others", func(t *testing.T) {
			// A limit of 4: 3 for the others, a queue of 2.
			q := newQueueHarness(t, 4, time.Minute, true)
			out := make(chan answer, 8)
			for _, name := range []string{"a", "b", "c"} {
				q.start(t.Context(), name, true, false, out)
			}
			q.start(t.Context(), "crit", true, true, out)
			q.start(t.Context(), "other", false, false, out)
			q.start(t.Context(), "crit waits", false, true, out)
			q.wantState(4, 2)
			q.release("a")
			q.awaitAll(out, answer{"a", ok}, answer{"crit waits", ok})
			// 3 in flight: the others' share of the limit is taken.
			q.wantState(3, 1)
			q.release("b")
			q.awaitAll(out, answer{"b", ok}, answer{"other", ok})
			q.release("c")
			q.release("crit")
			q.awaitAll(out, answer{"c", ok}, answer{"crit", ok})
			q.wantState(0, 0)
		}},
		{"a waiting client that leaves frees its place", func(t *testing.T) {
			q := newQueueHarness(t, 1, time.Minute, false)
			out := make(chan answer, 8)
			q.start(t.Context(), "a", true, false, out)
			ctx, cancel := context.WithCancel(t.Context())
			q.start(ctx, "leaves", false, false, out)
			q.wantState(1, 1)
			cancel()
			q.await(out, answer{"leaves", busy})
			q.wantState(1, 0)
			q.release("a")
			q.await(out, answer{"a", ok})
			q.wantState(0, 0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestQueueWaitFollowsTheRecentLatency: when the work has become slower
// than the long RTT remembers (its CPU taken by what the limit does not
// admit), a waiting request waits about as long as the slot ahead of it
// now takes, not as long as it took before.
func TestQueueWaitFollowsTheRecentLatency(t *testing.T) {
	q := newQueueHarness(t, 1, 100*time.Millisecond, false) // a long RTT of about 100ms
	out := make(chan answer, 16)
	// The work now takes 5s: a few requests, each held while the clock
	// moves, so that windows close on them.
	for i := range 4 {
		name := "slow" + string(rune('0'+i))
		q.start(context.Background(), name, true, false, out)
		q.c.Advance(5 * time.Second)
		q.release(name)
		q.await(out, answer{name, http.StatusOK})
	}
	q.start(context.Background(), "ahead", true, false, out)
	q.start(context.Background(), "waiting", false, false, out)
	q.wantState(1, 1)
	// Sized on the long RTT the wait would be over in well under a
	// second; sized on the recent work it lasts about 10s.
	time.Sleep(time.Second)
	q.wantState(1, 1)
	q.release("ahead")
	q.awaitAll(out, answer{"ahead", http.StatusOK}, answer{"waiting", http.StatusOK})
}
