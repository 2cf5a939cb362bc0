package session_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/session"
)

func TestNewManagerErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     session.Config
		wantErr string
	}{
		{"no secret", session.Config{}, "Secret is 0 bytes, need at least 32"},
		{"short secret", session.Config{Secret: []byte("short")}, "Secret is 5 bytes"},
		{"tiny ttl", session.Config{Secret: testSecret, TTL: time.Millisecond}, "TTL 1ms is under a second"},
		{"negative ttl", session.Config{Secret: testSecret, TTL: -time.Minute}, "TTL -1m0s is under a second"},
		{"bad cookie name", session.Config{Secret: testSecret, CookieName: "a b"}, `CookieName "a b"`},
		{"refresh after the ttl", session.Config{Secret: testSecret, TTL: time.Minute, RefreshAfter: time.Minute}, "RefreshAfter 1m0s is not under the TTL 1m0s"},
		{"refresh after the default ttl", session.Config{Secret: testSecret, RefreshAfter: time.Hour}, "RefreshAfter 1h0m0s is not under the TTL 30m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := session.NewManager(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "session: ") {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	m, err := session.NewManager(session.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if m.TTL() != session.DefaultTTL {
		t.Errorf("default TTL = %v", m.TTL())
	}
	for _, ra := range []time.Duration{-time.Second, 29 * time.Minute} {
		if _, err := session.NewManager(session.Config{Secret: testSecret, RefreshAfter: ra}); err != nil {
			t.Errorf("RefreshAfter %v: %v", ra, err)
		}
	}
}

func TestLoginHistoryLogout(t *testing.T) {
	store := session.NewMemoryStore(nil)
	m := newManager(t, session.Config{Store: store})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	b := &browser{t: t, srv: srv}

	b.do("GET", "/v1/history", "").want(t, http.StatusUnauthorized)
	b.do("GET", "/public", "").want(t, http.StatusOK)
	if b.cookie != nil || store.Len() != 0 {
		t.Fatalf("untouched session created state: cookie %v, %d records", b.cookie, store.Len())
	}
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	for _, page := range []string{"a", "b", "c"} {
		b.do("POST", "/v1/visit?page="+page, "").want(t, http.StatusNoContent)
	}
	r := b.do("GET", "/v1/history", "").want(t, http.StatusOK)
	if want := `{"history":[{"page":"a"},{"page":"b"},{"page":"c"}],"user":"ada"}`; strings.TrimSpace(r.body) != want {
		t.Errorf("history = %s, want %s", r.body, want)
	}
	b.do("POST", "/v1/logout", "").want(t, http.StatusNoContent)
	if b.cookie != nil {
		t.Error("logout did not expire the cookie")
	}
	if store.Len() != 0 {
		t.Errorf("logout left %d records", store.Len())
	}
	b.do("GET", "/v1/history", "").want(t, http.StatusUnauthorized)
}

func TestCookieAttributes(t *testing.T) {
	tests := []struct {
		name       string
		secure     session.CookieSecure
		tls        bool
		proto      string
		wantSecure bool
	}{
		{"default is always, even over plain http", "", false, "", true},
		{"always over plain http", session.CookieSecureAlways, false, "", true},
		{"always despite forwarded http", session.CookieSecureAlways, false, "http", true},
		{"never over tls", session.CookieSecureNever, true, "", false},
		{"never despite forwarded https", session.CookieSecureNever, false, "https", false},
		{"forwarded: plain http", session.CookieSecureForwarded, false, "", false},
		{"forwarded: tls", session.CookieSecureForwarded, true, "", true},
		{"forwarded: https", session.CookieSecureForwarded, false, "https", true},
		{"forwarded: http", session.CookieSecureForwarded, false, "http", false},
		{"forwarded: proxy chain from https", session.CookieSecureForwarded, false, "HTTPS, http", true},
		{"forwarded: proxy chain from http", session.CookieSecureForwarded, false, "http, https", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, session.Config{CookieSecure: tt.secure, TTL: 90 * time.Second})
			var srv *httptest.Server
			if tt.tls {
				srv = httptest.NewTLSServer(newApp(m))
			} else {
				srv = httptest.NewServer(newApp(m))
			}
			defer srv.Close()
			b := &browser{t: t, srv: srv, header: http.Header{}}
			if tt.proto != "" {
				b.header.Set("X-Forwarded-Proto", tt.proto)
			}
			b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
			c := b.cookie
			if c == nil {
				t.Fatal("no session cookie set")
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 90 {
				t.Errorf("cookie = %+v; want HttpOnly, SameSite=Lax, Path=/, Max-Age=90", c)
			}
			if c.Secure != tt.wantSecure {
				t.Errorf("Secure = %v, want %v", c.Secure, tt.wantSecure)
			}
			if _, err := session.DecodeCookie(testSecret, c.Value); err != nil {
				t.Errorf("cookie does not decode: %v", err)
			}
		})
	}
}

