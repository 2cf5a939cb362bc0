package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

type ctxKey struct{}

// FromContext returns the session [Manager.Middleware] attached to a
// request's context.
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(ctxKey{}).(*Session)
	return s, ok
}

// sessionContext carries a request's session, as context.WithValue would,
// but can live in the one allocation Middleware makes per request.
type sessionContext struct {
	context.Context
	s *Session
}

func (c *sessionContext) Value(key any) any {
	if key == (ctxKey{}) {
		return c.s
	}
	return c.Context.Value(key)
}

// Session is the session of one request. Its record is loaded from the
// store on first use; its methods are safe for concurrent use by the
// handler's goroutines while the request lasts.
type Session struct {
	m   *Manager
	ctx context.Context // the request's, for the lazy load

	mu      sync.Mutex
	id      string // "" until the session is first saved
	loaded  bool
	loadErr error // set when the store was unavailable
	exists  bool  // the store holds a record for id
	// touched: the expiry was pushed in this request, or was recent
	// enough to leave alone.
	touched bool
	// refreshed: the expiry was pushed when the record was loaded, and
	// the cookie is to follow.
	refreshed bool
	dirty     bool
	data      Data
}

// ID returns the session ID, or "" for a session not yet saved.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Load reads the record from the store unless that already happened in
// this request. It returns nil for a session the store does not know (the
// session is then new and empty) and an error wrapping [ErrUnavailable]
// when the store cannot be reached.
func (s *Session) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadLocked(ctx)
}

func (s *Session) loadLocked(ctx context.Context) error {
	if s.loaded {
		return s.loadErr
	}
	if s.id == "" {
		s.loaded = true
		return nil
	}
	var d Data
	var refreshed bool
	var err error
	if r := s.m.refresher; r != nil {
		d, refreshed, err = r.Refresh(ctx, s.id, s.m.ttl, s.m.refreshAfter)
	} else {
		d, err = s.m.store.Load(ctx, s.id)
	}
	switch {
	case err == nil:
		s.data, s.exists = d, true
		s.touched, s.refreshed = s.m.refresher != nil, refreshed
	case errors.Is(err, ErrNotFound):
		// Expired, deleted or never issued by us: start afresh under a new
		// ID so a stale ID is never revived.
		s.m.log.DebugContext(ctx, "session: unknown id, starting afresh", "err", err)
		s.id = ""
	default:
		s.loadErr = asUnavailable(err)
		return s.loadErr
	}
	s.loaded = true
	return nil
}

// asUnavailable makes any store failure other than ErrNotFound match
// ErrUnavailable, so callers need only that one test.
func asUnavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return &unavailableError{msg: "session: store", err: err}
}

// unavailableError matches both ErrUnavailable and the store's own error
// without repeating the sentinel's text in the message.
type unavailableError struct {
	msg string
	err error
}

func (e *unavailableError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// User returns the authenticated user, or "" for an anonymous session or
// when the store is unavailable (see [Session.Load]).
func (s *Session) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadLocked(s.ctx) != nil {
		return ""
	}
	return s.data.User
}

// Get decodes the value stored under key into dst and reports whether there
// was one.
func (s *Session) Get(key string, dst any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(s.ctx); err != nil {
		return false, err
	}
	raw, ok := s.data.Values[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return true, fmt.Errorf("session: decode value %q: %w", key, err)
	}
	return true, nil
}

// Set stores v, encoded as JSON, under key. The session is saved before the
// response header is written.
func (s *Session) Set(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("session: encode value %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(s.ctx); err != nil {
		return err
	}
	if s.data.Values == nil {
		s.data.Values = map[string]json.RawMessage{}
	}
	s.data.Values[key] = raw
	s.dirty = true
	return nil
}

// Delete removes the value under key.
func (s *Session) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(s.ctx); err != nil {
		return err
	}
	if _, ok := s.data.Values[key]; ok {
		delete(s.data.Values, key)
		s.dirty = true
	}
	return nil
}
