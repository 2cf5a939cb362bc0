package shed_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/shoal-dev/shoal/shed"
)

func newBudget(t *testing.T, capacity int64, wait time.Duration) *shed.Budget {
	t.Helper()
	b, err := shed.NewBudget(capacity, wait)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBudgetAcquire(t *testing.T) {
	tests := []struct {
		name    string
		held    int64 // taken before the call
		wait    time.Duration
		ask     int64
		wantErr error
	}{
		{"fits", 60, time.Minute, 40, nil},
		{"nothing asked", 100, -1, 0, nil},
		{"more than the whole", 0, time.Minute, 101, shed.ErrOverBudget},
		{"no room, no wait", 61, -1, 40, shed.ErrBusy},
		{"no room, wait runs out", 61, time.Millisecond, 40, shed.ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(t, 100, tt.wait)
			rel, err := b.Acquire(context.Background(), tt.held)
			if err != nil {
				t.Fatal(err)
			}
			defer rel()
			rel2, err := b.Acquire(context.Background(), tt.ask)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Acquire(%d) with %d held: %v, want %v", tt.ask, tt.held, err, tt.wantErr)
			}
			if err == nil {
				rel2()
			}
			if got := b.InUse(); got != tt.held {
				t.Fatalf("in use after the call = %d, want %d", got, tt.held)
			}
		})
	}
}

func TestBudgetWaitsInOrderAndHonoursContext(t *testing.T) {
	b := newBudget(t, 100, time.Minute)
	first, err := b.Acquire(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	// A large waiter queued first must not be overtaken by a small one.
	big := make(chan error, 1)
	go func() {
		rel, err := b.Acquire(context.Background(), 80)
		if err == nil {
			defer rel()
		}
		big <- err
	}()
	waitFor(t, func() bool { return queued(b) == 1 })
	ctx, cancel := context.WithCancelCause(context.Background())
	small := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, 10)
		small <- err
	}()
	waitFor(t, func() bool { return queued(b) == 2 })
	cause := errors.New("client left")
	cancel(cause)
	if err := <-small; !errors.Is(err, cause) {
		t.Fatalf("cancelled waiter: %v, want its context's cause", err)
	}
	first()
	if err := <-big; err != nil {
		t.Fatalf("queued waiter: %v", err)
	}
	waitFor(t, func() bool { return b.InUse() == 0 })
}

// queued reports how many callers wait on b.
func queued(b *shed.Budget) int { return shed.BudgetQueued(b) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met in 10s")
		case <-tick.C:
		}
	}
}

func TestBudgetReadAllHoldsWhatArrived(t *testing.T) {
	b := newBudget(t, 1<<20, -1)
	pr, pw := io.Pipe()
	type result struct {
		data    []byte
		release func()
		err     error
	}
	done := make(chan result, 1)
	go func() {
		data, rel, err := b.ReadAll(context.Background(), pr, 900<<10)
		done <- result{data, rel, err}
	}()
	// A body that declared 900 KiB but sent 1 byte holds one step, not
	// the declared size.
	pw.Write([]byte{1})
	waitFor(t, func() bool { return b.InUse() > 0 })
	if got := b.InUse(); got > 64<<10 {
		t.Fatalf("holding %d bytes for one byte received", got)
	}
	body := bytes.Repeat([]byte{7}, 900<<10-1)
	pw.Write(body)
	pw.Close()
	r := <-done
	if r.err != nil || len(r.data) != 900<<10 {
		t.Fatalf("ReadAll = %d bytes, %v", len(r.data), r.err)
	}
	if got := b.InUse(); got < 900<<10 || got > 1<<20 {
		t.Fatalf("holding %d for a 900 KiB body", got)
	}
	r.release()
	if b.InUse() != 0 {
		t.Fatalf("in use after release = %d", b.InUse())
	}
	// Past the budget: ErrBusy, and nothing stays held.
	if _, _, err := b.ReadAll(context.Background(), bytes.NewReader(make([]byte, 2<<20)), 0); !errors.Is(err, shed.ErrBusy) && !errors.Is(err, shed.ErrOverBudget) {
		t.Fatalf("ReadAll past the budget: %v", err)
	}
	if b.InUse() != 0 {
		t.Fatalf("in use after a failed read = %d", b.InUse())
	}
}

