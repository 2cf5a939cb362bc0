package grpcserver

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// streamWindow is every stream's static flow-control window: what a
// client may send on a stream beyond the message its handler is reading
// (grpc-go widens the window to the whole message when it starts to read
// one), so part of what a call may hold. Static windows, not grpc-go's
// BDP estimation, which grows them to 16 MiB.
const streamWindow = 64 << 10

// connWindow is every connection's static flow-control window; grpc-go
// refreshes it as data arrives, so it paces the wire, not memory.
const connWindow = 1 << 20

// watchRoom is the health lane's room per connection for a Watch
// stream's metadata and request, kept while the stream lasts.
const watchRoom = 2 << 10

// evictAge is how long a call may take to receive its message before a
// call that finds the budget spent may take its place: under contention
// a stream must bring its message at MaxRecvMsgSize per 500ms (20 MB/s
// for 10 MiB), which a client in the cluster does.
const evictAge = 500 * time.Millisecond

// callCost is what a call costs the server from its headers until its
// stream ends and its handler returns, its message aside: the stream, its
// handler's goroutine and stack, and their contexts. A receive budget of
// RecvBudget bytes admits at most RecvBudget/callCost calls at once
// (2,048 for 32 MiB), and so does each of its siblings, so that a flood
// of calls that send nothing, or are reset as soon as they are opened,
// is bounded as messages are.
const callCost = 16 << 10

// healthPerConn is the health calls in flight that one connection may
// always have: grpcclient's Watch and a few checks. The health budget
// refuses no call at its headers while its maxCalls calls are not all
// taken, and then still admits each connection's first healthPerConn,
// so that a probe gets through however busy the server is, while a client that floods its connections with health calls (a
// rapid reset of checks) is refused once the budget's calls are spent.
const healthPerConn = 4

// Causes of a call cut off while receiving its message.
var (
	errRecvTimeout = errors.New("grpcserver: message not received within the receive timeout")
	errEvicted     = errors.New("grpcserver: message too slow while others waited for the receive budget")
)

// errBudgetFull answers a call refused before its message was read.
var errBudgetFull = status.Error(codes.Unavailable, "grpcserver: receive budget in use, retry later")

// admission is the process's receive budget. A call takes its metadata's
// bytes when its headers arrive (grpc.InTapHandle), or is refused; then,
// in its handler's goroutine before grpc-go reads its message (the stats
// handler's TagRPC), it waits for the most its message may hold, its
// connection's turn first; once the message is in it keeps what the
// message holds, until it ends.
type admission struct {
	capacity int64
	perCall  int64 // the most a call's message and window hold
	timeout  time.Duration
	now      func() time.Time
	turns    bool // calls take their connection's turn
	// probes admits a call at its headers whatever its metadata
	// (MaxHeaderListSize bounds each), counted even beyond capacity, and
	// refuses it only when maxCalls calls are in flight and its
	// connection has its own healthPerConn: the health lane's, so that a
	// probe always gets through.
	probes bool

	maxCalls int64 // calls at once (see callCost)

	mu        sync.Mutex
	inUse     int64
	calls     int64     // calls admitted and not yet ended
	receiving list.List // *ticket holding a share and still receiving, oldest first
	waiting   list.List // *waiter, first come first served

	refused prometheus.Counter
	cut     *prometheus.CounterVec
}

// waiter is a call waiting for its share.
type waiter struct {
	t     *ticket
	ready chan struct{} // closed when granted
}

func newAdmission(capacity, perCall int64, timeout time.Duration) *admission {
	a := &admission{capacity: capacity, perCall: perCall, maxCalls: capacity / callCost, timeout: timeout, now: time.Now, turns: true}
	a.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "grpc_server_recv_refused_total",
		Help: "Calls refused UNAVAILABLE before their message was read: the receive budget was spent.",
	})
	a.cut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_recv_cut_total",
		Help: "Calls cut off before their message was in, by reason (timeout, or evicted by a waiting call).",
	}, []string{"reason"})
	a.cut.WithLabelValues("timeout")
	a.cut.WithLabelValues("evicted")
	return a
}

