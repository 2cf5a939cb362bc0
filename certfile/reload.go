package certfile

import (
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// watched is a value loaded from files and loaded again, lazily, when
// they change. get is cheap and lock-free while the last check is recent;
// the caller that finds it stale checks the files while the others keep
// using the current value.
type watched[T any] struct {
	what     string // in logs: "certificate", "ClientCAFile"
	files    []string
	load     func() (T, error)
	describe func(T) []any // log attributes for a loaded value; may be nil
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger
	// reloadable, if set, refuses a value that loads but must not replace
	// the current one at now (an expired certificate); the first load
	// does not ask it.
	reloadable func(v T, now time.Time) error

	mu  sync.Mutex // held by the caller checking the files
	cur atomic.Pointer[snapshot[T]]
}

// snapshot is immutable once stored.
type snapshot[T any] struct {
	val     T
	loaded  []stamp   // the files as they were when val was read
	failed  []stamp   // the files at the last failed reload, logged once
	checked time.Time // when the files were last stat'ed
}

// stamp is what a stat says about one file: a version of the files is
// its stamps, and a change in any of them means a reload.
type stamp struct {
	info os.FileInfo // nil if the stat failed
	err  string
}

func (a stamp) same(b stamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil && a.err == b.err
	}
	// SameFile tells a renamed-over file or a swapped symlink target from
	// an edit in place, whose modification time and size tell the rest.
	return os.SameFile(a.info, b.info) && a.info.ModTime().Equal(b.info.ModTime()) && a.info.Size() == b.info.Size()
}

func sameStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].same(b[i]) {
			return false
		}
	}
	return true
}

func stat(files []string) []stamp {
	s := make([]stamp, len(files))
	for i, f := range files {
		fi, err := os.Stat(f) // follows symlinks, as a Secret volume's are
		if err != nil {
			s[i].err = err.Error()
			continue
		}
		s[i].info = fi
	}
	return s
}

// start loads the value the first time; an error is returned, not logged.
func (w *watched[T]) start() error {
	st := stat(w.files) // before reading, so a change during the read is seen next time
	v, err := w.load()
	if err != nil {
		return err
	}
	w.cur.Store(&snapshot[T]{val: v, loaded: st, checked: w.now()})
	return nil
}

// fresh reports whether a check at checked is recent at now; a clock
// that went back makes it stale.
func (w *watched[T]) fresh(checked, now time.Time) bool {
	d := now.Sub(checked)
	return d >= 0 && d < w.interval
}

func (w *watched[T]) get() T {
	s := w.cur.Load()
	now := w.now()
	if w.fresh(s.checked, now) || !w.mu.TryLock() {
		return s.val
	}
	defer w.mu.Unlock()
	s = w.cur.Load() // a caller may have checked since
	if w.fresh(s.checked, now) {
		return s.val
	}
	next := *s
	next.checked = now
	st := stat(w.files)
	if !sameStamps(st, s.loaded) && !sameStamps(st, s.failed) {
		v, err := w.load()
		if err == nil && w.reloadable != nil {
			err = w.reloadable(v, now)
		}
		if err != nil {
			next.failed = st
			w.log.Error("certfile: reload failed; keeping the last good "+w.what, "err", err)
		} else {
			next.val, next.loaded, next.failed = v, st, nil
			args := []any{"files", w.files}
			if w.describe != nil {
				args = append(args, w.describe(v)...)
			}
			w.log.Info("certfile: reloaded "+w.what, args...)
		}
	}
	w.cur.Store(&next)
	return next.val
}
