package requestlog

import (
	"context"
	"encoding/hex"
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
		vals := r.Header[headerKey]
		var id string
		if len(vals) == 1 && validID(vals[0]) {
			id = vals[0]
		} else {
			id = newID()
			// The header is replaced too, so a handler that forwards or logs
			// it never passes the untrusted value on.
			r.Header[headerKey] = []string{id}
		}
		w.Header()[headerKey] = []string{id}
		next.ServeHTTP(w, r.WithContext(ContextWithID(r.Context(), id)))
	})
}

// IDFromContext returns the request ID ctx carries, or "" when none.
func IDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(idKey{}).(string)
	return id
}

// ContextWithID returns a copy of ctx carrying the request ID id, for
// work that continues a request outside its handler (a queued job, a test).
func ContextWithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

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
