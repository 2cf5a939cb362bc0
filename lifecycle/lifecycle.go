package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/health"
)

// Defaults applied to zero fields of [Config].
const (
	DefaultDrainDelay      = 5 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
)

var (
	// ErrForced is returned by Run when a second signal cut the stop short.
	ErrForced = errors.New("lifecycle: forced exit by a second signal")
	// ErrShutdownTimeout is wrapped by Run's error when a server, actor or
	// closer did not finish before the shutdown deadline.
	ErrShutdownTimeout = errors.New("lifecycle: shutdown deadline passed")
	// ErrInvalid is wrapped by Run's error for a registration that could
	// not be accepted (nil server, listener or function, or one made after
	// Run started).
	ErrInvalid = errors.New("lifecycle: invalid registration")
	// ErrInvalidConfig is wrapped by Run's error, and by
	// [Config.Validate]'s, for a Config field out of range.
	ErrInvalidConfig = errors.New("lifecycle: invalid config")
	// ErrAlreadyRun is returned by a second call of Run.
	ErrAlreadyRun = errors.New("lifecycle: Run called twice")
)

// Config configures a [Lifecycle]. The zero value is valid; every field
// documents its default.
type Config struct {
	// DrainDelay is how long servers keep serving after readiness turns
	// 503 and before Shutdown. Zero means DefaultDrainDelay (5s); negative
	// means none, for tests and for processes nothing routes to.
	DrainDelay time.Duration
	// ShutdownTimeout bounds everything after the drain: server Shutdown,
	// stopping actors and the health checker, and closers. Zero means
	// DefaultShutdownTimeout (20s); negative is invalid.
	ShutdownTimeout time.Duration
	// Logger receives one line per phase. Nil means slog.Default().
	Logger *slog.Logger
	// Health, if set, is run by Run, marked started once the servers are
	// serving (unless ManualStart) and set draining when the stop begins.
	Health *health.Checker
	// ManualStart leaves Health.MarkStarted to the caller, for services
	// that warm up after their servers start.
	ManualStart bool
	// Signals that start a graceful stop. Nil means SIGTERM and SIGINT.
	Signals []os.Signal
	// SignalC, if set, replaces signal.Notify as the source of stop
	// signals; Signals is then ignored. Tests use it to signal a Lifecycle
	// without signalling their own process.
	SignalC <-chan os.Signal
}

// Lifecycle owns servers, actors and resources; see the package doc.
type Lifecycle struct {
	cfg      Config
	log      *slog.Logger
	draining atomic.Bool

	mu      sync.Mutex
	servers []serverEntry
	actors  []actorEntry
	closers []closerEntry
	errs    []error // registrations refused
	ran     bool
	closing bool // closers have been taken
}

// Server is a server that is not an *http.Server (a gRPC server, say)
// for a Lifecycle to own through [Lifecycle.Own]. The Lifecycle calls
// Serve once from Run's start, Drain once when the stop begins, Shutdown
// once after the drain delay, and Close if Shutdown failed or a second
// signal forced the exit.
type Server interface {
	// Serve serves ln until Shutdown or Close, then returns nil (or
	// http.ErrServerClosed); any other return is a failure that stops
	// the process.
	Serve(ln net.Listener) error
	// Drain is called when the stop begins, before the drain delay: the
	// server turns its own health NOT_SERVING and asks clients to move,
	// while still serving what arrives. It must not block.
	Drain()
	// Shutdown stops accepting, lets work in flight finish and returns
	// nil, or returns an error when ctx ends first.
	Shutdown(ctx context.Context) error
	// Close stops at once: connections close, work in flight is
	// cancelled. It returns once the server's goroutines are done with
	// them.
	Close() error
}

// httpServer adapts an *http.Server, whose drain is the draining flag
// its handler reads (see Serve), to Server.
type httpServer struct{ *http.Server }

func (httpServer) Drain() {}

type serverEntry struct {
	name string
	srv  Server
	ln   net.Listener
}

type actorEntry struct {
	name string
	fn   func(ctx context.Context) error
}

type closerEntry = actorEntry

