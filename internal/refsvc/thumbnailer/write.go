package thumbnailer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/server"
	"github.com/shoal-dev/shoal/shed"
)

const (
	// writeChunk is how much of a result is written at a time, each
	// chunk with its own write deadline.
	writeChunk = 64 << 10
	// cutAfter is how long a writer may have been blocked on one chunk
	// before a result that needs its memory cuts it off: a client
	// reading 64 KiB a second is never cut for another's sake.
	cutAfter = time.Second
)

// results accounts for the bytes of results being written to clients, and
// knows who writes them. A result that finds the budget spent first cuts
// off writers whose clients have not taken a chunk for cutAfter, longest
// stalled first, enough to make room; then it waits for room, up to its
// wait. A client that stops reading holds its result's bytes only until
// someone needs them, or until WriteStall.
//
// Unlike a shed.Budget it does not queue first come first served: a small
// result (the common case) is not kept behind a large one that waits for
// stalled clients to be cut off.
type results struct {
	capacity int64
	wait     time.Duration

	mu      sync.Mutex
	used    int64
	freed   chan struct{} // closed and replaced when bytes are released
	writers map[*resultWriter]struct{}
}

// resultWriter is one result being written.
type resultWriter struct {
	rc   *http.ResponseController
	size int64

	// mu orders the writer's deadlines with a cut: once cut is set, the
	// writer sets no other deadline.
	mu      sync.Mutex
	blocked time.Time // start of the Write under way; zero between writes
	cut     bool
}

// newResults returns a budget of capacity bytes whose callers wait up to
// wait for room: zero means shed.DefaultBudgetWait, negative no wait.
func newResults(capacity int64, wait time.Duration) *results {
	if wait == 0 {
		wait = shed.DefaultBudgetWait
	}
	return &results{capacity: capacity, wait: max(wait, 0), freed: make(chan struct{}), writers: map[*resultWriter]struct{}{}}
}

// acquire holds n bytes for a result written through rc, waiting up to
// wait for them (r.wait is the configured wait). Its errors are
// shed.ErrOverBudget, shed.ErrBusy and ctx's cause, as a shed.Budget's.
func (r *results) acquire(ctx context.Context, rc *http.ResponseController, n int64, wait time.Duration) (*resultWriter, error) {
	if n > r.capacity {
		return nil, fmt.Errorf("%w: %d asked, %d in all", shed.ErrOverBudget, n, r.capacity)
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	// Writers stall while this one waits: look again as they pass
	// cutAfter.
	recheck := time.NewTicker(cutAfter / 4)
	defer recheck.Stop()
	for {
		r.mu.Lock()
		if r.used+n <= r.capacity {
			r.used += n
			w := &resultWriter{rc: rc, size: n}
			r.writers[w] = struct{}{}
			r.mu.Unlock()
			return w, nil
		}
		r.cutStalledLocked(r.used + n - r.capacity)
		freed := r.freed
		r.mu.Unlock()
		if wait <= 0 {
			return nil, shed.ErrBusy
		}
		select {
		case <-freed:
		case <-recheck.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-timeout.C:
			return nil, shed.ErrBusy
		}
	}
}

// cutStalledLocked cuts off writers blocked for cutAfter or more, longest
// first, until those cut hold short bytes. r.mu must be held; it keeps
// the writers from returning, so their ResponseControllers are valid.
func (r *results) cutStalledLocked(short int64) {
	now := time.Now()
	var stalled []*resultWriter
	for w := range r.writers {
		w.mu.Lock()
		if w.cut {
			short -= w.size // its bytes are on their way back
		} else if !w.blocked.IsZero() && now.Sub(w.blocked) >= cutAfter {
			stalled = append(stalled, w)
		}
		w.mu.Unlock()
	}
	slices.SortFunc(stalled, func(a, b *resultWriter) int { return a.blocked.Compare(b.blocked) })
	for _, w := range stalled {
		if short <= 0 {
			return
		}
		w.mu.Lock()
		if !w.blocked.IsZero() { // not between chunks: still stalled
			w.cut = true
			// A deadline in the past ends the Write under way.
			_ = w.rc.SetWriteDeadline(now.Add(-time.Second))
			short -= w.size
		}
		w.mu.Unlock()
	}
}

// release returns w's bytes. Its ResponseController is not used after.
func (r *results) release(w *resultWriter) {
	r.mu.Lock()
	delete(r.writers, w)
	r.used -= w.size
	close(r.freed)
	r.freed = make(chan struct{})
	r.mu.Unlock()
}

// inUse returns the bytes held.
func (r *results) inUse() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.used
}

// begin readies w for its next chunk with deadline (none when zero); false
// means it was cut off.
func (w *resultWriter) begin(deadline time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut {
		return false
	}
	if !deadline.IsZero() {
		_ = w.rc.SetWriteDeadline(deadline)
	}
	w.blocked = time.Now()
	return true
}

// end marks w's chunk written.
func (w *resultWriter) end() {
	w.mu.Lock()
	w.blocked = time.Time{}
	w.mu.Unlock()
}

// write answers with e, whose bytes rw holds, and releases them once the
// response is written. A client that takes longer than WriteStall to
// accept a chunk, or cutAfter when another result needs the memory, is
// cut off; so is one not done by the server's write timeout counted from
// start.
func (a *API) write(w http.ResponseWriter, r *http.Request, rw *resultWriter, e thumbnail.Entry, cache string, start time.Time) {
	defer a.results.release(rw)
	h := w.Header()
	h.Set("Content-Type", e.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(e.Data)))
	h.Set("X-Cache", cache)
	w.WriteHeader(http.StatusOK)
	// A deadline set here replaces the server's WriteTimeout on the
	// connection (HTTP/1.1) or the stream (HTTP/2): never set one later
	// than the service's server would have ended the response.
	limit := start.Add(server.DefaultWriteTimeout)
	for data := e.Data; len(data) > 0; {
		var deadline time.Time
		if a.cfg.WriteStall > 0 {
			deadline = earliest(time.Now().Add(a.cfg.WriteStall), limit)
		}
		if !rw.begin(deadline) {
			a.cutOff(r, len(e.Data)-len(data), len(e.Data), "preempted")
			return
		}
		n, err := w.Write(data[:min(len(data), writeChunk)])
		rw.end()
		if err != nil {
			a.cutOff(r, len(e.Data)-len(data)+n, len(e.Data), err.Error())
			return
		}
		data = data[n:]
	}
}

func (a *API) cutOff(r *http.Request, written, size int, why string) {
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "thumbnail response cut off",
		slog.Int("written", written), slog.Int("bytes", size), slog.String("error", why))
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
