package localk8s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// errEarly is an actor's error when it returned before it was interrupted.
var errEarly = errors.New("returned before the stop")

// group owns the goroutines of one Run, as oklog/run's Group does: each
// actor is an (execute, interrupt) pair, the first actor to return (or
// the end of the context) stops them all, and run returns only when every
// execute has returned. Unlike oklog/run it stops the actors one at a
// time, in the order they were added, each waited for before the next is
// interrupted: that order is the stop order of `shoal up`.
type group struct {
	actors []actor
	// started, if set, is called once every actor's execute runs.
	started func()
	// stopping, if set, is called once when the stop begins, before the
	// first interrupt.
	stopping func()
}

// actor is one goroutine of a group: execute runs until interrupt makes
// it return. interrupt is called once, even for an actor that has
// already returned.
type actor struct {
	name      string
	execute   func() error
	interrupt func()
}

// add registers a; the order of the calls is the stop order.
func (g *group) add(a actor) {
	g.actors = append(g.actors, a)
}

// run starts the actors and waits for ctx to end or one of them to
// return, then interrupts them in order. It returns the actors' errors,
// an actor that returned before the stop counting as one.
func (g *group) run(ctx context.Context) error {
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(g.actors))
	for i, a := range g.actors {
		go func() { results <- result{i, a.execute()} }()
	}
	if g.started != nil {
		g.started()
	}

	returned := make([]bool, len(g.actors))
	var errs []error
	record := func(r result, stopping bool) {
		returned[r.i] = true
		if r.err == nil && !stopping {
			r.err = errEarly
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", g.actors[r.i].name, r.err))
		}
	}
	if len(g.actors) > 0 {
		select {
		case <-ctx.Done():
		case r := <-results:
			record(r, false)
		}
	}

	if g.stopping != nil {
		g.stopping()
	}
	for i, a := range g.actors {
		a.interrupt()
		for !returned[i] {
			record(<-results, true)
		}
	}
	return errors.Join(errs...)
}

// untilCancelled is the actor of a function that runs until its context
// ends. The context is the actor's own, not run's, so that only the
// group decides when and in which order its actors stop.
func untilCancelled(name string, run func(context.Context)) actor {
	ctx, cancel := context.WithCancel(context.Background())
	return actor{name, func() error { run(ctx); return nil }, cancel}
}

// serverShutdownTimeout bounds how long the API waits for its requests in
// flight when it stops.
const serverShutdownTimeout = 5 * time.Second

// serving is the actor of srv serving ln until it is shut down.
func serving(name string, srv *http.Server, ln net.Listener) actor {
	execute := func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	interrupt := func() {
		ctx, cancel := context.WithTimeout(context.Background(), serverShutdownTimeout)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
	}
	return actor{name, execute, interrupt}
}
