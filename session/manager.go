package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Defaults of [Config].
const (
	DefaultTTL        = 30 * time.Minute
	DefaultCookieName = "shoal_session"
	// MinSecretLen is the shortest accepted [Config.Secret]: 256 bits, the
	// output size of SHA-256.
	MinSecretLen = 32
)

// Config configures a [Manager]. A zero field means its default; only
// Secret has none and is required.
type Config struct {
	// Store keeps the session records. Nil means a new [MemoryStore], which
	// suits only a single replica.
	Store Store
	// Secret signs the cookies; at least MinSecretLen bytes, and the same on
	// every replica. Changing it signs everyone out.
	Secret []byte
	// TTL is how long a session lives after its last use; 0 means
	// DefaultTTL. It must be at least a second.
	TTL time.Duration
	// CookieName is the name of the session cookie; "" means
	// DefaultCookieName.
	CookieName string
	// CookiePath is the Path attribute of the cookie; "" means "/".
	CookiePath string
	// CookieSecure says when the cookie carries the Secure attribute, which
	// keeps browsers from sending it over plain HTTP; "" means
	// CookieSecureAlways.
	CookieSecure CookieSecure
	// Logger receives store failures; nil means slog.Default().
	Logger *slog.Logger
}

// Manager issues session cookies and attaches sessions to requests. Create
// it with [NewManager]; it is safe for concurrent use.
type Manager struct {
	store      Store
	secret     []byte
	ttl        time.Duration
	cookieName string
	cookiePath string
	secureMode CookieSecure
	log        *slog.Logger
}

// withDefaults returns c with every zero field that has a default set to
// it.
func (c Config) withDefaults() Config {
	if c.Store == nil {
		c.Store = NewMemoryStore(nil)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.CookiePath == "" {
		c.CookiePath = "/"
	}
	if c.CookieSecure == "" {
		c.CookieSecure = CookieSecureAlways
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field by name: a Secret shorter than
// MinSecretLen, a TTL other than zero under a second, a CookieName
// that is not a valid cookie name, or an unknown CookieSecure.
func (c Config) Validate() error {
	if len(c.Secret) < MinSecretLen {
		return fmt.Errorf("session: Secret is %d bytes, need at least %d", len(c.Secret), MinSecretLen)
	}
	if c.TTL != 0 && c.TTL < time.Second {
		return fmt.Errorf("session: TTL %v is under a second", c.TTL)
	}
	if c.CookieName != "" {
		if err := (&http.Cookie{Name: c.CookieName, Value: "v"}).Valid(); err != nil {
			return fmt.Errorf("session: CookieName %q: %w", c.CookieName, err)
		}
	}
	if _, err := ParseCookieSecure(string(c.CookieSecure)); err != nil {
		return fmt.Errorf("session: CookieSecure %q is not always, never or forwarded", c.CookieSecure)
	}
	return nil
}

// NewManager checks cfg and returns a Manager; its error is
// [Config.Validate]'s.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Manager{
		store:      cfg.Store,
		secret:     append([]byte(nil), cfg.Secret...),
		ttl:        cfg.TTL,
		cookieName: cfg.CookieName,
		cookiePath: cfg.CookiePath,
		secureMode: cfg.CookieSecure,
		log:        cfg.Logger,
	}, nil
}

// TTL returns the session lifetime after last use.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Middleware attaches a [Session] to each request, found with
// [FromContext]. It does no store I/O itself: the record is loaded when the
// handler first uses the session. Before the response header is written it
// saves a changed session and sets the cookie, or pushes the expiry of a
// loaded one; if that save fails, the client gets a 503 JSON error instead
// of the handler's response.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		s := &Session{m: m}
		for _, c := range r.CookiesNamed(m.cookieName) {
			id, err := DecodeCookie(m.secret, c.Value)
			if err == nil {
				s.id = id
				break
			}
			m.log.DebugContext(r.Context(), "session: ignoring cookie", "err", err)
		}
		s.ctx = context.WithValue(r.Context(), ctxKey{}, s)
		r = r.WithContext(s.ctx)
		sw := &writer{ResponseWriter: w, s: s, r: r}
		next.ServeHTTP(sw, r)
		if !sw.committed {
			sw.commit()
		} else if !sw.failed {
			s.saveLate()
		}
	})
}

