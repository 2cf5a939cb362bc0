package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"
)

type eventKind int

const (
	kindServer eventKind = iota
	kindActor
	kindHealth
)

func (k eventKind) String() string {
	return [...]string{"server", "actor", "health checker"}[k]
}

// event is the return of one goroutine Run started.
type event struct {
	kind eventKind
	name string
	err  error
}

// run is the state of one Run call.
type run struct {
	l       *Lifecycle
	servers []serverEntry
	actors  []actorEntry
	sigc    <-chan os.Signal

	signals    int // stop signals received
	events     chan event
	running    map[eventKind]map[string]int // goroutines not yet returned, by kind and name
	stopping   bool                         // servers have been told to shut down
	errs       []error
	stopActors context.CancelFunc
	stopHealth context.CancelFunc
}

// errForce is returned by the waits when a second signal arrives.
type errForce struct{ sig os.Signal }

func (e errForce) Error() string { return fmt.Sprintf("received %v", e.sig) }

func (r *run) do(ctx context.Context) error {
	l := r.l
	started := time.Now()
	// Actors and the checker outlive ctx: ctx only starts the stop, whose
	// order is ours to keep.
	base := context.WithoutCancel(ctx)
	actorCtx, stopActors := context.WithCancel(base)
	healthCtx, stopHealth := context.WithCancel(base)
	defer stopActors()
	defer stopHealth()
	r.stopActors, r.stopHealth = stopActors, stopHealth

	r.events = make(chan event, len(r.servers)+len(r.actors)+1)
	r.running = map[eventKind]map[string]int{kindServer: {}, kindActor: {}, kindHealth: {}}
	if h := l.cfg.Health; h != nil {
		r.running[kindHealth]["health"]++
		go func() { r.events <- event{kindHealth, "health", h.Run(healthCtx)} }()
	}
	for _, s := range r.servers {
		r.running[kindServer][s.name]++
		go func() { r.events <- event{kindServer, s.name, s.srv.Serve(s.ln)} }()
		l.log.Info("serving", "server", s.name, "addr", s.ln.Addr().String())
	}
	for _, a := range r.actors {
		r.running[kindActor][a.name]++
		go func() { r.events <- event{kindActor, a.name, a.fn(actorCtx)} }()
	}
	if h := l.cfg.Health; h != nil && !l.cfg.ManualStart {
		h.MarkStarted()
	}

	// Wait for the trigger.
	var reason error
	for trigger := false; !trigger; {
		select {
		case <-ctx.Done():
			l.log.Info("stopping: context done", "cause", context.Cause(ctx))
			trigger = true
		case sig := <-r.sigc:
			r.signals++
			l.log.Info("stopping: signal received", "signal", sig.String())
			trigger = true
		case ev := <-r.events:
			if err := r.account(ev); err != nil {
				l.log.Error("stopping: failure", "err", err)
				reason, trigger = err, true
			}
		}
	}

	if f, ok := errors.AsType[errForce](r.stop()); ok {
		for _, s := range r.servers {
			s.srv.Close()
		}
		l.log.Error("second signal: forcing exit", "signal", f.sig.String())
		return errors.Join(reason, fmt.Errorf("%w (%v)", ErrForced, f.sig))
	}
	err := errors.Join(append([]error{reason}, r.errs...)...)
	l.log.Info("stopped", "took", time.Since(started).Round(time.Millisecond), "err", err)
	return err
}

// account records a goroutine's return and says whether it is a failure.
func (r *run) account(ev event) error {
	r.running[ev.kind][ev.name]--
	if r.running[ev.kind][ev.name] == 0 {
		delete(r.running[ev.kind], ev.name)
	}
	switch ev.kind {
	case kindServer:
		if r.stopping && (ev.err == nil || errors.Is(ev.err, http.ErrServerClosed)) {
			return nil
		}
		if ev.err == nil {
			ev.err = errors.New("returned without an error")
		}
		return fmt.Errorf("lifecycle: server %q: %w", ev.name, ev.err)
	case kindActor:
		if ev.err == nil || (r.stopping && errors.Is(ev.err, context.Canceled)) {
			if !r.stopping {
				r.l.log.Info("actor finished", "actor", ev.name)
			}
			return nil
		}
		return fmt.Errorf("lifecycle: actor %q: %w", ev.name, ev.err)
	default:
		if ev.err != nil {
			return fmt.Errorf("lifecycle: health checker: %w", ev.err)
		}
		return nil
	}
}