func TestParseCookieSecure(t *testing.T) {
	for _, in := range []string{"always", "never", "forwarded"} {
		got, err := session.ParseCookieSecure(in)
		if err != nil || string(got) != in {
			t.Errorf("ParseCookieSecure(%q) = %q, %v", in, got, err)
		}
	}
	if got, err := session.ParseCookieSecure(""); err != nil || got != session.CookieSecureAlways {
		t.Errorf(`ParseCookieSecure("") = %q, %v; want always`, got, err)
	}
	if _, err := session.ParseCookieSecure("auto"); err == nil || !strings.Contains(err.Error(), `"auto"`) {
		t.Errorf(`ParseCookieSecure("auto") = %v, want an error naming the value`, err)
	}
	if _, err := session.NewManager(session.Config{Secret: testSecret, CookieSecure: "yes"}); err == nil || !strings.Contains(err.Error(), "CookieSecure") {
		t.Errorf("NewManager with CookieSecure yes: %v, want an error naming the field", err)
	}
}

// TestBadCookieGetsFreshSession covers every way a presented cookie can be
// worthless: each gives an anonymous session, never an error, and the next
// change gets a new ID.
func TestBadCookieGetsFreshSession(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := session.NewMemoryStore(clock.Now)
	m := newManager(t, session.Config{Store: store, TTL: 30 * time.Minute})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()

	login := func() *http.Cookie {
		b := &browser{t: t, srv: srv}
		b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
		return b.cookie
	}
	tests := []struct {
		name   string
		cookie func() string
	}{
		{"garbage", func() string { return "not-a-session" }},
		{"empty", func() string { return "" }},
		{"tampered signature", func() string {
			v := []byte(login().Value)
			v[len(v)-2] ^= 'A' ^ 'B'
			return string(v)
		}},
		{"tampered id", func() string {
			v := []byte(login().Value)
			v[0] = map[bool]byte{true: 'B', false: 'A'}[v[0] == 'A']
			return string(v)
		}},
		{"other secret", func() string {
			id, _ := session.DecodeCookie(testSecret, login().Value)
			return session.EncodeCookie([]byte("another secret of thirty-two bytes.."), id)
		}},
		{"unknown id, correctly signed", func() string {
			return session.EncodeCookie(testSecret, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		}},
		{"expired", func() string {
			c := login()
			clock.Advance(31 * time.Minute)
			return c.Value
		}},
		{"logged out", func() string {
			b := &browser{t: t, srv: srv}
			b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
			old := b.cookie.Value
			b.do("POST", "/v1/logout", "").want(t, http.StatusNoContent)
			return old
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value := tt.cookie()
			b := &browser{t: t, srv: srv, cookie: &http.Cookie{Name: session.DefaultCookieName, Value: value}}
			r := b.do("GET", "/v1/whoami", "").want(t, http.StatusOK)
			if u, id := r.field(t, "user"), r.field(t, "id"); u != "" || id != "" {
				t.Errorf("whoami = user %q id %q, want an anonymous new session", u, id)
			}
			b.do("GET", "/v1/history", "").want(t, http.StatusUnauthorized)
			b.do("POST", "/v1/note?v=x", "").want(t, http.StatusNoContent)
			if b.cookie == nil || b.cookie.Value == value {
				t.Fatalf("a change did not issue a new cookie (had %q, got %v)", value, b.cookie)
			}
			r = b.do("GET", "/v1/note", "").want(t, http.StatusOK)
			if n := r.field(t, "note"); n != "x" {
				t.Errorf("note = %q, want x", n)
			}
		})
	}
}

func TestStartRotatesID(t *testing.T) {
	store := session.NewMemoryStore(nil)
	m := newManager(t, session.Config{Store: store})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	b := &browser{t: t, srv: srv}

	b.do("POST", "/v1/note?v=kept", "").want(t, http.StatusNoContent)
	planted := b.cookie.Value
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	if b.cookie.Value == planted {
		t.Fatal("login kept the pre-login session ID")
	}
	if r := b.do("GET", "/v1/note", "").want(t, http.StatusOK); r.field(t, "note") != "kept" {
		t.Errorf("login lost the session's values: %s", r.body)
	}
	// Whoever knows the pre-login cookie gets nothing.
	attacker := &browser{t: t, srv: srv, cookie: &http.Cookie{Name: session.DefaultCookieName, Value: planted}}
	if r := attacker.do("GET", "/v1/whoami", "").want(t, http.StatusOK); r.field(t, "user") != "" {
		t.Errorf("pre-login cookie reached user %q", r.field(t, "user"))
	}
	attacker.do("GET", "/v1/history", "").want(t, http.StatusUnauthorized)
	if store.Len() != 1 {
		t.Errorf("%d records after login, want the new one only", store.Len())
	}
}

// TestLoginAsAnotherUserStartsEmpty signs ada in, lets her leave values,
// then signs bob in from the same browser: bob must see none of ada's
// values and get a new ID; ada signing in again keeps what she left.
func TestLoginAsAnotherUserStartsEmpty(t *testing.T) {
	store := session.NewMemoryStore(nil)
	m := newManager(t, session.Config{Store: store})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	b := &browser{t: t, srv: srv}

	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	b.do("POST", "/v1/visit?page=secret", "").want(t, http.StatusNoContent)
	b.do("POST", "/v1/note?v=ada-note", "").want(t, http.StatusNoContent)
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	if r := b.do("GET", "/v1/note", "").want(t, http.StatusOK); r.field(t, "note") != "ada-note" {
		t.Errorf("ada signing in again lost her values: %s", r.body)
	}
	adas := b.cookie.Value

	b.do("POST", "/v1/login", `{"user":"bob"}`).want(t, http.StatusOK)
	if b.cookie.Value == adas {
		t.Error("login as another user kept the session ID")
	}
	r := b.do("GET", "/v1/history", "").want(t, http.StatusOK)
	if want := `{"history":null,"user":"bob"}`; strings.TrimSpace(r.body) != want {
		t.Errorf("bob's history = %s, want %s", r.body, want)
	}
	if r := b.do("GET", "/v1/note", "").want(t, http.StatusOK); r.field(t, "note") != "" {
		t.Errorf("bob sees ada's note: %s", r.body)
	}
	if store.Len() != 1 {
		t.Errorf("%d records, want bob's only", store.Len())
	}
}

func TestSlidingExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newManager(t, session.Config{Store: session.NewMemoryStore(clock.Now), TTL: 30 * time.Minute})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	b := &browser{t: t, srv: srv}
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)

	// Each use within the TTL pushes expiry out, so the session outlives
	// its first TTL many times over.
	for range 5 {
		clock.Advance(29 * time.Minute)
		r := b.do("GET", "/v1/history", "").want(t, http.StatusOK)
		if len(r.cookies) == 0 {
			t.Fatal("a use did not refresh the cookie's Max-Age")
		}
	}
	clock.Advance(30 * time.Minute)
	b.do("GET", "/v1/history", "").want(t, http.StatusUnauthorized)
}

