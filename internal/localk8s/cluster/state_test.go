package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

func TestEventLog(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(i int, reason, msg string) api.Event {
		return api.Event{Time: t0.Add(time.Duration(i) * time.Second), Namespace: "default", Type: "Normal", Reason: reason, Object: "pod/web-1", Message: msg}
	}
	t.Run("repeats fold into a count and move to the end", func(t *testing.T) {
		l := eventLog{max: 10}
		l.add(ev(0, "Unhealthy", "Readiness probe failed"))
		l.add(ev(1, "Started", "Started container app"))
		l.add(ev(2, "Unhealthy", "Readiness probe failed"))
		got := l.list()
		if len(got) != 2 {
			t.Fatalf("events %+v, want 2", got)
		}
		if got[0].Reason != "Started" || got[0].Count != 1 {
			t.Errorf("first event %+v, want Started once", got[0])
		}
		if last := got[1]; last.Reason != "Unhealthy" || last.Count != 2 || !last.Time.Equal(t0.Add(2*time.Second)) {
			t.Errorf("last event %+v, want Unhealthy twice at the latest time", last)
		}
	})
	t.Run("differing namespace, type, object or message do not fold", func(t *testing.T) {
		l := eventLog{max: 10}
		base := ev(0, "Killing", "Stopping container(s)")
		l.add(base)
		warn := base
		warn.Type = "Warning"
		l.add(warn)
		other := base
		other.Object = "pod/web-2"
		l.add(other)
		msg := base
		msg.Message = "Stopping"
		l.add(msg)
		ns := base
		ns.Namespace = "shop"
		l.add(ns)
		if got := l.list(); len(got) != 5 {
			t.Errorf("events %+v, want 5 distinct", got)
		}
	})
	t.Run("bounded, oldest dropped", func(t *testing.T) {
		l := eventLog{max: 3}
		for i := range 5 {
			l.add(ev(i, "Scheduled", fmt.Sprintf("pod %d", i)))
		}
		got := l.list()
		if len(got) != 3 || got[0].Message != "pod 2" || got[2].Message != "pod 4" {
			t.Errorf("events %+v, want pods 2..4", got)
		}
	})
	t.Run("only recent events fold", func(t *testing.T) {
		l := eventLog{max: 100}
		l.add(ev(0, "BackOff", "Back-off restarting failed container"))
		for i := range 20 {
			l.add(ev(i+1, "Scheduled", fmt.Sprintf("pod %d", i)))
		}
		l.add(ev(30, "BackOff", "Back-off restarting failed container"))
		got := l.list()
		if len(got) != 22 || got[0].Count != 1 || got[21].Count != 1 {
			t.Errorf("an event 20 events back was folded: %d events, first %+v, last %+v", len(got), got[0], got[len(got)-1])
		}
	})
	t.Run("list is a copy", func(t *testing.T) {
		l := eventLog{max: 10}
		l.add(ev(0, "Started", "x"))
		l.list()[0].Reason = "changed"
		if l.list()[0].Reason != "Started" {
			t.Error("list returned the log's own slice")
		}
	})
}
