package client

import (
	"context"
	"slices"
	"sync"
)

// Tries records the endpoints the attempts of one request went to. A
// [RetryTransport] puts one in the context of every request it may
// retry; a balancer under it (package balancer) adds each endpoint it
// picks and skips the ones already listed, so a retry reaches a replica
// the earlier attempts did not use.
type Tries struct {
	mu    sync.Mutex
	addrs []string // append-only; a slice handed out never changes
}

type triesKey struct{}

// WithTries returns ctx carrying a fresh [Tries], or ctx itself if it
// already carries one: attempts nested under an outer retrying client
// share its record.
func WithTries(ctx context.Context) context.Context {
	if TriesFrom(ctx) != nil {
		return ctx
	}
	return context.WithValue(ctx, triesKey{}, new(Tries))
}

// TriesFrom returns the [Tries] ctx carries, or nil.
func TriesFrom(ctx context.Context) *Tries {
	t, _ := ctx.Value(triesKey{}).(*Tries)
	return t
}

// Add records that an attempt went to addr.
func (t *Tries) Add(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Clip so the append copies: slices returned by Addrs stay unchanged.
	t.addrs = append(slices.Clip(t.addrs), addr)
}

// Addrs returns the addresses attempts went to, oldest first; nil before
// the first. The caller must not modify the slice.
func (t *Tries) Addrs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addrs
}
