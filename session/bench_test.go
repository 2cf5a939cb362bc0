package session_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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

// maxSignedInAllocs bounds the allocations of a signed-in request with
// its session in memory, as Shoal's performance goals set it.
const maxSignedInAllocs = 8

// TestSignedInAllocs fails when a signed-in request with its session in
// memory allocates more than maxSignedInAllocs times: one that only
// reads the session, and one whose expiry is due and gets the cookie again.
func TestSignedInAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	for _, tt := range []struct {
		name         string
		refreshAfter time.Duration
		wantCookie   bool
	}{
		{"reads", 0, false},
		{"refreshes", -1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, session.Config{RefreshAfter: tt.refreshAfter})
			h := m.Middleware(userHandler(t))
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(signIn(t, m))
			w := discardWriter{h: http.Header{}}
			allocs := testing.AllocsPerRun(1000, func() {
				clear(w.h)
				h.ServeHTTP(w, req)
			})
			if got := w.h.Get("Set-Cookie") != ""; got != tt.wantCookie {
				t.Errorf("cookie set: %v, want %v", got, tt.wantCookie)
			}
			if allocs > maxSignedInAllocs {
				t.Errorf("a signed-in request allocates %v times, want at most %d", allocs, maxSignedInAllocs)
			}
			t.Logf("%v allocations per request", allocs)
		})
	}
}

// BenchmarkMiddleware compares a bare handler with the same handler behind
// the middleware, with and without a signed-in session in the memory
// store: read on every request, its expiry pushed and its cookie sent
// again only once RefreshAfter has passed ("signed-in"), or on every
// request ("signed-in-refresh").
func BenchmarkMiddleware(b *testing.B) {
	m := newManager(b, session.Config{})
	always := newManager(b, session.Config{RefreshAfter: -1})
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, bc := range []struct {
		name   string
		h      http.Handler
		cookie *http.Cookie
	}{
		{"bare", bare, nil},
		{"middleware/no-cookie", m.Middleware(bare), nil},
		{"middleware/signed-in", m.Middleware(userHandler(b)), signIn(b, m)},
		{"middleware/signed-in-refresh", always.Middleware(userHandler(b)), signIn(b, always)},
	} {
		b.Run(bc.name, func(b *testing.B) { benchRequests(b, bc.h, bc.cookie) })
	}
}

// BenchmarkMiddlewareRedis is a signed-in request with its session in a
// real Redis on loopback: the round trip dominates.
func BenchmarkMiddlewareRedis(b *testing.B) {
	rs := redistest.Start(b)
	client := newRedisClient(b, rs.Addr())
	trips := &roundTrips{}
	client.AddHook(trips)
	m := newManager(b, session.Config{Store: session.NewRedisStore(client, "")})
	cookie := signIn(b, m)
	before := trips.n.Load()
	benchRequests(b, m.Middleware(userHandler(b)), cookie)
	b.ReportMetric(float64(trips.n.Load()-before)/float64(b.N), "round-trips/op")
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
