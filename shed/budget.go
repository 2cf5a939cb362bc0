package shed

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of [Budget]. Services answer ErrOverBudget with 413 and ErrBusy
// with 503 and Retry-After.
var (
	// ErrOverBudget reports a request for more than the whole budget: it
	// could never be granted, so it is refused without waiting.
	ErrOverBudget = errors.New("shed: more than the whole budget")
	// ErrBusy reports that the budget stayed exhausted for as long as the
	// caller could wait.
	ErrBusy = errors.New("shed: budget exhausted")
)

// DefaultBudgetWait is the longest [Budget.Acquire] waits when
// NewBudget is given a zero wait.
const DefaultBudgetWait = 5 * time.Second

// Budget bounds a quantity held at once by concurrent work, such as the
// bytes of request bodies in memory or of images being decoded. Work asks
// for what it needs and waits its turn, first come first served, for at
// most the budget's wait and while its context lasts; when either ends it
// is turned away with [ErrBusy] or the context's error.
//
// Unlike [Limiter], a Budget queues: the work it guards is sized before it
// starts (an image's header says how much it will decode to), and a short
// wait for memory costs less than a retry. The wait is bounded, so an
// exhausted budget still turns requests away instead of piling them up.
//
// Create one with [NewBudget]; it is safe for concurrent use.
type Budget struct {
	capacity int64
	wait     time.Duration

	mu      sync.Mutex
	used    int64
	waiters list.List // of *budgetWaiter, oldest first
	// readers are the bodies being read by ReadAllEvictable.
	readers map[*bodyRead]struct{}
}

// bodyRead is a body ReadAllEvictable is reading, as eviction sees it.
// Its counts are atomic, so the reads of a body take no lock.
type bodyRead struct {
	stop    func()
	start   time.Time
	read    atomic.Int64 // bytes so far
	held    atomic.Int64 // budget held
	evicted atomic.Bool

	// mu orders a stop with the read's end: a caller that chose this
	// body as its victim stops it only while ReadAllEvictable is still
	// reading it. Once the read has ended, the reader's handler may have
	// returned and its ResponseWriter gone to another request (or, over
	// HTTP/2, to nobody: its stop would panic).
	mu    sync.Mutex
	ended bool
}

// evictBelow is the arrival rate, in bytes a second averaged since the
// body began, below which a body being read by ReadAllEvictable for at
// least evictAfter may be evicted for a caller waiting for budget: two
// blocks a second. A body stalled after its first block holds its budget
// while sending nothing; at this rate a client holding many of them pays
// for each in bandwidth. A body younger than evictAfter is never evicted:
// an upload of a few kilobytes arrives whole in milliseconds.
const (
	evictBelow = 2 * readStep
	evictAfter = time.Second
)

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the waiter holds n
}

// NewBudget returns a Budget of capacity units (bytes, say) whose callers
// wait at most wait for their share. A zero wait means DefaultBudgetWait
// (5s); a negative one means no waiting: Acquire grants at once or fails.
// capacity must be positive.
func NewBudget(capacity int64, wait time.Duration) (*Budget, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("shed: budget capacity %d is not positive", capacity)
	}
	if wait == 0 {
		wait = DefaultBudgetWait
	}
	return &Budget{capacity: capacity, wait: max(wait, 0)}, nil
}

// Capacity returns the whole budget.
func (b *Budget) Capacity() int64 { return b.capacity }

// InUse returns the units currently held.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Acquire holds n units once they are free and every earlier caller has
// been served, so a large request is not starved by a stream of small
// ones. The caller must call release exactly once (further calls do
// nothing). It fails at once with [ErrOverBudget] if n exceeds the
// capacity, with [ErrBusy] when the wait ran out, and with the context's
// cause when ctx ended first. n <= 0 is granted at once.
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	if n <= 0 {
		return func() {}, nil
	}
	if n > b.capacity {
		return nil, fmt.Errorf("%w: %d asked, %d in all", ErrOverBudget, n, b.capacity)
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.capacity {
		b.used += n
		b.mu.Unlock()
		return b.releaser(n), nil
	}
	victim := b.slowestLocked(time.Now())
	if b.wait <= 0 {
		b.mu.Unlock()
		victim.evict()
		return nil, ErrBusy
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	el := b.waiters.PushBack(w)
	b.mu.Unlock()
	victim.evict()

	// Waiting for memory is no work: a request's slot in the Limiter is
	// free for others meanwhile, as while its client sends its body.
	if t, ok := ctx.Value(ticketKey{}).(*ticket); ok {
		t.park()
		defer t.unpark()
	}
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	// A body that has just begun is not evicted (evictAfter): look again
	// while waiting, so that a wait that began beside young bodies still
	// evicts one once they have shown their rate.
	recheck := time.NewTicker(evictAfter / 4)
	defer recheck.Stop()
wait:
	for {
		select {
		case <-w.ready:
			return b.releaser(n), nil
		case <-ctx.Done():
			err = context.Cause(ctx)
			break wait
		case <-timer.C:
			err = ErrBusy
			break wait
		case <-recheck.C:
			b.mu.Lock()
			victim := b.slowestLocked(time.Now())
			b.mu.Unlock()
			victim.evict()
		}
	}
	b.mu.Lock()
	select {
	case <-w.ready:
		// Granted while we gave up: hand the units back.
		b.used -= n
	default:
		b.waiters.Remove(el)
	}
	// Our leaving may let the next in line (smaller than us) through.
	b.grantLocked()
	b.mu.Unlock()
	return nil, err
}

func (b *Budget) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= n
			b.grantLocked()
			b.mu.Unlock()
		})
	}
}