// failingStore answers like a store whose backend is down.
type failingStore struct{ *session.MemoryStore }

func (*failingStore) Save(context.Context, string, session.Data, time.Duration) error {
	return errors.New("connection refused")
}

// TestSaveFailureReplacesResponse shows that a session change which cannot
// be saved turns into a 503 instead of a success the client would trust.
func TestSaveFailureReplacesResponse(t *testing.T) {
	m := newManager(t, session.Config{Store: &failingStore{session.NewMemoryStore(nil)}})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	b := &browser{t: t, srv: srv}
	r := b.do("POST", "/v1/note?v=x", "").want(t, http.StatusServiceUnavailable)
	if r.field(t, "error") == "" || r.header.Get("Retry-After") == "" {
		t.Errorf("503 lacks a JSON error or Retry-After: %q %v", r.body, r.header)
	}
	if b.cookie != nil {
		t.Error("a cookie was issued for a session that was not saved")
	}
	r = b.do("POST", "/v1/note-sized?v=x", "").want(t, http.StatusServiceUnavailable)
	if r.field(t, "error") == "" {
		t.Errorf("503 after a Content-Length was set: body %q", r.body)
	}
	r = b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusServiceUnavailable)
	if r.field(t, "error") == "" {
		t.Errorf("login 503 body = %q", r.body)
	}
}

