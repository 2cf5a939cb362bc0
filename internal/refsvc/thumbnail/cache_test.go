package thumbnail

import (
	"fmt"
	"testing"
)

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewCache(30)
	key := func(i int) Key { return Key{Digest: fmt.Sprint(i), Options: Options{Width: 1, Height: 1}} }
	for i := range 3 {
		c.Add(key(i), Entry{Data: make([]byte, 10)})
	}
	if _, ok := c.Get(key(0)); !ok { // 0 becomes most recent
		t.Fatal("entry 0 missing before eviction")
	}
	c.Add(key(3), Entry{Data: make([]byte, 10)})
	tests := []struct {
		name string
		key  Key
		want bool
	}{
		{"recently read survives", key(0), true},
		{"least recent evicted", key(1), false},
		{"kept", key(2), true},
		{"newest kept", key(3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := c.Get(tt.key); ok != tt.want {
				t.Errorf("Get(%v) ok = %v, want %v", tt.key, ok, tt.want)
			}
		})
	}
}

func TestCacheRejectsOversizedAndReplaces(t *testing.T) {
	c := NewCache(10)
	k := Key{Digest: "a"}
	c.Add(k, Entry{Data: make([]byte, 11)})
	if c.Len() != 0 {
		t.Fatalf("oversized entry stored")
	}
	c.Add(k, Entry{Data: []byte("one")})
	c.Add(k, Entry{Data: []byte("two!")})
	e, ok := c.Get(k)
	if !ok || string(e.Data) != "two!" || c.Len() != 1 {
		t.Fatalf("replace: got %q ok=%v len=%d", e.Data, ok, c.Len())
	}
	c.Add(Key{Digest: "b"}, Entry{Data: make([]byte, 6)})
	if c.Len() != 2 {
		t.Fatalf("len = %d after adding within bound, want 2", c.Len())
	}
}