// Validate reports a field of c out of range, wrapping
// [ErrInvalidConfig].
func (c Config) Validate() error {
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("%w: ShutdownTimeout %v is negative", ErrInvalidConfig, c.ShutdownTimeout)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults,
// and a negative DrainDelay by zero.
func (c Config) withDefaults() Config {
	if c.DrainDelay == 0 {
		c.DrainDelay = DefaultDrainDelay
	}
	c.DrainDelay = max(c.DrainDelay, 0)
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Signals == nil {
		c.Signals = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	return c
}

// New returns a Lifecycle configured by cfg. An invalid cfg (see
// [Config.Validate]) is reported by Run, which then runs nothing, as a
// refused registration is.
func New(cfg Config) *Lifecycle {
	err := cfg.Validate()
	cfg = cfg.withDefaults()
	l := &Lifecycle{cfg: cfg, log: cfg.Logger}
	if err != nil {
		l.refuse(err)
	}
	return l
}

func (l *Lifecycle) refuse(err error) {
	l.log.Error("lifecycle: registration refused", "err", err)
	l.errs = append(l.errs, err)
}

// Serve registers srv to serve ln from Run on. It wraps srv.Handler so
// that the response to a request arriving during the drain carries
// "Connection: close", which closes its connection after it (GOAWAY on
// HTTP/2); a nil srv.Handler keeps its net/http meaning
// (http.DefaultServeMux). Call it before Run.
func (l *Lifecycle) Serve(name string, srv *http.Server, ln net.Listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case srv == nil || ln == nil:
		l.refuse(fmt.Errorf("%w: server %q: nil server or listener", ErrInvalid, name))
		return
	case l.ran:
		l.refuse(fmt.Errorf("%w: server %q registered after Run started", ErrInvalid, name))
		return
	}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = &drainHandler{draining: &l.draining, next: next, close: []string{"close"}}
	l.servers = append(l.servers, serverEntry{name, httpServer{srv}, ln})
}

// drainHandler is what Serve puts in front of a server's handler.
type drainHandler struct {
	draining *atomic.Bool
	next     http.Handler
	// close is the Connection header's value, one slice for every
	// response of the drain: net/http only reads it, and its capacity of
	// one makes a handler's Header().Add copy it.
	close []string
}

func (d *drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.draining.Load() {
		w.Header()["Connection"] = d.close
	}
	d.next.ServeHTTP(w, r)
}

// Own registers srv, a server that is not an *http.Server, to serve ln
// from Run on and to stop in the same order as the HTTP servers: its
// Drain at the start of the stop, its Shutdown together with theirs after
// the drain delay, bounded by the shutdown timeout, and its Close when
// that fails. Call it before Run.
func (l *Lifecycle) Own(name string, srv Server, ln net.Listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case srv == nil || ln == nil:
		l.refuse(fmt.Errorf("%w: server %q: nil server or listener", ErrInvalid, name))
	case l.ran:
		l.refuse(fmt.Errorf("%w: server %q registered after Run started", ErrInvalid, name))
	default:
		l.servers = append(l.servers, serverEntry{name, srv, ln})
	}
}

// Go registers a background actor, started by Run. Its ctx is cancelled
// after the servers have shut down, and Run waits for it to return. An
// actor returning an error before the stop triggers the stop and makes Run
// fail; one returning nil has simply finished. Call it before Run.
func (l *Lifecycle) Go(name string, fn func(ctx context.Context) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case fn == nil:
		l.refuse(fmt.Errorf("%w: actor %q: nil function", ErrInvalid, name))
	case l.ran:
		l.refuse(fmt.Errorf("%w: actor %q registered after Run started", ErrInvalid, name))
	default:
		l.actors = append(l.actors, actorEntry{name, fn})
	}
}

// OnClose registers a resource to close after servers, actors and the
// health checker have stopped. Closers run one at a time, last registered
// first, with a context that ends at the shutdown deadline; every closer
// runs even if an earlier one fails. It may be called while Run runs, for
// resources opened later, until the closers start.
func (l *Lifecycle) OnClose(name string, fn func(ctx context.Context) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case fn == nil:
		l.refuse(fmt.Errorf("%w: closer %q: nil function", ErrInvalid, name))
	case l.closing:
		l.refuse(fmt.Errorf("%w: closer %q registered after closing started", ErrInvalid, name))
	default:
		l.closers = append(l.closers, closerEntry{name, fn})
	}
}

// Draining reports whether the stop has begun.
func (l *Lifecycle) Draining() bool { return l.draining.Load() }

// Run starts everything registered and blocks until it has all stopped;
// see the package doc for the order. It returns nil after a clean stop on
// a signal or on ctx, an error wrapping ErrForced after a second signal,
// and otherwise an error naming what failed.
func (l *Lifecycle) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.ran {
		l.mu.Unlock()
		return ErrAlreadyRun
	}
	l.ran = true
	if len(l.errs) > 0 {
		err := errors.Join(l.errs...)
		l.mu.Unlock()
		return err
	}
	r := &run{
		l:       l,
		servers: slices.Clone(l.servers),
		actors:  slices.Clone(l.actors),
	}
	l.mu.Unlock()

	sigc := l.cfg.SignalC
	if sigc == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, l.cfg.Signals...)
		defer signal.Stop(ch)
		sigc = ch
	}
	r.sigc = sigc
	err := r.do(ctx)

	l.mu.Lock()
	err = errors.Join(err, errors.Join(l.errs...))
	l.mu.Unlock()
	return err
}
