package loadgen

import (
	"math"
	"time"
)

// timetable yields the intended send offsets (from the start of the
// run) of successive requests. Each offset is computed from its step's
// start and its index in the step, so rounding never accumulates.
type timetable struct {
	steps     []Step
	i         int           // current step
	stepStart time.Duration // offset of steps[i]
	n         int64         // requests already yielded in steps[i]
}

func newTimetable(steps []Step) *timetable { return &timetable{steps: steps} }

// next returns the next offset, or false when the steps are over.
func (t *timetable) next() (time.Duration, bool) {
	for t.i < len(t.steps) {
		s := t.steps[t.i]
		if s.Rate > 0 {
			off := float64(t.n) * float64(time.Second) / s.Rate
			if off < float64(s.Duration) && off < math.MaxInt64/2 {
				t.n++
				return t.stepStart + time.Duration(off), true
			}
		}
		if s.Duration > math.MaxInt64-t.stepStart {
			t.i = len(t.steps)
			break
		}
		t.stepStart += s.Duration
		t.i++
		t.n = 0
	}
	return 0, false
}
