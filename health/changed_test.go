package health_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/health"
)

// closedWithin reports whether ch closes within a generous bound.
func closedWithin(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(20 * time.Second):
		return false
	}
}

func TestChanged(t *testing.T) {
	var failing atomic.Bool
	c := health.New(nil, health.Check{
		Name: "db", Critical: true, Interval: 10 * time.Millisecond,
		Func: func(context.Context) error {
			if failing.Load() {
				return errDown
			}
			return nil
		},
	})
	steps := []struct {
		name  string
		do    func()
		ready bool
	}{
		{name: "first result", do: func() { start(t, c) }, ready: false},
		{name: "started", do: c.MarkStarted, ready: true},
		{name: "check fails", do: func() { failing.Store(true) }, ready: false},
		{name: "check recovers", do: func() { failing.Store(false) }, ready: true},
		{name: "draining", do: c.SetDraining, ready: false},
	}
	for _, s := range steps {
		ch := c.Changed()
		s.do()
		// The first result may land before MarkStarted's step reads it;
		// wait for the change that makes readiness what the step says.
		for c.Ready() != s.ready {
			if !closedWithin(ch) {
				t.Fatalf("%s: Changed not closed", s.name)
			}
			ch = c.Changed()
		}
	}
}
