package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// Defaults of [Config.MinBodyRate] and [Config.BodyRateGrace].
const (
	DefaultMinBodyRate   = 1 << 10 // bytes a second
	DefaultBodyRateGrace = 5 * time.Second
)

// ErrBodyTooSlow is what reading a request body returns once the body
// fell below [Config.MinBodyRate]. It wraps os.ErrDeadlineExceeded, as
// the server's own read timeouts do, so handlers answer both alike (408).
var ErrBodyTooSlow = fmt.Errorf("server: request body below the minimum rate: %w", os.ErrDeadlineExceeded)

// minBodyRate cuts off request bodies that do not arrive at cfg's minimum
// rate. A client may take BodyRateGrace to start; after that it must have
// sent MinBodyRate bytes for every second since the body began. Each Read
// is given a read deadline (http.ResponseController, per stream on
// HTTP/2) at the moment the next byte becomes overdue, so a stalled body
// is cut off when it falls behind, not when ReadTimeout ends; the deadline
// is never later than ReadTimeout's. Only the time the handler spends
// inside Read counts against the client: while the handler does not read
// (it waits for memory to hold the body, or works on what it has), flow
// control keeps the client from sending, and a client that was waiting
// on the server is not cut off for it. A handler blocked on such a body
// holds its goroutine, its buffers and, in the services, a slot of memory
// budget: this is what bounds how long a slow client can hold them.
func minBodyRate(cfg Config, next http.Handler) http.Handler {
	rate, grace := cfg.MinBodyRate, cfg.BodyRateGrace
	switch {
	case rate < 0:
		return next
	case rate == 0:
		rate = DefaultMinBodyRate
	}
	if grace == 0 {
		grace = DefaultBodyRateGrace
	}
	grace = max(grace, 0)
	readTimeout := timeout(cfg.ReadTimeout, DefaultReadTimeout)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			now := time.Now()
			b := &rateBody{ReadCloser: r.Body, w: w, rate: rate, start: now, last: now, grace: grace, h2: r.ProtoMajor == 2}
			if st, _ := r.Context().Value(connKey{}).(*connState); st != nil && !b.h2 {
				// One request at a time on an HTTP/1.1 connection: its
				// body's count starts here.
				b.conn = &st.body
				b.conn.nanos.Store(0)
				b.conn.bytes.Store(0)
			}
			if readTimeout > 0 {
				b.limit = b.start.Add(readTimeout)
			}
			r.Body = b
		}
		next.ServeHTTP(w, r)
	})
}

type rateBody struct {
	io.ReadCloser
	w     http.ResponseWriter // for its read deadline, through http.ResponseController
	rate  int64
	start time.Time
	grace time.Duration
	limit time.Time // ReadTimeout's deadline; zero for none
	n     int64
	err   error
	// away is the time the handler spent outside Read since start, up to
	// last, when its previous Read returned (start before the first).
	away time.Duration
	last time.Time
	h2   bool // the request came on an HTTP/2 stream
	// conn is where an HTTP/1.1 connection's limit (MaxConns) sees how
	// slowly this body arrives; nil on HTTP/2 and without the limit.
	conn *bodyRead
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	now := time.Now()
	b.away += now.Sub(b.last)
	due := b.start.Add(b.grace + b.away + time.Duration(float64(b.n+1)/float64(b.rate)*float64(time.Second)))
	if !b.limit.IsZero() && b.limit.Before(due) {
		due = b.limit
	}
	b.setReadDeadline(due) // a writer without deadlines keeps ReadTimeout's
	if b.conn != nil {
		b.conn.since.Store(now.UnixNano())
	}
	n, err := b.ReadCloser.Read(p)
	b.last = time.Now()
	b.n += int64(n)
	if b.conn != nil {
		b.conn.bytes.Add(int64(n))
		b.conn.nanos.Add(int64(b.last.Sub(now)))
		b.conn.since.Store(0)
	}
	switch {
	case err == nil:
		if b.h2 {
			// An HTTP/2 stream's deadline fires on its own, ending the
			// body even while the handler is not reading; a connection's
			// fails only a Read under way. Until the next Read, only
			// ReadTimeout's holds.
			b.setReadDeadline(b.limit)
		}
	case errors.Is(err, io.EOF):
		// Done: no deadline may outlive the body and fail the server's
		// read of the next request, or cancel this one's context.
		b.setReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded) && (b.limit.IsZero() || due.Before(b.limit)):
		b.err = ErrBodyTooSlow
		return n, b.err
	}
	return n, err
}

// setReadDeadline sets the read deadline of the request's connection (its
// stream on HTTP/2). The controller is made here, where it stays on the
// stack, rather than held: that would cost the body a second allocation.
func (b *rateBody) setReadDeadline(t time.Time) {
	_ = http.NewResponseController(b.w).SetReadDeadline(t)
}
