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
	records   map[string]*memoryRecord
	sweepSize int // sweep when the map reaches this size
}

type memoryRecord struct {
	// data is a copy no caller holds: Save copies in and Load copies out,
	// so callers never share memory with the store. A session with no
	// values copies nothing: the user is an immutable string. It never
	// changes once stored; Save stores a new record.
	data    Data
	expires time.Time
}

var (
	_ Store     = (*MemoryStore)(nil)
	_ Toucher   = (*MemoryStore)(nil)
	_ Refresher = (*MemoryStore)(nil)
	_ Pinger    = (*MemoryStore)(nil)
)

const minSweepSize = 64

// NewMemoryStore returns an empty store that reads the time from now; nil
// means time.Now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, records: map[string]*memoryRecord{}, sweepSize: minSweepSize}
}

// Load implements [Store].
func (s *MemoryStore) Load(_ context.Context, id string) (Data, error) {
	s.mu.Lock()
	rec, ok := s.live(id, s.now())
	var d Data
	if ok {
		d = rec.data // never changed once stored: copied outside the lock
	}
	s.mu.Unlock()
	if !ok {
		return Data{}, ErrNotFound
	}
	return d.clone(), nil
}

// Refresh implements [Refresher].
func (s *MemoryStore) Refresh(_ context.Context, id string, ttl, refreshAfter time.Duration) (Data, bool, error) {
	if ttl <= 0 {
		return Data{}, false, fmt.Errorf("session: memory store: ttl %v is not positive", ttl)
	}
	s.mu.Lock()
	now := s.now()
	rec, ok := s.live(id, now)
	var d Data
	refreshed := false
	if ok {
		d = rec.data
		refreshed = refreshAfter <= 0 || rec.expires.Sub(now) <= ttl-refreshAfter
		if refreshed {
			rec.expires = now.Add(ttl)
		}
	}
	s.mu.Unlock()
	if !ok {
		return Data{}, false, ErrNotFound
	}
	return d.clone(), refreshed, nil
}

// Save implements [Store]. Values that are not valid JSON are refused.
func (s *MemoryStore) Save(_ context.Context, id string, d Data, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: memory store: ttl %v is not positive", ttl)
	}
	if err := d.validate(); err != nil {
		return fmt.Errorf("session: memory store: %w", err)
	}
	rec := &memoryRecord{data: d.clone()}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.expires = s.now().Add(ttl)
	s.records[id] = rec
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
	now := s.now()
	rec, ok := s.live(id, now)
	if !ok {
		return ErrNotFound
	}
	rec.expires = now.Add(ttl)
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

// live returns the record of id if it has not expired by now, dropping it
// if it has. s.mu must be held.
func (s *MemoryStore) live(id string, now time.Time) (*memoryRecord, bool) {
	rec, ok := s.records[id]
	if !ok {
		return nil, false
	}
	if !now.Before(rec.expires) {
		delete(s.records, id)
		return nil, false
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

// clone returns a copy of d sharing no memory with it but its immutable
// strings: a new map, its values in one new array.
func (d Data) clone() Data {
	if len(d.Values) == 0 {
		return Data{User: d.User}
	}
	n := 0
	for _, v := range d.Values {
		n += len(v)
	}
	buf := make([]byte, 0, n)
	values := make(map[string]json.RawMessage, len(d.Values))
	for k, v := range d.Values {
		start := len(buf)
		buf = append(buf, v...)
		values[k] = buf[start:len(buf):len(buf)]
	}
	return Data{User: d.User, Values: values}
}

// validate reports the first value that is not valid JSON, which
// [Session.Get] could not decode.
func (d Data) validate() error {
	for k, v := range d.Values {
		if !json.Valid(v) {
			return fmt.Errorf("value %q is not valid JSON", k)
		}
	}
	return nil
}