// stop runs the ordered stop, collecting failures in r.errs. It returns an
// errForce on a second signal, else nil.
func (r *run) stop() error {
	l := r.l
	if h := l.cfg.Health; h != nil {
		h.SetDraining()
	}
	// From here each connection closes after its next response (see
	// Serve). Idle ones stay open until Shutdown: closing one now, as
	// http.Server.SetKeepAlivesEnabled(false) would, races the request its
	// client may be sending on it, and a POST that loses is not retried.
	l.draining.Store(true)
	// Servers that are not HTTP drain by their own means (a gRPC server
	// turns its health NOT_SERVING and sends GOAWAY on its connections).
	for _, s := range r.servers {
		s.srv.Drain()
	}

	if d := l.cfg.DrainDelay; d > 0 {
		l.log.Info("draining", "delay", d)
		t := time.NewTimer(d)
		defer t.Stop()
		if _, err := wait(r, t.C); err != nil {
			return err
		}
	}

	shutCtx, cancel := context.WithTimeout(context.Background(), l.cfg.ShutdownTimeout)
	defer cancel()

	// Shut the servers down together; each Serve returns at once.
	l.log.Info("shutting down servers", "timeout", l.cfg.ShutdownTimeout)
	r.stopping = true
	shut := make(chan error, len(r.servers))
	for _, s := range r.servers {
		go func() {
			err := s.srv.Shutdown(shutCtx)
			if err != nil {
				s.srv.Close()
				err = fmt.Errorf("lifecycle: server %q: %w: %w", s.name, ErrShutdownTimeout, err)
			}
			shut <- err
		}()
	}
	for range r.servers {
		err, f := wait(r, shut)
		if f != nil {
			return f
		}
		if err != nil {
			r.errs = append(r.errs, err)
		}
	}
	if err := r.drainEvents(kindServer, shutCtx); err != nil {
		return err
	}

	l.log.Info("stopping actors")
	r.stopActors()
	if err := r.drainEvents(kindActor, shutCtx); err != nil {
		return err
	}
	r.stopHealth()
	if err := r.drainEvents(kindHealth, shutCtx); err != nil {
		return err
	}

	return r.close(shutCtx)
}

// wait blocks until ch yields, accounting for events meanwhile, and
// returns an errForce if a signal comes first.
func wait[T any](r *run, ch <-chan T) (T, error) {
	for {
		select {
		case x := <-ch:
			return x, nil
		case sig := <-r.sigc:
			if err := r.signal(sig); err != nil {
				var zero T
				return zero, err
			}
		case ev := <-r.events:
			if err := r.account(ev); err != nil {
				r.errs = append(r.errs, err)
			}
		}
	}
}

// drainEvents waits until every goroutine of kind has returned, until the
// deadline (an error naming those left), or until a second signal.
func (r *run) drainEvents(kind eventKind, ctx context.Context) error {
	for len(r.running[kind]) > 0 {
		select {
		case ev := <-r.events:
			if err := r.account(ev); err != nil {
				r.errs = append(r.errs, err)
			}
		case sig := <-r.sigc:
			if err := r.signal(sig); err != nil {
				return err
			}
		case <-ctx.Done():
			// Returns queued with the deadline (a server closed hard
			// when its Shutdown failed) are not left behind.
			if r.pending() {
				continue
			}
			var names []string
			for n := range r.running[kind] {
				names = append(names, n)
			}
			slices.Sort(names)
			r.errs = append(r.errs, fmt.Errorf("%w: %s %q still running", ErrShutdownTimeout, kind, names))
			r.l.log.Error("abandoning goroutines at the shutdown deadline", "kind", kind.String(), "names", names)
			return nil
		}
	}
	return nil
}

// pending accounts for one event already queued, if any, and says
// whether there was one.
func (r *run) pending() bool {
	select {
	case ev := <-r.events:
		if err := r.account(ev); err != nil {
			r.errs = append(r.errs, err)
		}
		return true
	default:
		return false
	}
}

// close runs the closers, last registered first.
func (r *run) close(ctx context.Context) error {
	l := r.l
	l.mu.Lock()
	l.closing = true
	closers := slices.Clone(l.closers)
	l.mu.Unlock()
	if len(closers) == 0 {
		return nil
	}
	l.log.Info("closing resources", "count", len(closers))
	done := make(chan struct{})
	var errs []error
	// Owned by this function, which waits for it unless a second signal
	// or the deadline comes first (then the process is exiting).
	go func() {
		defer close(done)
		for _, c := range slices.Backward(closers) {
			if err := c.fn(ctx); err != nil {
				l.log.Error("close failed", "resource", c.name, "err", err)
				errs = append(errs, fmt.Errorf("lifecycle: closing %q: %w", c.name, err))
				continue
			}
			l.log.Info("closed", "resource", c.name)
		}
	}()
	for {
		select {
		case <-done:
			r.errs = append(r.errs, errs...)
			return nil
		case sig := <-r.sigc:
			if err := r.signal(sig); err != nil {
				return err
			}
		case <-ctx.Done():
			select {
			case <-done: // finished together with the deadline
				r.errs = append(r.errs, errs...)
			default:
				r.errs = append(r.errs, fmt.Errorf("%w: closers still running", ErrShutdownTimeout))
			}
			return nil
		}
	}
}

// signal counts a signal received during the stop and returns an errForce
// if it is the second. The first may arrive here when the stop began on a
// context cancelled by that same signal (signal.NotifyContext in main).
func (r *run) signal(sig os.Signal) error {
	r.signals++
	if r.signals >= 2 {
		return errForce{sig}
	}
	r.l.log.Info("signal received while stopping; a second one forces exit", "signal", sig.String())
	return nil
}
