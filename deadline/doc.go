// Package deadline carries a request's deadline from caller to callee, so
// that work stops when the caller gives up.
//
// A caller that will wait at most 300ms more says so in the
// X-Request-Timeout-Ms header ([Header]); [Transport] (or [Inject]) sets
// it from the outgoing request's context. On the callee, [Middleware]
// bounds the request's context by that time and by the route's own
// timeout, whichever is sooner, so a handler blocked on the context sees
// context.DeadlineExceeded instead of finishing work nobody will read.
// A handler that calls further services through Transport with its
// request's context passes on what is left, so the whole chain stops
// together.
//
// The header carries a duration, not a point in time, so the caller's and
// callee's clocks need not agree. The callee counts it from when
// Middleware sees the request, so its deadline falls later than the
// caller's by the time the request took to arrive; the caller's own
// hang-up (its transport closes the connection or resets the stream) ends
// the callee's request soon after in any case.
//
// A header value the middleware cannot use (not a whole number of
// milliseconds, negative, above 24 hours, or given twice) is ignored
// rather than rejected: a deadline only helps, and a bad one must not
// fail the request. A value of 0 means the caller has already given up.
//
// The bounded context costs a fast route little: its deadline is set at
// once, but the timer behind Done starts only when something waits on
// Done (a call through an http.Client, a select, context.WithCancel of
// it); until then Err compares the clock with the deadline. It ends as
// context.WithTimeout's would, at the deadline or when the handler
// returns, whichever comes first.
package deadline