// Require serves next only for requests with an authenticated session (one
// with a user, see [Manager.Start]). Others get 401 with a JSON error, and
// all get 503 with a JSON error and Retry-After while the store is
// unavailable. It includes [Manager.Middleware] when that is not already
// installed around it.
func (m *Manager) Require(next http.Handler) http.Handler {
	require := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := FromContext(r.Context())
		if err := s.Load(r.Context()); err != nil {
			m.log.WarnContext(r.Context(), "session: store unavailable", "err", err)
			WriteError(w, err)
			return
		}
		if s.User() == "" {
			writeJSONError(w, http.StatusUnauthorized, "login required")
			return
		}
		next.ServeHTTP(w, r)
	})
	withSession := m.Middleware(require)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); ok {
			require.ServeHTTP(w, r)
			return
		}
		withSession.ServeHTTP(w, r)
	})
}

// Start signs user in: it saves the session under a new ID, deletes the
// record under the old ID and sets the cookie. An anonymous session, or
// one of the same user signing in again, keeps its values; a session of
// another user is replaced by an empty one, so nothing the previous user
// left reaches the new one. Changing the ID at sign-in stops session
// fixation: an ID an attacker planted before sign-in is worthless after
// it. Call it before writing the response. Errors wrap [ErrUnavailable]
// when the store cannot be reached; answer them with [WriteError].
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, user string) error {
	if user == "" {
		return errors.New("session: start: empty user name")
	}
	ctx := r.Context()
	s, ok := FromContext(ctx)
	if !ok {
		s = &Session{m: m, ctx: ctx, loaded: true}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return fmt.Errorf("session: start: %w", err)
	}
	data := s.data
	if data.User != "" && data.User != user {
		data = Data{}
	}
	data.User = user
	id := newID()
	if err := m.store.Save(ctx, id, data, m.ttl); err != nil {
		return fmt.Errorf("session: start: %w", asUnavailable(err))
	}
	if s.exists {
		if err := m.store.Delete(ctx, s.id); err != nil {
			// The old record expires on its own; the new ID is what matters.
			m.log.WarnContext(ctx, "session: delete previous record", "err", err)
		}
	}
	s.id, s.data, s.exists, s.dirty, s.touched = id, data, true, false, true
	m.setCookie(w, r, id, int(m.ttl/time.Second))
	return nil
}

// End signs the session out: it deletes the record and expires the cookie.
// The request continues with a fresh, empty session. Errors wrap
// [ErrUnavailable].
func (m *Manager) End(w http.ResponseWriter, r *http.Request) error {
	s, ok := FromContext(r.Context())
	if !ok {
		m.setCookie(w, r, "", -1)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" {
		if err := m.store.Delete(r.Context(), s.id); err != nil {
			return fmt.Errorf("session: end: %w", asUnavailable(err))
		}
	}
	s.id, s.data, s.exists, s.dirty, s.touched, s.loaded, s.loadErr = "", Data{}, false, false, false, true, nil
	m.setCookie(w, r, "", -1)
	return nil
}

// Check reports whether the store answers, for a readiness or health check:
// nil, or an error wrapping [ErrUnavailable]. Stores that cannot be pinged
// always pass.
func (m *Manager) Check(ctx context.Context) error {
	p, ok := m.store.(Pinger)
	if !ok {
		return nil
	}
	if err := p.Ping(ctx); err != nil {
		return asUnavailable(err)
	}
	return nil
}

func (m *Manager) setCookie(w http.ResponseWriter, r *http.Request, id string, maxAge int) {
	value := ""
	if id != "" {
		value = EncodeCookie(m.secret, id)
	}
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookieName,
		Value:    value,
		Path:     m.cookiePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   m.secure(r),
	})
}

