package session_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
	var cookie *http.Cookie
	login := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.Start(w, r, "ada"); err != nil {
			b.Fatal(err)
		}
	}))
	rec := httptest.NewRecorder()
	login.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	cookie = rec.Result().Cookies()[0]

	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	user := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		if s.User() == "" {
			b.Fatal("no user")
		}
		w.WriteHeader(http.StatusNoContent)
	})
	for _, bc := range []struct {
		name   string
		h      http.Handler
		cookie bool
	}{
		{"bare", bare, false},
		{"middleware/no-cookie", m.Middleware(bare), false},
		{"middleware/signed-in", m.Middleware(user), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/", nil)
			if bc.cookie {
				req.AddCookie(cookie)
			}
			w := discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}