func TestConcurrentUseOfOneSession(t *testing.T) {
	m := newManager(t, session.Config{})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	b := &browser{t: t, srv: srv}
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	cookie := b.cookie
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := &browser{t: t, srv: srv, cookie: cookie}
			for range 10 {
				if r := c.do("POST", "/v1/visit?page=p", ""); r.code != http.StatusNoContent {
					t.Errorf("visit: %d %s", r.code, r.body)
				}
				if r := c.do("GET", "/v1/history", ""); r.code != http.StatusOK {
					t.Errorf("history: %d %s", r.code, r.body)
				}
			}
		})
	}
	wg.Wait()
}

func TestRequireWithoutMiddleware(t *testing.T) {
	m := newManager(t, session.Config{})
	h := m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("got %d %q, want 401 with a JSON error", rec.Code, rec.Body.String())
	}
}

func TestStartWithoutMiddleware(t *testing.T) {
	store := session.NewMemoryStore(nil)
	m := newManager(t, session.Config{Store: store})
	rec := httptest.NewRecorder()
	if err := m.Start(rec, httptest.NewRequest("POST", "/", nil), "ada"); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v, want one", cookies)
	}
	id, err := session.DecodeCookie(testSecret, cookies[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	d, err := store.Load(context.Background(), id)
	if err != nil || d.User != "ada" {
		t.Fatalf("stored record = %+v, %v; want user ada", d, err)
	}
	if err := m.Start(rec, httptest.NewRequest("POST", "/", nil), ""); err == nil {
		t.Error("Start with an empty user succeeded")
	}
}

// TestRefreshAfter: a request pushes the expiry and re-sends the cookie
// only once RefreshAfter has passed since the last push; the requests in
// between leave both alone, so a session lives between TTL-RefreshAfter
// and TTL after its last use.
func TestRefreshAfter(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, tt := range []struct {
		name         string
		refreshAfter time.Duration
		steps        []refreshStep
	}{
		{"every 5m of a 30m ttl", 5 * time.Minute, []refreshStep{
			{4 * time.Minute, http.StatusOK, false},
			{time.Minute, http.StatusOK, true}, // 5m since the sign-in
			{4 * time.Minute, http.StatusOK, false},
			// The last push was 4m before the last use: 26m idle is
			// enough to expire.
			{26 * time.Minute, http.StatusUnauthorized, false},
		}},
		{"every 5m, used just in time", 5 * time.Minute, []refreshStep{
			{4 * time.Minute, http.StatusOK, false},
			{26*time.Minute - time.Second, http.StatusOK, true},
			{30*time.Minute - time.Second, http.StatusOK, true},
		}},
		{"default: a tenth of the ttl", 0, []refreshStep{
			{3*time.Minute - time.Second, http.StatusOK, false},
			{time.Second, http.StatusOK, true},
			{time.Second, http.StatusOK, false},
		}},
		{"negative: every request", -1, []refreshStep{
			{0, http.StatusOK, true},
			{time.Second, http.StatusOK, true},
			{30*time.Minute - time.Second, http.StatusOK, true},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, session.Config{Store: session.NewMemoryStore(clock.Now), TTL: 30 * time.Minute, RefreshAfter: tt.refreshAfter})
			srv := httptest.NewServer(newApp(m))
			defer srv.Close()
			b := &browser{t: t, srv: srv}
			b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
			for i, st := range tt.steps {
				clock.Advance(st.advance)
				r := b.do("GET", "/v1/history", "").want(t, st.code)
				if got := len(r.cookies) > 0; got != st.cookie {
					t.Fatalf("step %d: cookie set %v, want %v", i, got, st.cookie)
				}
				if st.cookie && r.cookies[0].MaxAge != 1800 {
					t.Errorf("step %d: refreshed cookie's Max-Age %d, want the TTL", i, r.cookies[0].MaxAge)
				}
			}
		})
	}
}