// secure reports whether the cookie for r gets the Secure attribute.
func (m *Manager) secure(r *http.Request) bool {
	switch m.secureMode {
	case CookieSecureNever:
		return false
	case CookieSecureForwarded:
		if r.TLS != nil {
			return true
		}
		// A chain of proxies may list several protocols; the first is the
		// client's.
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		return strings.EqualFold(strings.TrimSpace(proto), "https")
	default:
		return true
	}
}

// WriteError answers a request whose session could not be served: 503 with
// Retry-After for errors wrapping [ErrUnavailable], 500 otherwise, each with
// a JSON body {"error": "..."} that names no internal detail.
func WriteError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrUnavailable) {
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "session store unavailable, try again shortly")
		return
	}
	writeJSONError(w, http.StatusInternalServerError, "session error")
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// commit saves a changed session, or pushes the expiry of a loaded one, and
// sets the cookie. It runs once, before the response header is written.
func (s *Session) commitLocked(w http.ResponseWriter, r *http.Request) error {
	m := s.m
	switch {
	case s.dirty:
		if s.loadErr != nil {
			return s.loadErr
		}
		if s.id == "" {
			s.id = newID()
		}
		if err := m.store.Save(s.ctx, s.id, s.data, m.ttl); err != nil {
			return asUnavailable(err)
		}
		s.dirty, s.exists, s.touched = false, true, true
		m.setCookie(w, r, s.id, int(m.ttl/time.Second))
	case s.exists && !s.touched:
		s.touched = true
		var err error
		if t, ok := m.store.(Toucher); ok {
			err = t.Touch(s.ctx, s.id, m.ttl)
		} else {
			err = m.store.Save(s.ctx, s.id, s.data, m.ttl)
		}
		if err != nil {
			// The session is still valid until its old expiry; failing the
			// request for a missed extension would be worse.
			m.log.WarnContext(s.ctx, "session: extend expiry", "err", err)
			return nil
		}
		m.setCookie(w, r, s.id, int(m.ttl/time.Second))
	}
	return nil
}

// saveLate saves changes made after the response header was written. The
// cookie can no longer be set then, so a session that had none is lost.
func (s *Session) saveLate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || s.loadErr != nil {
		return
	}
	if s.id == "" {
		s.m.log.WarnContext(s.ctx, "session: new session changed after the response header was written; not saved")
		return
	}
	if err := s.m.store.Save(s.ctx, s.id, s.data, s.m.ttl); err != nil {
		s.m.log.ErrorContext(s.ctx, "session: save after the response header", "err", err)
		return
	}
	s.dirty = false
}

// errReplaced is returned by writes of a handler whose response was
// replaced by a 503 because its session could not be saved.
var errReplaced = errors.New("session: response replaced: session could not be saved")

// writer commits the session just before the response header goes out.
type writer struct {
	http.ResponseWriter
	s         *Session
	r         *http.Request
	committed bool
	failed    bool
}

func (w *writer) commit() {
	w.committed = true
	w.s.mu.Lock()
	err := w.s.commitLocked(w.ResponseWriter, w.r)
	w.s.mu.Unlock()
	if err != nil {
		w.failed = true
		w.s.m.log.WarnContext(w.r.Context(), "session: save failed", "err", err)
		// Headers describing the handler's body would misdescribe the error.
		h := w.Header()
		for _, k := range []string{"Content-Length", "Content-Encoding", "Content-Range", "Content-Disposition", "Etag", "Last-Modified"} {
			h.Del(k)
		}
		WriteError(w.ResponseWriter, err)
	}
}

func (w *writer) WriteHeader(code int) {
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // interim; the final header follows
		return
	}
	if !w.committed {
		w.commit()
	}
	if !w.failed {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.committed {
		w.commit()
	}
	if w.failed {
		return 0, errReplaced
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets handlers that assert http.Flusher stream through the writer.
func (w *writer) Flush() {
	if !w.committed {
		w.commit()
	}
	if !w.failed {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap serves http.ResponseController.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var _ http.Flusher = (*writer)(nil)