// sibling is an admission of its own capacity, and as many calls as a,
// counted in a's metrics.
func (a *admission) sibling(capacity int64) *admission {
	return &admission{capacity: capacity, perCall: a.perCall, maxCalls: a.maxCalls, timeout: a.timeout, now: a.now, refused: a.refused, cut: a.cut}
}

func (a *admission) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		a.refused, a.cut,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "grpc_server_recv_budget_bytes",
			Help: "Bytes of messages that calls may receive and hold at once.",
		}, func() float64 { return float64(a.capacity) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "grpc_server_recv_in_use_bytes",
			Help: "Bytes of the receive budget taken by calls.",
		}, func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.inUse) }),
	}
}

// ticket is one call's share of the budget.
type ticket struct {
	a      *admission
	conn   *connTurn // nil for the kit's own services
	health *connTurn // the connection whose health calls it counts, on the health budget
	n      int64     // bytes held
	header int64     // bytes of the call's metadata
	refs   int       // the stream, and the handler while it runs
	// state: waiting for a share, receiving with one, or done receiving
	// (message in, cut off, or ended).
	elem    *list.Element // in receiving, while receiving
	w       *list.Element // in waiting, while waiting
	granted time.Time
	turn    bool // holds its connection's turn
	done    bool // no longer receiving
	cancel  context.CancelCauseFunc
	timer   *time.Timer
}

type ticketKey struct{}

// connTurn is a connection's state in the budgets: it lets one call of
// the connection at a time wait for or hold a share while receiving, so
// that a client's many streams queue behind each other, not ahead of
// other clients, and counts the connection's health calls in flight.
type connTurn struct {
	ch     chan struct{}
	health int // health calls in flight, under the health admission's mu
}

type connKey struct{}

// tap takes a call's metadata bytes and makes its ticket, or refuses the
// call. Everything it holds comes back when the stream ends (grpc-go
// cancels its context on every path) and the handler has returned.
func (a *admission) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	header := headerSize(info.Header)
	conn, _ := ctx.Value(connKey{}).(*connTurn)
	a.mu.Lock()
	full := a.inUse+header > a.capacity || a.calls >= a.maxCalls
	if a.probes {
		full = a.calls >= a.maxCalls && conn != nil && conn.health >= healthPerConn
	}
	if full {
		a.mu.Unlock()
		a.refused.Inc()
		return ctx, errBudgetFull
	}
	a.inUse += header
	a.calls++
	if a.probes && conn != nil {
		conn.health++
	}
	a.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	t := &ticket{a: a, n: header, header: header, refs: 1, cancel: cancel}
	if a.turns {
		t.conn = conn
	}
	if a.probes {
		t.health = conn
	}
	if a.timeout > 0 {
		t.timer = time.AfterFunc(a.timeout, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if !t.done {
				a.cutLocked(t, errRecvTimeout, "timeout")
			}
		})
	}
	context.AfterFunc(ctx, t.unref)
	return context.WithValue(ctx, ticketKey{}, t), nil
}

// wait blocks until t holds its share of the budget, or its context
// ends (the call left, or was cut off: grpc-go's read then fails).
func (t *ticket) wait(ctx context.Context) {
	a := t.a
	if t.conn != nil {
		select {
		case t.conn.ch <- struct{}{}:
		case <-ctx.Done():
			return
		}
		a.mu.Lock()
		if t.done {
			a.mu.Unlock()
			<-t.conn.ch
			return
		}
		t.turn = true
		a.mu.Unlock()
	}
	a.mu.Lock()
	if t.done {
		a.mu.Unlock()
		return
	}
	if a.waiting.Len() == 0 && a.inUse+a.perCall <= a.capacity {
		a.grantLocked(t)
		a.mu.Unlock()
		return
	}
	w := &waiter{t: t, ready: make(chan struct{})}
	t.w = a.waiting.PushBack(w)
	a.evictLocked()
	a.mu.Unlock()
	// While it waits, the oldest receiver may come of age to give way.
	tick := time.NewTicker(evictAge / 4)
	defer tick.Stop()
	for {
		select {
		case <-w.ready:
			return
		case <-ctx.Done():
			return // unref or the cut takes it out of the queue
		case <-tick.C:
			a.mu.Lock()
			a.evictLocked()
			a.mu.Unlock()
		}
	}
}