// TestBudgetReservationKeep reserves the whole budget, keeps part of it,
// and checks that the rest went at once to a waiter that fits in it, and
// that every unit comes back whichever way the reservation ends.
func TestBudgetReservationKeep(t *testing.T) {
	ctx := context.Background()
	b := newBudget(t, 100, time.Minute)
	r, err := b.Reserve(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	granted := make(chan func(), 1)
	go func() {
		rel, err := b.Acquire(ctx, 60)
		if err != nil {
			t.Error(err)
			rel = func() {}
		}
		granted <- rel
	}()
	waitFor(t, func() bool { return b.InUse() == 100 && len(granted) == 0 })
	keep := r.Keep(30)
	waiter := <-granted // the 70 given back let the waiter's 60 through
	if got := b.InUse(); got != 90 {
		t.Errorf("in use after keeping 30 beside a waiter's 60 = %d, want 90", got)
	}
	r.Release() // spent by Keep: nothing more comes back
	keep()
	keep()
	if got := b.InUse(); got != 60 {
		t.Errorf("in use after releasing the 30 kept = %d, want 60", got)
	}
	waiter()
	r2, err := b.Reserve(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	r2.Release()
	r2.Keep(50)() // spent by Release
	if got := b.InUse(); got != 0 {
		t.Errorf("in use at the end = %d", got)
	}
	if _, err := b.Reserve(ctx, 101); !errors.Is(err, shed.ErrOverBudget) {
		t.Errorf("Reserve past the capacity = %v, want ErrOverBudget", err)
	}
}

// budgetWatch serves r in reads of at most 1000 bytes, as a network
// does, and records the most of b held at any read.
type budgetWatch struct {
	r    io.Reader
	b    *shed.Budget
	peak int64
}

func (w *budgetWatch) Read(p []byte) (int, error) {
	w.peak = max(w.peak, w.b.InUse())
	return w.r.Read(p[:min(len(p), 1000)])
}

func TestBudgetReadAllSizes(t *testing.T) {
	const step = 64 << 10
	tests := []struct {
		name     string
		size     int
		hint     int64
		capacity int64
		maxHeld  int64 // the most held while reading
	}{
		{"empty", 0, 0, step, step},
		{"one byte under a large hint", 3, 900 << 10, 1 << 20, step},
		// The body ends where the first block does: no budget beyond it.
		{"one block exactly, no hint", step, 0, step, step},
		{"one byte past a block", step + 1, 0, 4 * step, 2 * step},
		{"1 MiB, no hint", 1<<20 + 3, 0, 4 << 20, 2*(1<<20+3) + step},
		{"1 MiB, declared", 1<<20 + 3, 1<<20 + 3, 1<<20 + 3, 1<<20 + 3},
		{"1 MiB, hint too small", 1<<20 + 3, 100 << 10, 2 << 20, 1<<20 + 3 + step},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			b := newBudget(t, tt.capacity, -1)
			w := &budgetWatch{r: bytes.NewReader(body), b: b}
			data, release, err := b.ReadAll(context.Background(), w, tt.hint)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if !bytes.Equal(data, body) {
				t.Fatalf("read %d bytes, not the %d-byte body", len(data), len(body))
			}
			if w.peak > tt.maxHeld {
				t.Errorf("held %d bytes while reading, want at most %d", w.peak, tt.maxHeld)
			}
			if held := b.InUse(); held < int64(len(data)) {
				t.Errorf("holding %d bytes for %d returned", held, len(data))
			}
			release()
			if b.InUse() != 0 {
				t.Errorf("in use after release = %d", b.InUse())
			}
		})
	}
}

