package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/session"
)

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	d := session.Data{User: "ada", Values: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}
	tests := []struct {
		name string
		// steps runs against a store whose clock starts at t0.
		steps   func(s *session.MemoryStore, clock *fakeClock) error
		wantErr error
	}{
		{"load missing", func(s *session.MemoryStore, _ *fakeClock) error {
			_, err := s.Load(ctx, "x")
			return err
		}, session.ErrNotFound},
		{"live just before expiry", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(time.Minute - time.Nanosecond)
			_, err := s.Load(ctx, "x")
			return err
		}, nil},
		{"expired at the ttl", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(time.Minute)
			_, err := s.Load(ctx, "x")
			return err
		}, session.ErrNotFound},
		{"touch extends", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(50 * time.Second)
			if err := s.Touch(ctx, "x", time.Minute); err != nil {
				return err
			}
			c.Advance(50 * time.Second)
			_, err := s.Load(ctx, "x")
			return err
		}, nil},
		{"touch of expired", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(time.Hour)
			return s.Touch(ctx, "x", time.Minute)
		}, session.ErrNotFound},
		{"save overwrites and resets expiry", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(50 * time.Second)
			s.Save(ctx, "x", session.Data{User: "bob"}, time.Minute)
			c.Advance(50 * time.Second)
			got, err := s.Load(ctx, "x")
			if err == nil && got.User != "bob" {
				return fmt.Errorf("user %q, want bob", got.User)
			}
			return err
		}, nil},
		{"delete", func(s *session.MemoryStore, _ *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			s.Delete(ctx, "x")
			_, err := s.Load(ctx, "x")
			return err
		}, session.ErrNotFound},
		{"zero ttl rejected", func(s *session.MemoryStore, _ *fakeClock) error {
			if err := s.Save(ctx, "x", d, 0); err == nil {
				return errors.New("save with zero ttl succeeded")
			}
			return nil
		}, nil},
		{"refresh leaves a recent expiry alone", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(15*time.Second - time.Nanosecond)
			if _, refreshed, err := s.Refresh(ctx, "x", time.Minute, 15*time.Second); err != nil || refreshed {
				return fmt.Errorf("refresh within refreshAfter: refreshed %v, %v", refreshed, err)
			}
			c.Advance(45*time.Second + time.Nanosecond) // a minute after the save: gone
			_, err := s.Load(ctx, "x")
			return err
		}, session.ErrNotFound},
		{"refresh pushes the expiry once refreshAfter has passed", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(15 * time.Second)
			got, refreshed, err := s.Refresh(ctx, "x", time.Minute, 15*time.Second)
			if err != nil || !refreshed || got.User != "ada" || string(got.Values["k"]) != "1" {
				return fmt.Errorf("refresh = %+v, refreshed %v, %v", got, refreshed, err)
			}
			c.Advance(time.Minute - time.Nanosecond)
			_, err = s.Load(ctx, "x")
			return err
		}, nil},
		{"refresh with zero refreshAfter always pushes", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(time.Second)
			if _, refreshed, err := s.Refresh(ctx, "x", time.Minute, 0); err != nil || !refreshed {
				return fmt.Errorf("refresh: refreshed %v, %v", refreshed, err)
			}
			return nil
		}, nil},
		{"refresh of expired", func(s *session.MemoryStore, c *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			c.Advance(time.Minute)
			_, _, err := s.Refresh(ctx, "x", time.Minute, 0)
			return err
		}, session.ErrNotFound},
		{"invalid JSON value refused", func(s *session.MemoryStore, _ *fakeClock) error {
			bad := session.Data{User: "ada", Values: map[string]json.RawMessage{"k": json.RawMessage(`{`)}}
			if err := s.Save(ctx, "x", bad, time.Minute); err == nil || !strings.Contains(err.Error(), `"k"`) {
				return fmt.Errorf("save of invalid JSON: %v, want an error naming the key", err)
			}
			return nil
		}, nil},
		{"loaded data is a copy", func(s *session.MemoryStore, _ *fakeClock) error {
			s.Save(ctx, "x", d, time.Minute)
			got, _ := s.Load(ctx, "x")
			got.Values["k"] = json.RawMessage(`2`)
			refreshed, _, _ := s.Refresh(ctx, "x", time.Minute, 0)
			refreshed.Values["k"][0] = '3'
			again, err := s.Load(ctx, "x")
			if err == nil && string(again.Values["k"]) != "1" {
				return fmt.Errorf("store changed through a loaded copy: %s", again.Values["k"])
			}
			return err
		}, nil},
		{"saved data is a copy", func(s *session.MemoryStore, _ *fakeClock) error {
			mine := session.Data{User: "ada", Values: map[string]json.RawMessage{"k": []byte(`1`)}}
			s.Save(ctx, "x", mine, time.Minute)
			mine.Values["k"][0] = '2'
			mine.Values["j"] = json.RawMessage(`3`)
			got, err := s.Load(ctx, "x")
			if err == nil && (len(got.Values) != 1 || string(got.Values["k"]) != "1") {
				return fmt.Errorf("store changed through saved data: %v", got.Values)
			}
			return err
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			err := tt.steps(session.NewMemoryStore(clock.Now), clock)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestMemoryStoreSweeps shows expired records do not pile up in a store
// whose sessions are never read again.
func TestMemoryStoreSweeps(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := session.NewMemoryStore(clock.Now)
	ctx := context.Background()
	for i := range 1000 {
		if err := s.Save(ctx, fmt.Sprint("old", i), session.Data{}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Hour)
	for i := range 200 {
		s.Save(ctx, fmt.Sprint("new", i), session.Data{}, time.Minute)
	}
	clock.Advance(30 * time.Second)
	for i := range 2000 {
		s.Save(ctx, fmt.Sprint("newer", i), session.Data{}, time.Minute)
	}
	// 2,200 live records; the 1,000 expired ones must be gone.
	if n := s.Len(); n != 2200 {
		t.Fatalf("store holds %d records, want the 2200 live ones", n)
	}
}
