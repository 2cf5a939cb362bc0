package session

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// Defaults of [Config].
const (
	DefaultTTL = 30 * time.Minute
	// DefaultRefreshDivisor sets the default [Config.RefreshAfter]:
	// TTL/DefaultRefreshDivisor, so a session lives at least 90% of its
	// TTL after its last use.
	DefaultRefreshDivisor = 10
	DefaultCookieName     = "shoal_session"
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
	// RefreshAfter is how long after a session's expiry was last pushed
	// a request that loads it pushes it again and re-sends the cookie;
	// requests in between write nothing, to the store or to the response.
	// A session therefore lives between TTL-RefreshAfter and TTL after
	// its last use. 0 means TTL/DefaultRefreshDivisor; negative means on
	// every request. It must be less than TTL. Only stores implementing
	// [Refresher] can tell when the expiry was last pushed; with others
	// the expiry is pushed on every request.
	RefreshAfter time.Duration
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
	store        Store
	refresher    Refresher // store's, or nil
	toucher      Toucher   // store's, or nil
	signer       *signer
	ttl          time.Duration
	refreshAfter time.Duration // 0: every request
	cookieName   string
	cookiePath   string
	secureMode   CookieSecure
	// cookieHead and cookieTail frame the signed value in a Set-Cookie
	// header of Max-Age TTL, as http.Cookie.String writes it; the tail
	// without and with Secure.
	cookieHead string
	cookieTail [2]string
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
	if c.RefreshAfter == 0 {
		c.RefreshAfter = c.TTL / DefaultRefreshDivisor
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
// MinSecretLen, a TTL other than zero under a second, a RefreshAfter not
// under the TTL, a CookieName that is not a valid cookie name, or an
// unknown CookieSecure.
func (c Config) Validate() error {
	if len(c.Secret) < MinSecretLen {
		return fmt.Errorf("session: Secret is %d bytes, need at least %d", len(c.Secret), MinSecretLen)
	}
	if c.TTL != 0 && c.TTL < time.Second {
		return fmt.Errorf("session: TTL %v is under a second", c.TTL)
	}
	if ttl := cmp.Or(c.TTL, DefaultTTL); c.RefreshAfter >= ttl {
		return fmt.Errorf("session: RefreshAfter %v is not under the TTL %v", c.RefreshAfter, ttl)
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
	m := &Manager{
		store:        cfg.Store,
		signer:       newSigner(append([]byte(nil), cfg.Secret...)),
		ttl:          cfg.TTL,
		refreshAfter: max(cfg.RefreshAfter, 0),
		cookieName:   cfg.CookieName,
		cookiePath:   cfg.CookiePath,
		secureMode:   cfg.CookieSecure,
		cookieHead:   cfg.CookieName + "=",
		log:          cfg.Logger,
	}
	m.refresher, _ = cfg.Store.(Refresher)
	m.toucher, _ = cfg.Store.(Toucher)
	for i, secure := range []bool{false, true} {
		// A stand-in value, so that net/http formats (and checks) every
		// attribute once, here, rather than on every response.
		const v = "v"
		c := (&http.Cookie{
			Name: cfg.CookieName, Value: v, Path: cfg.CookiePath, MaxAge: int(cfg.TTL / time.Second),
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure,
		}).String()
		m.cookieTail[i] = c[len(m.cookieHead)+len(v):]
	}
	return m, nil
}

// TTL returns the session lifetime after last use.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Middleware attaches a [Session] to each request, found with
// [FromContext]. It does no store I/O itself: the record is loaded when the
// handler first uses the session. Before the response header is written it
// saves a changed session and sets the cookie, or, when
// [Config.RefreshAfter] has passed, pushes the expiry of a loaded one and
// sets the cookie again; if that save fails, the client gets a 503 JSON
// error instead of the handler's response.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		// One allocation holds the session, the context carrying it and
		// the writer committing it.
		st := &requestState{}
		s := &st.s
		s.m, s.id = m, m.cookieID(r)
		st.ctx = sessionContext{Context: r.Context(), s: s}
		s.ctx = &st.ctx
		r = r.WithContext(s.ctx)
		st.w = writer{ResponseWriter: w, s: s, r: r}
		next.ServeHTTP(&st.w, r)
		if !st.w.committed {
			st.w.commit()
		} else if !st.w.failed {
			s.saveLate()
		}
	})
}

// requestState is what Middleware allocates per request.
type requestState struct {
	s   Session
	ctx sessionContext
	w   writer
}

// cookieID returns the ID named by the first session cookie of r that
// verifies, or "". It finds the cookies r.CookiesNamed would, without
// allocating.
func (m *Manager) cookieID(r *http.Request) string {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(name) != m.cookieName {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			id, err := m.signer.verify(v)
			if err == nil {
				return id
			}
			m.log.DebugContext(r.Context(), "session: ignoring cookie", "err", err)
		}
	}
	return ""
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
	s.id, s.data, s.exists, s.dirty, s.touched, s.refreshed = id, data, true, false, true, false
	m.setCookie(w, r, id)
	return nil
}

// End signs the session out: it deletes the record and expires the cookie.
// The request continues with a fresh, empty session. Errors wrap
// [ErrUnavailable].
func (m *Manager) End(w http.ResponseWriter, r *http.Request) error {
	s, ok := FromContext(r.Context())
	if !ok {
		m.expireCookie(w, r)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" {
		if err := m.store.Delete(r.Context(), s.id); err != nil {
			return fmt.Errorf("session: end: %w", asUnavailable(err))
		}
	}
	s.id, s.data, s.exists, s.dirty, s.touched, s.refreshed, s.loaded, s.loadErr = "", Data{}, false, false, false, false, true, nil
	m.expireCookie(w, r)
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

// setCookie sets the cookie naming session id, for the TTL.
func (m *Manager) setCookie(w http.ResponseWriter, r *http.Request, id string) {
	tail := m.cookieTail[0]
	if m.secure(r) {
		tail = m.cookieTail[1]
	}
	var b strings.Builder
	b.Grow(len(m.cookieHead) + cookieLen + len(tail))
	b.WriteString(m.cookieHead)
	mac := m.signer.get()
	mac.sign(id)
	b.WriteString(id)
	b.WriteByte('.')
	b.Write(mac.enc[:])
	m.signer.put(mac)
	b.WriteString(tail)
	w.Header().Add("Set-Cookie", b.String())
}

// expireCookie tells the client to drop the cookie.
func (m *Manager) expireCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.cookieName,
		Path:     m.cookiePath,
		MaxAge:   -1,
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

// commitLocked saves a changed session, or pushes the expiry of a loaded
// one when that is due, and sets the cookie. It runs once, before the
// response header is written.
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
		s.dirty, s.exists, s.touched, s.refreshed = false, true, true, false
		m.setCookie(w, r, s.id)
	case s.refreshed:
		// The store pushed the expiry as it loaded the record.
		s.refreshed = false
		m.setCookie(w, r, s.id)
	case s.exists && !s.touched:
		// A store without Refresher: push the expiry on every request.
		s.touched = true
		var err error
		if t := m.toucher; t != nil {
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
		m.setCookie(w, r, s.id)
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
