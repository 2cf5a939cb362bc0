package shed

import (
	"context"
	"math"
	"runtime"
	"slices"
	"time"
)

// waiter is a Middleware request waiting for a slot (see wait). It is
// reused once its request stopped waiting, so waiting allocates only the
// first time as many wait at once.
type waiter struct {
	// ready receives one value when the waiter leaves the queue by
	// another's hand: granted a slot, or pushed out by a newer request.
	ready    chan struct{}
	timer    *time.Timer
	maxWait  time.Duration
	critical bool
	// granted, guarded by l.mu, says whether it left the queue holding a
	// slot.
	granted bool
}

// limitFor is how many may be in flight for a request to be admitted:
// the whole limit for a critical one (or any, without Config.Critical),
// the limit less the reserve for the rest, and none of the rest for a
// Window after a critical request was turned away. l.mu must be held.
func (l *Limiter) limitFor(now time.Time, critical bool) int {
	limit := int(l.limit)
	switch {
	case critical:
		return limit
	case now.Sub(l.criticalRefused) < l.criticalPause():
		return 0 // critical work is being turned away: none of the rest
	default:
		return max(1, limit-max(1, int(l.limit*l.cfg.Reserve)))
	}
}

// criticalPause is how long the other requests are all turned away after a
// critical one was: a Window until the long RTT is known, the long RTT
// after. Once it is known, critical requests wait for a slot ahead of the
// rest (see grantLocked), and a whole Window without the others would
// leave the work idle whenever the critical requests alone are fewer than
// it can take. l.mu must be held.
func (l *Limiter) criticalPause() time.Duration {
	if l.longRTT == 0 {
		return l.cfg.Window
	}
	return min(l.cfg.Window, time.Duration(l.longRTT*float64(time.Second)))
}

// queueDepth is the most requests that wait for a slot: half the limit,
// at least one. A slot freed is taken by a request already here, not by
// the next to arrive, so the work never pauses between requests; the
// depth is small, and the wait short (see enqueue), so a waiting request
// is answered within about twice the unloaded latency.
func (l *Limiter) queueDepth() int { return max(1, int(l.limit)/2) }

// enqueue queues a request turned away by the limit, or returns nil when
// it may not wait: before the unloaded latency is known, or when the
// queue is full, unless it is critical and another is not: then the
// oldest other leaves the queue, refused. A full queue turns the newcomer
// away rather than pushing out a waiter, because that answer costs the
// least CPU: under an overload of several times the capacity nearly every
// request finds the queue full, and waking a waiter for each to refuse it
// took a fifth of the goodput at 8x. A request waits at most the long
// RTT times 1 + 1/limit, about the work of the slowest request ahead of
// it: whoever waited longer is better told to retry elsewhere. While the
// limit admits no more than one request per core, the admitted do not
// queue behind each other, so when the last window's took longer than
// the long RTT their work itself is slower, for CPU taken by what the
// limit does not admit (a flood of reset streams on two cores): that
// latency sizes the wait then. Sized on the work as it was, the wait
// turned away 5% of an ordinary client's uploads under such a flood. A
// higher limit leaves it at the long RTT: at an overload's onset the
// latency is the admitted requests' queueing, and a longer wait would
// only add to it. With one
// slot the request in service has its whole work left at worst, and a
// wait of one long RTT turned away 11-17% of the requests at 0.9× to 1×
// of a core's capacity (2-6% with the longer wait). l.mu must be held.
func (l *Limiter) enqueue(critical bool) *waiter {
	if l.longRTT == 0 {
		return nil
	}
	if len(l.waiters) >= l.queueDepth() {
		i := slices.IndexFunc(l.waiters, func(w *waiter) bool { return !w.critical })
		if i < 0 || !critical {
			return nil
		}
		out := l.waiters[i]
		l.waiters = slices.Delete(l.waiters, i, i+1)
		out.ready <- struct{}{}
	}
	var w *waiter
	if n := len(l.idle); n > 0 {
		w, l.idle[n-1] = l.idle[n-1], nil
		l.idle = l.idle[:n-1]
	} else {
		w = &waiter{ready: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
		w.timer.Stop()
	}
	w.critical, w.granted = critical, false
	rtt := l.longRTT
	if math.Floor(l.limit) <= float64(runtime.GOMAXPROCS(0)) {
		rtt = max(rtt, l.recentShort)
	}
	w.maxWait = time.Duration(rtt * (1 + 1/math.Floor(l.limit)) * float64(time.Second))
	l.waiters = append(l.waiters, w)
	return w
}

// wait blocks until w is granted a slot, pushed out of the queue, its
// wait is over or ctx ends, and reports whether it holds a slot. Its
// wait is left out of the latency sample: the limit follows the latency
// of the work admitted, and the queue is bounded on its own.
func (l *Limiter) wait(ctx context.Context, w *waiter) bool {
	w.timer.Reset(w.maxWait)
	select {
	case <-w.ready:
	case <-ctx.Done():
	case <-w.timer.C:
	}
	w.timer.Stop()
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accountLocked(now)
	granted := w.granted
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
	}
	select {
	case <-w.ready: // granted or pushed out as the wait ended
	default:
	}
	l.idle = append(l.idle, w)
	if granted && ctx.Err() != nil {
		// The client left while the slot came: pass it on.
		l.inFlight--
		l.grantLocked(now)
		return false
	}
	if !granted && w.critical {
		l.criticalRefused = now
	}
	return granted
}

// grantLocked gives free slots to waiting requests: the newest critical
// one first, then the newest other, each within its limit (see limitFor).
// l.mu must be held.
func (l *Limiter) grantLocked(now time.Time) {
	for len(l.waiters) > 0 && l.inFlight < int(l.limit) {
		i := -1
		for j := len(l.waiters) - 1; j >= 0; j-- {
			if l.waiters[j].critical {
				i = j
				break
			}
		}
		if i < 0 {
			if l.inFlight >= l.limitFor(now, false) {
				return
			}
			i = len(l.waiters) - 1
		}
		w := l.waiters[i]
		l.waiters = slices.Delete(l.waiters, i, i+1)
		w.granted = true
		l.inFlight++
		l.winInFlight = max(l.winInFlight, l.inFlight)
		w.ready <- struct{}{}
	}
}
