package balancer

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
)

// Resolver supplies a [Balancer] with the endpoints of a service.
type Resolver interface {
	// Resolve calls update with the complete set of "host:port"
	// addresses each time it changes, starting with the current set,
	// until ctx is done. It returns nil when ctx is done and an error
	// only if it cannot go on. Calls to update are never concurrent.
	// It may also report an unchanged set after a fresh resolution:
	// that ends the ejections of listed endpoints that refused a
	// connection (see [Ejection]).
	Resolve(ctx context.Context, update func(addrs []string)) error
}

// ResolveNower is implemented by resolvers that can refresh ahead of
// schedule. The balancer calls ResolveNow after a connection error, which
// often means the endpoint set has changed.
type ResolveNower interface {
	ResolveNow()
}

// Static is a [Resolver] over a fixed list of addresses, which
// [Static.Update] may replace.
type Static struct {
	mu      sync.Mutex
	addrs   []string
	changed chan struct{} // closed and replaced on each Update
}

var _ Resolver = (*Static)(nil)

// NewStatic returns a resolver reporting addrs, each "host:port".
func NewStatic(addrs ...string) (*Static, error) {
	s := &Static{changed: make(chan struct{})}
	if err := s.Update(addrs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces the address set; running balancers see the change.
func (s *Static) Update(addrs ...string) error {
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("balancer: static address %q: want host:port", a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = slices.Clone(addrs)
	if s.changed == nil {
		s.changed = make(chan struct{})
		return nil
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// Resolve reports the addresses, then every update, until ctx is done.
func (s *Static) Resolve(ctx context.Context, update func([]string)) error {
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		addrs, changed := slices.Clone(s.addrs), s.changed
		s.mu.Unlock()
		update(addrs)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
