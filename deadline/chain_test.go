package deadline_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/deadline"
)

// callee is a server whose handler waits on its request's context and
// reports how it ended.
type callee struct {
	*httptest.Server
	ended chan calleeResult
	stop  chan struct{} // closed by the test's cleanup, so no handler outlives it
}

type calleeResult struct {
	hasDeadline bool
	left        time.Duration // at the handler's start
	err         error
	at          time.Time
}

func newCallee(t *testing.T) *callee {
	c := &callee{ended: make(chan calleeResult, 1), stop: make(chan struct{})}
	c.Server = httptest.NewServer(deadline.Middleware(0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		dl, ok := ctx.Deadline()
		res := calleeResult{hasDeadline: ok, left: time.Until(dl)}
		select {
		case <-ctx.Done():
		case <-c.stop:
		}
		res.err, res.at = ctx.Err(), time.Now()
		c.ended <- res
		w.WriteHeader(http.StatusGatewayTimeout)
	})))
	t.Cleanup(c.Server.Close)
	t.Cleanup(func() { close(c.stop) }) // runs before Close
	return c
}

func (c *callee) result(t *testing.T) calleeResult {
	t.Helper()
	select {
	case res := <-c.ended:
		return res
	case <-time.After(30 * time.Second):
		t.Fatal("the callee's context never ended")
		return calleeResult{}
	}
}

const (
	budget = 300 * time.Millisecond
	// slack bounds how late past the budget the callee may stop on a
	// loaded machine; without the deadline it would wait until cleanup.
	slack = 3 * time.Second
)

// checkTiming checks that the callee was given at most the budget and
// stopped after about that long, counted from start.
func checkTiming(t *testing.T, res calleeResult, start time.Time) {
	t.Helper()
	if !res.hasDeadline || res.left <= 0 || res.left > budget {
		t.Errorf("callee's deadline: present %v, %v left at start; want at most %v", res.hasDeadline, res.left, budget)
	}
	// The budget counts from when the first server saw the request, after
	// start, and a callee's timer never fires early; 1ms is the rounding
	// of the header.
	if took := res.at.Sub(start); took < budget-time.Millisecond || took > budget+slack {
		t.Errorf("callee stopped %v after the request, want about %v", took, budget)
	}
}

// TestCallee: a server whose client sends the header stops its work when
// the time is up, on its own: the client does not hang up.
func TestCallee(t *testing.T) {
	b := newCallee(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	req, err := http.NewRequest("GET", b.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(deadline.Header, "300")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	res := b.result(t)
	checkTiming(t, res, start)
	if !errors.Is(res.err, context.DeadlineExceeded) {
		t.Errorf("callee's ctx.Err() = %v, want DeadlineExceeded", res.err)
	}
}

// TestChain: the client of A gives it 300ms; A's handler calls B through
// Transport with its request's context; B's handler, blocked on its own
// context, must stop when A's time is up, having been told how long that
// is.
func TestChain(t *testing.T) {
	b := newCallee(t)
	toB := &http.Client{Transport: deadline.Transport(&http.Transport{})}
	defer toB.CloseIdleConnections()

	calledB := make(chan error, 1)
	a := httptest.NewServer(deadline.Middleware(0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), "GET", b.URL, nil)
		if err != nil {
			calledB <- err
			return
		}
		resp, err := toB.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		calledB <- err
		w.WriteHeader(http.StatusGatewayTimeout)
	})))
	defer a.Close()

	// The client sets the header itself and has no deadline of its own,
	// so nothing but the propagated deadline ends the chain.
	req, err := http.NewRequest("GET", a.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(deadline.Header, "300")
	start := time.Now()
	resp, err := a.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("A answered %d, want 504", resp.StatusCode)
	}
	// B's 504 or A's deadline, whichever came first.
	if err := <-calledB; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("A's call to B: %v, want B's answer or DeadlineExceeded", err)
	}

	res := b.result(t)
	checkTiming(t, res, start)
	// B's deadline and A's hang-up (its transport closes the connection
	// when A's deadline passes) arrive within a millisecond of each other;
	// either may win, and both mean the caller gave up.
	if !errors.Is(res.err, context.DeadlineExceeded) && !errors.Is(res.err, context.Canceled) {
		t.Errorf("B's ctx.Err() = %v, want DeadlineExceeded or Canceled", res.err)
	}
}
