package localk8s

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder notes what the actors of a test did, in order.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// blocking is an actor that runs until interrupted, then takes a moment to
// stop, so that an actor interrupted before it returned would show in the
// order.
func blocking(r *recorder, name string, fail error) actor {
	stop := make(chan struct{})
	return actor{
		name: name,
		execute: func() error {
			<-stop
			time.Sleep(5 * time.Millisecond)
			r.note("stopped " + name)
			return fail
		},
		interrupt: func() {
			r.note("interrupt " + name)
			close(stop)
		},
	}
}

func TestGroupStopsInOrder(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		// early, when set, is an actor that returns by itself with err.
		early    bool
		earlyErr error
		want     []string
		wantErr  error
	}{
		{
			name: "context ends",
			want: []string{"started", "stopping", "interrupt a", "stopped a", "interrupt b", "stopped b", "interrupt c", "stopped c"},
		},
		{
			name: "an actor fails", early: true, earlyErr: errBoom,
			want:    []string{"started", "stopped b", "stopping", "interrupt a", "stopped a", "interrupt b", "interrupt c", "stopped c"},
			wantErr: errBoom,
		},
		{
			name: "an actor returns early without an error", early: true,
			want:    []string{"started", "stopped b", "stopping", "interrupt a", "stopped a", "interrupt b", "interrupt c", "stopped c"},
			wantErr: errEarly,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var g group
			g.add(blocking(r, "a", nil))
			if tt.early {
				g.add(actor{
					name:      "b",
					execute:   func() error { r.note("stopped b"); return tt.earlyErr },
					interrupt: func() { r.note("interrupt b") },
				})
			} else {
				g.add(blocking(r, "b", nil))
			}
			g.add(blocking(r, "c", nil))
			g.started = func() {
				r.note("started")
				if !tt.early {
					cancel()
				}
			}
			g.stopping = func() { r.note("stopping") }

			err := g.run(ctx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("run = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !slices.Contains([]string{"b: boom", "b: returned before the stop"}, err.Error()) {
				t.Errorf("error %q does not name the actor", err)
			}
			got := r.lines()
			if tt.early {
				// The early actor may return before or after started.
				i := slices.Index(got, "stopped b")
				got = slices.Insert(slices.Delete(got, i, i+1), 1, "stopped b")
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("order\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// An actor's failure is reported along with the stop that follows it.
func TestGroupCollectsStopErrors(t *testing.T) {
	r := &recorder{}
	errStop := errors.New("closing failed")
	var g group
	g.add(blocking(r, "a", errStop))
	g.add(actor{name: "b", execute: func() error { return errors.New("boom") }, interrupt: func() {}})
	err := g.run(context.Background())
	if err == nil || err.Error() != "b: boom\na: closing failed" {
		t.Errorf("run = %q, want both errors, the trigger first", err)
	}
}
