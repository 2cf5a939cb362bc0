package session_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/session"
)

func TestMain(m *testing.M) {
	// go-redis probes a refused address once a second from a goroutine that
	// ends, at its next probe, after the client is closed.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newApp is a small application with the gallery's session routes. Its
// history of visited pages is its own: a session value it encodes itself.
func newApp(m *session.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/login", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			User string `json:"user"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.User == "" {
			http.Error(w, "bad login", http.StatusBadRequest)
			return
		}
		if err := m.Start(w, r, body.User); err != nil {
			session.WriteError(w, err)
			return
		}
		writeJSON(w, map[string]string{"user": body.User})
	})
	mux.HandleFunc("POST /v1/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := m.End(w, r); err != nil {
			session.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("POST /v1/visit", m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		var visits []map[string]string
		if _, err := s.Get("visits", &visits); err != nil {
			session.WriteError(w, err)
			return
		}
		visits = append(visits, map[string]string{"page": r.URL.Query().Get("page")})
		if err := s.Set("visits", visits); err != nil {
			session.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})))
	mux.Handle("GET /v1/history", m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		var visits []map[string]string
		if _, err := s.Get("visits", &visits); err != nil {
			session.WriteError(w, err)
			return
		}
		writeJSON(w, map[string]any{"user": s.User(), "history": visits})
	})))
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		writeJSON(w, map[string]string{"user": s.User(), "id": s.ID()})
	})
	mux.HandleFunc("POST /v1/note", func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		if err := s.Set("note", r.URL.Query().Get("v")); err != nil {
			session.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/note-sized", func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		if err := s.Set("note", r.URL.Query().Get("v")); err != nil {
			session.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Length", "2")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /v1/note", func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		var note string
		if _, err := s.Get("note", &note); err != nil {
			session.WriteError(w, err)
			return
		}
		writeJSON(w, map[string]string{"note": note})
	})
	mux.HandleFunc("GET /public", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	return m.Middleware(mux)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// browser keeps one session cookie, as a browser would for one site.
type browser struct {
	t      testing.TB
	srv    *httptest.Server
	cookie *http.Cookie // nil: none
	header http.Header  // extra request headers
}

type response struct {
	code    int
	body    string
	header  http.Header
	cookies []*http.Cookie
}

func (b *browser) do(method, path, body string) response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	if b.cookie != nil {
		req.AddCookie(&http.Cookie{Name: b.cookie.Name, Value: b.cookie.Value})
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.Name != session.DefaultCookieName {
			continue
		}
		if c.MaxAge < 0 {
			b.cookie = nil
		} else {
			b.cookie = c
		}
	}
	return response{resp.StatusCode, string(data), resp.Header, resp.Cookies()}
}

// field decodes a JSON object body and returns one string field.
func (r response) field(t testing.TB, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	s, _ := m[name].(string)
	return s
}

func (r response) want(t testing.TB, code int) response {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %q", r.code, code, r.body)
	}
	return r
}

// fakeClock is a settable time source for the memory store.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newManager(t testing.TB, cfg session.Config) *session.Manager {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
