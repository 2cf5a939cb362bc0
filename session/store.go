package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned by [Store.Load] and [Toucher.Touch] when the store
// has no live record for the ID: it never existed, expired or was deleted.
var ErrNotFound = errors.New("session: not found")

// ErrUnavailable is wrapped by errors of a store that cannot be reached. The
// request that met it may succeed later; answer 503.
var ErrUnavailable = errors.New("session: store unavailable")

// Data is the state of one session as stored: the authenticated user and
// the application's named values. It is stored as JSON. The values are
// opaque here: the application encodes and decodes them ([Session.Set],
// [Session.Get]), so the session knows nothing of what they mean.
type Data struct {
	// User is the authenticated user; empty for an anonymous session.
	User string `json:"user,omitempty"`
	// Values holds named JSON values set with [Session.Set].
	Values map[string]json.RawMessage `json:"values,omitempty"`
}

// Store keeps session records by ID. Implementations must be safe for
// concurrent use. Errors other than ErrNotFound are treated as the store
// being unavailable.
type Store interface {
	// Load returns the record of id, or an error wrapping ErrNotFound.
	Load(ctx context.Context, id string) (Data, error)
	// Save writes the record of id, to expire ttl from now.
	Save(ctx context.Context, id string, d Data, ttl time.Duration) error
	// Delete removes the record of id; deleting a missing record succeeds.
	Delete(ctx context.Context, id string) error
}

// Toucher is implemented by stores that can push a record's expiry without
// rewriting it. The Manager uses it for sliding expiry and falls back to
// Save for stores without it.
type Toucher interface {
	// Touch makes the record of id expire ttl from now, or returns an error
	// wrapping ErrNotFound if there is no live record.
	Touch(ctx context.Context, id string, ttl time.Duration) error
}

// Refresher is implemented by stores that can load a record and push its
// expiry in one call: one round trip for a store across the network. The
// Manager uses it in place of Load, and pushes the expiry of sessions
// whose store lacks it on every request ([Toucher], else Save).
type Refresher interface {
	// Refresh returns the record of id, or an error wrapping ErrNotFound.
	// If refreshAfter or more has passed since its expiry was last set,
	// that is if no more than ttl-refreshAfter of it is left, Refresh
	// also makes the record expire ttl from now and reports refreshed.
	// A refreshAfter of zero or less pushes the expiry every time.
	Refresh(ctx context.Context, id string, ttl, refreshAfter time.Duration) (d Data, refreshed bool, err error)
}

// Pinger is implemented by stores whose reachability can be checked.
type Pinger interface {
	// Ping returns nil if the store answers, else an error wrapping
	// ErrUnavailable.
	Ping(ctx context.Context) error
}
