package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// MemoryStore keeps sessions in the memory of one process. It suits a
// single replica, development and tests; sessions vanish on restart and
// are not shared between replicas. Expired records are never returned and
// are swept as the store grows, without a background goroutine.
type MemoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	records   map[string]memoryRecord
	sweepSize int // sweep when the map reaches this size
}

type memoryRecord struct {
	data    []byte // JSON, so callers never share memory with the store
	expires time.Time
}

var (
	_ Store   = (*MemoryStore)(nil)
	_ Toucher = (*MemoryStore)(nil)
	_ Pinger  = (*MemoryStore)(nil)
)

const minSweepSize = 64

// NewMemoryStore returns an empty store that reads the time from now; nil
// means time.Now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, records: map[string]memoryRecord{}, sweepSize: minSweepSize}
}

// Load implements [Store].
func (s *MemoryStore) Load(_ context.Context, id string) (Data, error) {
	s.mu.Lock()
	rec, ok := s.live(id)
	s.mu.Unlock()
	if !ok {
		return Data{}, ErrNotFound
	}
	var d Data
	if err := json.Unmarshal(rec.data, &d); err != nil {
		return Data{}, fmt.Errorf("session: memory store: decode record: %w", err)
	}
	return d, nil
}

// Save implements [Store].
func (s *MemoryStore) Save(_ context.Context, id string, d Data, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: memory store: ttl %v is not positive", ttl)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("session: memory store: encode record: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[id] = memoryRecord{data: b, expires: s.now().Add(ttl)}
	if len(s.records) >= s.sweepSize {
		s.sweep()
	}
	return nil
}

// Touch implements [Toucher].
func (s *MemoryStore) Touch(_ context.Context, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: memory store: ttl %v is not positive", ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(id)
	if !ok {
		return ErrNotFound
	}
	rec.expires = s.now().Add(ttl)
	s.records[id] = rec
	return nil
}

// Delete implements [Store].
func (s *MemoryStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	delete(s.records, id)
	s.mu.Unlock()
	return nil
}

// Ping implements [Pinger]; memory is always reachable.
func (s *MemoryStore) Ping(context.Context) error { return nil }

// Len returns the number of records held, counting expired ones not yet
// swept.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// live returns the record of id if it has not expired, dropping it if it
// has. s.mu must be held.
func (s *MemoryStore) live(id string) (memoryRecord, bool) {
	rec, ok := s.records[id]
	if !ok {
		return memoryRecord{}, false
	}
	if !s.now().Before(rec.expires) {
		delete(s.records, id)
		return memoryRecord{}, false
	}
	return rec, true
}

// sweep drops expired records and sets the next sweep at twice the size
// left, so sweeping costs O(1) per Save amortised. s.mu must be held.
func (s *MemoryStore) sweep() {
	now := s.now()
	for id, rec := range s.records {
		if !now.Before(rec.expires) {
			delete(s.records, id)
		}
	}
	s.sweepSize = max(2*len(s.records), minSweepSize)
}