// Reserve holds n units as [Budget.Acquire] does, for work that learns
// only afterwards how many of them it keeps: a message a library reads
// whole, whose size is known once it is in. The errors are Acquire's.
func (b *Budget) Reserve(ctx context.Context, n int64) (*Reservation, error) {
	release, err := b.Acquire(ctx, n)
	if err != nil {
		return nil, err
	}
	return &Reservation{b: b, n: max(n, 0), release: release}, nil
}

// Reservation is what [Budget.Reserve] holds. Call Keep or Release once;
// later calls of either do nothing. It is not for concurrent use.
type Reservation struct {
	b       *Budget
	n       int64
	release func()
	spent   bool
}

// Keep gives back all of the reservation but m units at once, letting
// through the waiters that now fit, and returns the release of the m
// kept. m is bounded by the reservation.
func (r *Reservation) Keep(m int64) (release func()) {
	if r.spent {
		return func() {}
	}
	r.spent = true
	m = max(0, min(m, r.n))
	b := r.b
	b.mu.Lock()
	b.used -= r.n - m
	b.grantLocked()
	b.mu.Unlock()
	return b.releaser(m)
}

// Release gives the whole reservation back.
func (r *Reservation) Release() {
	if r.spent {
		return
	}
	r.spent = true
	r.release()
}

// grantLocked serves waiters in order while the oldest fits. b.mu must be
// held.
func (b *Budget) grantLocked() {
	for {
		front := b.waiters.Front()
		if front == nil {
			return
		}
		w := front.Value.(*budgetWaiter)
		if b.used+w.n > b.capacity {
			return
		}
		b.used += w.n
		b.waiters.Remove(front)
		close(w.ready)
	}
}

// slowestLocked marks for eviction, and returns, the body being read by
// ReadAllEvictable that arrives slowest, if it holds budget and arrives
// below evictBelow; nil if none does. b.mu must be held.
func (b *Budget) slowestLocked(now time.Time) *bodyRead {
	var victim *bodyRead
	var slowest float64
	for r := range b.readers {
		age := now.Sub(r.start)
		if r.held.Load() == 0 || age < evictAfter {
			continue // a body just begun is judged once it has had time
		}
		rate := float64(r.read.Load()) / age.Seconds()
		if rate < evictBelow && (victim == nil || rate < slowest) {
			victim, slowest = r, rate
		}
	}
	if victim != nil {
		victim.evicted.Store(true)
	}
	return victim
}

// evict stops r's read, if r is not nil and its read has not ended.
// Called without Budget.mu: stop may take a lock of its own (a stream's
// read deadline).
func (r *bodyRead) evict() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended {
		r.stop()
	}
}

// end marks r's read ended: no stop is called after end returns.
func (r *bodyRead) end() {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
}

// ErrEvicted is what [Budget.ReadAllEvictable] returns for a body it gave
// up on so that a faster one could have its budget. It wraps ErrBusy.
var ErrEvicted = fmt.Errorf("%w: a body arriving slowly gave up its budget to another", ErrBusy)

// ReadAllEvictable is [Budget.ReadAll] for a body the budget may give up
// on: while a caller waits for budget, the body being read for a second
// or more that arrives slowest, below two blocks (128 KiB) a second on
// average since it began, is evicted. stop is then called, from the
// waiting caller's goroutine; it must make r's pending Read return
// ([StopBody] does for a request body), and the read fails with
// ErrEvicted. stop is never called once ReadAllEvictable has returned.
// Without eviction, bodies that send a block and stall hold
// the budget until a timeout while every other upload waits for it and
// is turned away.
func (b *Budget) ReadAllEvictable(ctx context.Context, r io.Reader, sizeHint int64, stop func()) (data []byte, release func(), err error) {
	br := &bodyRead{stop: stop, start: time.Now()}
	b.mu.Lock()
	if b.readers == nil {
		b.readers = map[*bodyRead]struct{}{}
	}
	b.readers[br] = struct{}{}
	b.mu.Unlock()
	defer func() {
		br.end()
		b.mu.Lock()
		delete(b.readers, br)
		b.mu.Unlock()
		if err != nil && br.evicted.Load() {
			err = ErrEvicted
		}
	}()
	return b.readAll(ctx, r, sizeHint, br)
}

