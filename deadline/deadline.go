package deadline

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// Header carries the caller's remaining time in whole milliseconds. It is
// in canonical form, so this package indexes http.Header maps with it
// directly.
const Header = "X-Request-Timeout-Ms"

// maxTimeout bounds a usable header value: anything longer is a mistake
// or a probe, not a caller's real deadline.
const maxTimeout = 24 * time.Hour

// Middleware bounds each request's context by d and by the caller's
// [Header] value, whichever is sooner, counted from when Middleware sees
// the request. d <= 0 means no route timeout (the header still applies).
// A malformed, negative or absurd (above 24h) header value is ignored. An
// earlier deadline already on the context stays.
//
// Handlers see context.DeadlineExceeded from the context; Middleware does
// not write a response itself and buffers nothing (unlike
// http.TimeoutHandler): answering a request whose time is up is the
// handler's job.
func Middleware(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, ok := d, d > 0
		if caller, valid := parse(r.Header[Header]); valid && (!ok || caller < limit) {
			limit, ok = caller, true
		}
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ctx := newRouteContext(r.Context(), time.Now().Add(limit))
		defer ctx.end()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// parse reads a header's values as one whole number of milliseconds from
// 0 to maxTimeout.
func parse(vals []string) (time.Duration, bool) {
	if len(vals) != 1 {
		return 0, false
	}
	s := vals[0]
	// Digits only: strconv would also take a sign, and its error for an
	// overlong value costs an allocation.
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var ms int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
	}
	d := time.Duration(ms) * time.Millisecond
	if d > maxTimeout {
		return 0, false
	}
	return d, true
}

// Inject sets [Header] on an outgoing request from its context's deadline:
// the remaining time rounded down to whole milliseconds, at least 1 while
// the deadline has not passed, and 0 once it has. It removes an existing
// Header when the context has no deadline, or one further away than the
// 24 hours a callee accepts, so that a header copied from an inbound
// request never claims a deadline the call does not have.
//
// Inject modifies req's header; a RoundTripper must not, and uses
// [Transport] instead.
func Inject(req *http.Request) {
	v, ok := value(req.Context())
	if !ok {
		delete(req.Header, Header)
		return
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header[Header] = []string{v}
}

// value is the Header value for ctx; false when the header should be
// absent.
func value(ctx context.Context) (string, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return "", false
	}
	left := time.Until(dl)
	switch {
	case left > maxTimeout:
		return "", false
	case left <= 0:
		return "0", true
	}
	return strconv.FormatInt(max(left.Milliseconds(), 1), 10), true
}

// Transport returns an http.RoundTripper that sends each request through
// next with [Header] set as [Inject] would, on a clone of the request (the
// caller's request is left as it is). A nil next means
// http.DefaultTransport. The RoundTripper passes CloseIdleConnections on
// to next.
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{next: next}
}

type transport struct {
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	v, ok := value(req.Context())
	old := req.Header[Header]
	if (!ok && old == nil) || (ok && len(old) == 1 && old[0] == v) {
		return t.next.RoundTrip(req) // already right: no clone needed
	}
	req = req.Clone(req.Context())
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if !ok {
		delete(req.Header, Header)
	} else {
		req.Header[Header] = []string{v}
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach next.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
