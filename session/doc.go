// Package session keeps per-user state for stateless HTTP replicas: the
// state lives in a shared [Store] (Redis in production, memory for a single
// process), and the client holds only a signed cookie naming it.
//
// The cookie value is a random 192-bit session ID followed by an
// HMAC-SHA256 of it under the server secret, so any replica with the same
// secret can verify it and no client can forge or guess a valid one. A
// cookie that is tampered with, signed with another secret, or names a
// session the store no longer has (expired, deleted, never existed) is
// treated as absent: the request simply gets a fresh, empty session.
//
// A session holds the signed-in user ([Manager.Start], [Session.User]) and
// named values the application stores as JSON ([Session.Set],
// [Session.Get]); what the values mean is the application's business.
// Signing in as another user than the session's starts an empty session:
// the previous user's values never reach the next one.
//
// The cookie is HttpOnly, SameSite=Lax and, unless [Config.CookieSecure]
// says otherwise, Secure.
//
// [Manager.Middleware] attaches a [Session] to every request without any
// store I/O; the record is loaded the first time the handler reads or
// changes it. Expiry slides: a request that loads a live session pushes
// its expiry TTL into the future, and sends the cookie again with that
// Max-Age, once [Config.RefreshAfter] (a tenth of the TTL by default) has
// passed since the last push; the requests in between write nothing,
// neither to the store nor to the response. A session therefore lives
// between TTL-RefreshAfter and TTL after its last use. A store implementing
// [Refresher] loads and pushes in one call: one Redis round trip for a
// request that only reads its session, two for one that changes it.
// Changes are saved just before the response header is written, so a
// failed save can still turn into a 503 answer.
//
// When the store is unreachable, [Manager.Require] answers 503 with a JSON
// body {"error": "..."} and a Retry-After header, [Manager.Start] returns an
// error wrapping [ErrUnavailable] (write it with [WriteError]), and
// [Manager.Check] reports the outage for a readiness check. Routes that do
// not touch the session keep working, and everything recovers by itself
// once the store answers again. [RedisStore] fails fast while Redis is
// down or hung: each call has a deadline ([WithTimeout], default
// [DefaultRedisTimeout]), and after failures in a row its circuit breaker
// ([WithBreaker]) fails calls at once with [ErrBreakerOpen] until a trial
// call succeeds.
//
// Concurrent requests of one session that both change it are last writer
// wins: each saves the whole record it loaded.
package session