// StopBody is the stop of [Budget.ReadAllEvictable] for the body of the
// request w answers: it sets the request's read deadline to now, which
// ends a Read pending on the connection (on HTTP/2, on the stream).
func StopBody(w http.ResponseWriter) func() {
	return func() { _ = http.NewResponseController(w).SetReadDeadline(time.Now()) }
}

// readStep is the first block [Budget.ReadAll] reads into, and how much
// more it takes at a time past its size hint: small enough that a client
// trickling its body holds little, large enough that a fast upload asks
// rarely.
const readStep = 64 << 10

// ReadAll reads r to its end into memory, holding budget for what it reads
// as it grows instead of for the whole body up front, so a body that
// arrives slowly holds only what it has sent. sizeHint, when positive (a
// Content-Length, or the most the caller accepts), caps the growth at that
// size; a body longer than its hint grows a readStep at a time. The caller
// must call release once it no longer holds data; on an error ReadAll has
// released everything itself. The errors are r's and [Budget.Acquire]'s.
//
// ReadAll reads into blocks, each as large as what came before it, and
// joins them once r ends: a body that fails, such as one a reader cut off
// at a limit, leaves only its blocks behind, not the doubling copies of a
// growing buffer. Before each new block it reads one byte, so a body that
// ends where a block does takes no more budget.
//
// A body may wait for budget while holding what it already read; the
// bounded wait of Acquire turns such a standoff into ErrBusy for some of
// them instead of a deadlock.
func (b *Budget) ReadAll(ctx context.Context, r io.Reader, sizeHint int64) (data []byte, release func(), err error) {
	return b.readAll(ctx, r, sizeHint, nil)
}

// watchedBody counts what a body being read by ReadAllEvictable brings in,
// for eviction, and ends the read once it is evicted.
type watchedBody struct {
	io.Reader
	br *bodyRead
}

func (w watchedBody) Read(p []byte) (int, error) {
	if w.br.evicted.Load() {
		return 0, ErrEvicted
	}
	n, err := w.Reader.Read(p)
	w.br.read.Add(int64(n))
	return n, err
}

func (b *Budget) readAll(ctx context.Context, r io.Reader, sizeHint int64, br *bodyRead) (data []byte, release func(), err error) {
	if br != nil {
		r = watchedBody{Reader: r, br: br}
	}
	var (
		releases []func()
		blocks   [][]byte
		total    int64
		probe    [1]byte
	)
	releaseAll := func() {
		for _, f := range releases {
			f()
		}
	}
	for {
		var first []byte // a byte read ahead of the block, if any
		ended := false   // r ended with that byte
		if len(blocks) > 0 {
			n, err := fill(r, probe[:])
			if err != nil && err != io.EOF {
				releaseAll()
				return nil, nil, err
			}
			if n == 0 {
				break
			}
			first, ended = probe[:n], err == io.EOF
		}
		size := max(total, readStep)
		if sizeHint > 0 {
			if total < sizeHint {
				size = min(size, sizeHint-total)
			} else {
				size = readStep
			}
		}
		if ended {
			size = int64(len(first))
		}
		rel, err := b.Acquire(ctx, size)
		if err != nil {
			releaseAll()
			return nil, nil, err
		}
		releases = append(releases, rel)
		if br != nil {
			br.held.Add(size)
		}
		block := make([]byte, size)
		copy(block, first)
		n := len(first)
		if !ended {
			var m int
			m, err = fill(r, block[n:])
			n += m
		}
		total += int64(n)
		blocks = append(blocks, block[:n])
		if ended || err == io.EOF {
			break
		}
		if err != nil {
			releaseAll()
			return nil, nil, err
		}
	}
	if len(blocks) == 1 {
		return blocks[0], releaseAll, nil
	}
	// The join holds the blocks' budget: once it is done they are garbage
	// and it is the joined copy that the budget stands for.
	data = make([]byte, 0, total)
	for _, bl := range blocks {
		data = append(data, bl...)
	}
	return data, releaseAll, nil
}

// fill reads r into p until p is full or r fails. Unlike io.ReadFull it
// reports r's own error, so that only io.EOF ends a body: a reader's
// io.ErrUnexpectedEOF (net/http's for a body cut off before its
// Content-Length or last chunk) is a failure, not a short body.
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