// TestBudgetReadAllEndsOnlyAtEOF reads bodies whose reader fails with
// io.ErrUnexpectedEOF, as net/http's does for a body cut off before its
// Content-Length or its last chunk: ReadAll must fail with it, wherever it
// comes, and hold nothing after; a body whose last byte comes with io.EOF
// is whole.
func TestBudgetReadAllEndsOnlyAtEOF(t *testing.T) {
	const step = 64 << 10
	tests := []struct {
		name    string
		size    int
		body    func(io.Reader) io.Reader
		wantErr error
	}{
		{"cut in the first block", 1000, cutShort, io.ErrUnexpectedEOF},
		{"cut where a block ends", step, cutShort, io.ErrUnexpectedEOF},
		{"cut in a later block", 3*step + 5, cutShort, io.ErrUnexpectedEOF},
		{"last byte with EOF after a block", step + 1, iotest.DataErrReader, nil},
		{"last bytes with EOF in a later block", 3*step + 5, iotest.DataErrReader, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			b := newBudget(t, 1<<20, -1)
			data, release, err := b.ReadAll(context.Background(), tt.body(bytes.NewReader(body)), 0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAll = %d bytes, %v; want %v", len(data), err, tt.wantErr)
			}
			if err == nil {
				if !bytes.Equal(data, body) {
					t.Errorf("read %d bytes, not the %d-byte body", len(data), len(body))
				}
				release()
			}
			if b.InUse() != 0 {
				t.Errorf("in use after = %d", b.InUse())
			}
		})
	}
}

// cutShort is r, failing with io.ErrUnexpectedEOF where r ends.
func cutShort(r io.Reader) io.Reader {
	return io.MultiReader(r, iotest.ErrReader(io.ErrUnexpectedEOF))
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// cutOff reads r up to n bytes and fails with errCutOff once r has more.
type cutOff struct {
	r io.Reader
	n int64
}

var errCutOff = errors.New("body longer than its limit")

func (c *cutOff) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errCutOff
	}
	n, err := c.r.Read(p[:min(int64(len(p)), c.n)])
	c.n -= int64(n)
	return n, err
}

// TestBudgetReadAllCutOffAllocatesOnce reads an endless body that a reader
// cuts off at a limit, given as the hint: the read fails with the reader's
// error within a budget of the limit, having allocated the limit once, not
// the doubling copies of a growing buffer (the gallery reading a
// thumbnailer that streams without end: three times the limit each).
func TestBudgetReadAllCutOffAllocatesOnce(t *testing.T) {
	const limit = 8 << 20
	b := newBudget(t, limit, -1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := b.ReadAll(context.Background(), &cutOff{r: zeros{}, n: limit}, limit)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errCutOff) {
		t.Fatalf("ReadAll = %v, want the reader's error", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit+limit/8 {
		t.Errorf("allocated %d bytes reading a body cut off at %d", alloc, limit)
	}
	if b.InUse() != 0 {
		t.Errorf("in use after a failed read = %d", b.InUse())
	}
}

// TestMiddlewareSlowBodyHoldsNoSlot reproduces the outage: with one slot,
// a request blocked on a body its client trickles must not make the next
// request 503.
func TestMiddlewareSlowBodyHoldsNoSlot(t *testing.T) {
	l := newLimiter(t, shed.Config{InitialLimit: 1, MaxLimit: 1}, nil)
	slow := make(chan struct{}, 1)
	srv := httptest.NewServer(l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			// The byte sent, then the wait for the rest.
			io.ReadFull(r.Body, make([]byte, 1))
			slow <- struct{}{}
		}
		io.Copy(io.Discard, r.Body)
	})))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // before srv.Close, which waits for the slow request
	// Headers and one byte of a 100-byte body, then nothing.
	if _, err := io.WriteString(conn, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	<-slow
	// Between two reads the slow request holds its slot; once it waits in
	// the next it holds none, and nothing more arrives to wake it.
	waitFor(t, func() bool { return l.InFlight() == 0 })
	for range 5 {
		resp, err := http.Post(srv.URL, "text/plain", bytes.NewReader([]byte("ok")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ordinary request got %d while another client trickles its body", resp.StatusCode)
		}
	}
	conn.Close() // ends the slow request before the server closes
	waitFor(t, func() bool { return l.InFlight() == 0 })
}

// TestMiddlewareBudgetWaitHoldsNoSlot: with one slot, a request waiting
// for memory in a Budget holds no slot of the Limiter meanwhile, so a
// request that needs no memory is served.
func TestMiddlewareBudgetWaitHoldsNoSlot(t *testing.T) {
	l := newLimiter(t, shed.Config{InitialLimit: 1, MaxLimit: 1}, nil)
	b := newBudget(t, 10, time.Minute)
	hold, err := b.Acquire(context.Background(), 10) // all of it
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, 1)
	srv := httptest.NewServer(l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/memory" {
			entered <- struct{}{}
			rel, err := b.Acquire(r.Context(), 5)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			rel()
		}
	})))
	defer srv.Close()
	waiting := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/memory", "text/plain", strings.NewReader("x"))
		if err != nil {
			waiting <- 0
			return
		}
		resp.Body.Close()
		waiting <- resp.StatusCode
	}()
	// The request waits in the Budget, its slot parked.
	<-entered
	waitFor(t, func() bool { return l.InFlight() == 0 && len(waiting) == 0 })
	resp, err := http.Post(srv.URL+"/plain", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a request needing no memory got %d while another waits for memory", resp.StatusCode)
	}
	hold()
	if code := <-waiting; code != http.StatusOK {
		t.Errorf("the request waiting for memory got %d once it was free", code)
	}
}

