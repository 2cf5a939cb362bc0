package loadgen

import (
	"math"
	"testing"
	"time"
)

// offsets drains a timetable up to limit offsets.
func offsets(tt *timetable, limit int) []time.Duration {
	var out []time.Duration
	for len(out) < limit {
		off, ok := tt.next()
		if !ok {
			break
		}
		out = append(out, off)
	}
	return out
}

func TestTimetable(t *testing.T) {
	forever := time.Duration(math.MaxInt64)
	tests := []struct {
		name   string
		steps  []Step
		limit  int
		count  int                   // offsets expected
		checks map[int]time.Duration // index -> offset
	}{
		{"constant rate", []Step{{200, 2 * time.Second}}, 1000, 400,
			map[int]time.Duration{0: 0, 1: 5 * time.Millisecond, 399: 1995 * time.Millisecond}},
		{"non-integer interval does not drift", []Step{{3, 10 * time.Second}}, 100, 30,
			map[int]time.Duration{1: 333333333, 2: 666666666, 29: 9666666666}},
		{"steps with a pause", []Step{{100, time.Second}, {0, time.Second}, {50, 2 * time.Second}}, 1000, 200,
			map[int]time.Duration{99: 990 * time.Millisecond, 100: 2 * time.Second, 199: 3980 * time.Millisecond}},
		{"slow rate yields its first request", []Step{{0.5, time.Second}}, 10, 1, map[int]time.Duration{0: 0}},
		{"rate for ever is bounded by the caller", []Step{{1000, forever}}, 5000, 5000,
			map[int]time.Duration{4999: 4999 * time.Millisecond}},
		{"only pauses", []Step{{0, time.Second}, {0, forever}}, 10, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := offsets(newTimetable(tc.steps), tc.limit)
			if len(got) != tc.count {
				t.Fatalf("got %d offsets, want %d", len(got), tc.count)
			}
			for i, want := range tc.checks {
				if got[i] != want {
					t.Errorf("offset[%d] = %v, want %v", i, got[i], want)
				}
			}
			for i := 1; i < len(got); i++ {
				if got[i] < got[i-1] {
					t.Fatalf("offset[%d] = %v before offset[%d] = %v", i, got[i], i-1, got[i-1])
				}
			}
		})
	}
}

func TestKeySourceRepeatable(t *testing.T) {
	a, b, c := newKeySource(100, 7), newKeySource(100, 7), newKeySource(100, 8)
	same, seen := 0, map[string]bool{}
	for range 1000 {
		ka, kb, kc := a.next()[0], b.next()[0], c.next()[0]
		if ka != kb {
			t.Fatalf("same seed gave %q and %q", ka, kb)
		}
		if ka == kc {
			same++
		}
		seen[ka] = true
	}
	if same > 100 {
		t.Errorf("seeds 7 and 8 agree on %d of 1000 keys", same)
	}
	if len(seen) < 90 {
		t.Errorf("1000 picks from 100 keys saw only %d", len(seen))
	}
}
