package requestlog

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
)

// HeaderID is the header that carries a request's ID, in both directions.
const HeaderID = "X-Request-ID"

// headerKey is HeaderID in canonical form, for direct map access: going
// through Header.Get and Set would canonicalize "ID" on every request.
const headerKey = "X-Request-Id"

// maxIDLen bounds an incoming ID: long enough for any ID scheme in use
// (UUIDs, trace IDs, ULIDs with prefixes), short enough that a hostile one
// cannot bloat every log line of the request.
const maxIDLen = 128

type idKey struct{}

// ID takes the request's X-Request-ID when it is valid (exactly one value,
// 1 to 128 bytes of printable ASCII without spaces) or makes a new random
// one, and puts it on the request's context (see [IDFromContext]), on the
// request's header and on the response's header.
func ID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &idContext{Context: r.Context()}
		if vals := r.Header[headerKey]; len(vals) == 1 && validID(vals[0]) {
			c.id = vals[0]
		} else {
			c.id = newID()
			// The header is replaced too, so a handler that forwards or logs
			// it never passes the untrusted value on.
			c.req[0] = c.id
			r.Header[headerKey] = c.req[:]
		}
		c.resp[0] = c.id
		w.Header()[headerKey] = c.resp[:]
		next.ServeHTTP(w, r.WithContext(c))
	})
}

// IDFromContext returns the request ID ctx carries, or "" when none.
func IDFromContext(ctx context.Context) string {
	if c, ok := ctx.Value(idKey{}).(*idContext); ok {
		return c.id
	}
	return ""
}

// ContextWithID returns a copy of ctx carrying the request ID id, for
// work that continues a request outside its handler (a queued job, a test).
func ContextWithID(ctx context.Context, id string) context.Context {
	if ctx == nil {
		panic("requestlog: ContextWithID with a nil context")
	}
	return &idContext{Context: ctx, id: id}
}

// idContext is a context carrying a request ID, with the backing arrays
// of the header values ID sets, all in one allocation where
// context.WithValue, the boxed ID and two header slices took four. The
// arrays have length one, so a handler's Header().Add copies rather than
// appends in place.
type idContext struct {
	context.Context
	id        string
	req, resp [1]string
}

// Value answers idKey with c itself: a pointer in an interface does not
// allocate, where the ID string would, on every IDFromContext.
func (c *idContext) Value(key any) any {
	if key == (idKey{}) {
		return c
	}
	return c.Context.Value(key)
}

func (c *idContext) String() string { return fmt.Sprintf("%v.WithRequestID(%q)", c.Context, c.id) }

func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// newID returns 128 random bits in hex. math/rand/v2's global generator
// is seeded from the operating system and runs per thread without a lock,
// so an ID costs two calls and one allocation; it needs to be unique, not
// secret.
func newID() string {
	var b [16]byte
	for i, v := range [2]uint64{rand.Uint64(), rand.Uint64()} {
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	var s [32]byte
	hex.Encode(s[:], b[:])
	return string(s[:])
}
