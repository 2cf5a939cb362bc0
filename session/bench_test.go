package session_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal/internal/testkit/redistest"
	"github.com/shoal-dev/shoal/session"
)

func BenchmarkEncodeCookie(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		session.EncodeCookie(testSecret, validID)
	}
}

func BenchmarkDecodeCookie(b *testing.B) {
	v := session.EncodeCookie(testSecret, validID)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := session.DecodeCookie(testSecret, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMiddleware compares a bare handler with the same handler behind
// the middleware, with and without a signed-in session in the memory store
// (which is read and has its expiry pushed on every request).
func BenchmarkMiddleware(b *testing.B) {
	m := newManager(b, session.Config{})
	cookie := signIn(b, m)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, bc := range []struct {
		name   string
		h      http.Handler
		cookie *http.Cookie
	}{
		{"bare", bare, nil},
		{"middleware/no-cookie", m.Middleware(bare), nil},
		{"middleware/signed-in", m.Middleware(userHandler(b)), cookie},
	} {
		b.Run(bc.name, func(b *testing.B) { benchRequests(b, bc.h, bc.cookie) })
	}
}

// BenchmarkMiddlewareRedis is a signed-in request with its session in a
// real Redis on loopback: the round trip dominates.
func BenchmarkMiddlewareRedis(b *testing.B) {
	rs := redistest.Start(b)
	m := newManager(b, session.Config{Store: session.NewRedisStore(newRedisClient(b, rs.Addr()), "")})
	benchRequests(b, m.Middleware(userHandler(b)), signIn(b, m))
}

// signIn signs ada in through m and returns her cookie.
func signIn(tb testing.TB, m *session.Manager) *http.Cookie {
	tb.Helper()
	login := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Start(w, r, "ada"); err != nil {
			tb.Fatal(err)
		}
	}))
	rec := httptest.NewRecorder()
	login.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	return rec.Result().Cookies()[0]
}

// userHandler reads the session's user, as a signed-in route does.
func userHandler(tb testing.TB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		if s.User() == "" {
			tb.Fatal("no user")
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func benchRequests(b *testing.B, h http.Handler, cookie *http.Cookie) {
	req := httptest.NewRequest("GET", "/", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}