// grantLocked gives t its share.
func (a *admission) grantLocked(t *ticket) {
	a.inUse += a.perCall
	t.n += a.perCall
	t.granted = a.now()
	t.elem = a.receiving.PushBack(t)
}

// evictLocked cuts off, while calls wait, the receivers that have had
// their time, oldest first, and grants the waiters what that frees.
func (a *admission) evictLocked() {
	now := a.now()
	for a.waiting.Len() > 0 && a.inUse+a.perCall > a.capacity {
		front := a.receiving.Front()
		if front == nil || now.Sub(front.Value.(*ticket).granted) < evictAge {
			break
		}
		a.cutLocked(front.Value.(*ticket), errEvicted, "evicted")
	}
	a.grantWaitersLocked()
}

// grantWaitersLocked grants waiters in order while their shares fit.
func (a *admission) grantWaitersLocked() {
	for e := a.waiting.Front(); e != nil && a.inUse+a.perCall <= a.capacity; e = a.waiting.Front() {
		w := a.waiting.Remove(e).(*waiter)
		w.t.w = nil
		a.grantLocked(w.t)
		close(w.ready)
	}
}

// cutLocked ends t's reception: its message share comes back now, and
// its stream is cancelled, which ends grpc-go's read of the message and
// frees what arrived of it.
func (a *admission) cutLocked(t *ticket, cause error, reason string) {
	a.finishLocked(t, t.header)
	t.cancel(cause)
	a.cut.WithLabelValues(reason).Inc()
}

// finishLocked ends t's reception keeping keep bytes: out of the queue
// and the receivers, its connection's turn passed on.
func (a *admission) finishLocked(t *ticket, keep int64) {
	if t.done {
		return
	}
	t.done = true
	if t.w != nil {
		a.waiting.Remove(t.w)
		t.w = nil
	}
	if t.elem != nil {
		a.receiving.Remove(t.elem)
		t.elem = nil
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	if t.turn {
		t.turn = false
		<-t.conn.ch
	}
	keep = min(keep, t.n)
	a.inUse -= t.n - keep
	t.n = keep
	a.grantWaitersLocked()
}

// received keeps of t's share what its message and metadata hold, once
// the message is read, and gives back the rest: the stream's window too,
// so a long-lived stream (a health Watch, which grpcclient opens on every
// connection, or a reflection stream) holds a few hundred bytes, not
// 64 KiB, for as long as it lasts. A streaming call's later messages
// are read without a share (see the package doc).
func (t *ticket) received(size int64) {
	a := t.a
	a.mu.Lock()
	defer a.mu.Unlock()
	a.finishLocked(t, size+t.header)
}

// ref holds t's share while the handler runs (it holds the message),
// and reports false if the stream has ended already.
func (t *ticket) ref() bool {
	t.a.mu.Lock()
	defer t.a.mu.Unlock()
	if t.refs == 0 {
		return false
	}
	t.refs++
	return true
}

func (t *ticket) unref() {
	a := t.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.refs--; t.refs > 0 {
		return
	}
	a.finishLocked(t, 0)
	a.inUse -= t.n
	t.n = 0
	a.calls--
	if t.health != nil {
		t.health.health--
	}
	a.grantWaitersLocked()
}

func ticketOf(ctx context.Context) *ticket {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	return t
}

// headerSize is what md holds, counted as HTTP/2 counts a header list.
func headerSize(md metadata.MD) int64 {
	var n int64
	for k, vs := range md {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 32)
		}
	}
	return n
}

// statsHandler gives each connection its turn, makes a call wait for
// its share before grpc-go reads its message (TagRPC runs in the call's
// goroutine, before the read), and tells the budget when the message is
// in.
type statsHandler struct{}

var _ stats.Handler = statsHandler{}

func (statsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, &connTurn{ch: make(chan struct{}, 1)})
}

func (statsHandler) HandleConn(context.Context, stats.ConnStats) {}

func (statsHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	if t := ticketOf(ctx); t != nil {
		t.wait(ctx)
	}
	return ctx
}

func (statsHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok {
		if t := ticketOf(ctx); t != nil {
			t.received(int64(max(p.Length, p.WireLength)))
		}
	}
}