type refreshStep struct {
	advance time.Duration
	code    int
	cookie  bool // the response sets the cookie
}

// TestCookieHeader: the session cookie is found as net/http would parse
// it: among others, in any Cookie line, quoted or not, the first one that
// verifies.
func TestCookieHeader(t *testing.T) {
	m := newManager(t, session.Config{})
	good := signIn(t, m).Value
	other := session.EncodeCookie([]byte("another secret of thirty-two bytes.."), validID)
	name := session.DefaultCookieName
	tests := []struct {
		name   string
		lines  []string
		wantID bool
	}{
		{"alone", []string{name + "=" + good}, true},
		{"among others", []string{"a=1; " + name + "=" + good + "; b=2"}, true},
		{"no spaces", []string{"a=1;" + name + "=" + good + ";b=2"}, true},
		{"padded", []string{" a=1 ;  " + name + " =" + good + " "}, true},
		{"quoted", []string{name + `="` + good + `"`}, true},
		{"second line", []string{"a=1", name + "=" + good}, true},
		{"after a bad one", []string{name + "=" + other + "; " + name + "=" + good}, true},
		{"only a bad one", []string{name + "=" + other}, false},
		{"half-quoted", []string{name + `="` + good}, false},
		{"other name", []string{name + "x=" + good}, false},
		{"name in a value", []string{"a=" + name + "=" + good}, false},
		{"empty", []string{"", ";;", name}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var user string
			h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s, _ := session.FromContext(r.Context())
				user = s.User()
			}))
			req := httptest.NewRequest("GET", "/", nil)
			req.Header["Cookie"] = tt.lines
			h.ServeHTTP(httptest.NewRecorder(), req)
			if (user == "ada") != tt.wantID {
				t.Errorf("user %q, want signed in %v", user, tt.wantID)
			}
			netHTTP := false
			for _, c := range req.CookiesNamed(name) {
				if _, err := session.DecodeCookie(testSecret, c.Value); err == nil {
					netHTTP = true
				}
			}
			if netHTTP != tt.wantID {
				t.Errorf("net/http finds a valid cookie: %v, want %v", netHTTP, tt.wantID)
			}
		})
	}
}

// TestSessionContext: the context Middleware hands on carries the session
// into contexts derived from it, and the request's cancellation through.
func TestSessionContext(t *testing.T) {
	m := newManager(t, session.Config{})
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "kept"))
	defer cancel()
	done := make(chan error, 1)
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, stop := context.WithTimeout(r.Context(), time.Minute)
		defer stop()
		s, ok := session.FromContext(ctx)
		switch {
		case !ok || s == nil:
			done <- errors.New("no session in a derived context")
		case ctx.Value(key{}) != "kept":
			done <- errors.New("lost a value of the request's context")
		default:
			cancel()
			<-ctx.Done()
			done <- nil
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(parent))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := session.FromContext(parent); ok {
		t.Error("the session leaked into the caller's context")
	}
}