// TestBudgetEvictsAStalledBody: a body that sent a block and stalled
// holds its budget; a caller waiting for budget evicts it once it has
// been read for a second (its stop ends the pending read, its ReadAll
// fails with ErrEvicted) and is granted what it held.
func TestBudgetEvictsAStalledBody(t *testing.T) {
	ctx := context.Background()
	b := newBudget(t, 128<<10, time.Minute)
	pr, pw := io.Pipe()
	stopped := make(chan struct{})
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		_, _, err := b.ReadAllEvictable(ctx, pr, 0, func() {
			select {
			case <-stopped:
			default:
				close(stopped)
				pr.CloseWithError(errors.New("read deadline"))
			}
		})
		done <- result{err}
	}()
	go pw.Write(make([]byte, 64<<10))                      // one block, then nothing
	waitFor(t, func() bool { return b.InUse() == 64<<10 }) // its block; the next byte awaited
	start := time.Now()
	rel, err := b.Acquire(ctx, 128<<10)
	if err != nil {
		t.Fatalf("Acquire beside a stalled body: %v", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("waited %v", waited)
	}
	rel()
	if r := <-done; !errors.Is(r.err, shed.ErrEvicted) || !errors.Is(r.err, shed.ErrBusy) {
		t.Errorf("the stalled body's ReadAll = %v, want ErrEvicted", r.err)
	}
	pw.Close()
}

// A caller waiting for budget chooses its victim, then stops it after
// letting go of the budget's lock; meanwhile the victim may finish. Its
// stop must then not run: the victim's handler may have returned, and its
// ResponseWriter gone to another request (over HTTP/2, a stop on a
// finished stream's writer panics in the waiting caller's handler).
func TestBudgetStopsNoBodyAfterItsRead(t *testing.T) {
	ctx := context.Background()
	b := newBudget(t, 128<<10, time.Minute)
	pr, pw := io.Pipe()
	var returned, stoppedLate atomic.Bool
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, release, err := b.ReadAllEvictable(ctx, pr, 0, func() {
			if returned.Load() {
				stoppedLate.Store(true)
			}
		})
		returned.Store(true)
		if err == nil {
			release()
		}
		done <- result{data, err}
	}()
	var evict func()
	waitFor(t, func() bool {
		var ok bool
		evict, ok = shed.ChooseVictim(b)
		return ok
	})
	go func() {
		_, _ = pw.Write([]byte("whole"))
		pw.Close()
	}()
	r := <-done
	evict() // as the waiting caller would, now that the read has ended
	if stoppedLate.Load() {
		t.Error("stop was called after ReadAllEvictable returned")
	}
	// Once chosen, the body's next read fails, whatever it brings.
	if !errors.Is(r.err, shed.ErrEvicted) {
		t.Errorf("ReadAllEvictable = %q, %v; want ErrEvicted", r.data, r.err)
	}
}
