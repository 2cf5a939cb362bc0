package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/server"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m)
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// seq records named events in the order they happen.
type seq struct {
	mu     sync.Mutex
	events []string
	at     map[string]time.Time
}

func (s *seq) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	s.events = append(s.events, name)
	s.at[name] = time.Now()
}

func (s *seq) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

func (s *seq) time(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at[name]
}

// closeListener records when Shutdown closes the listener.
type closeListener struct {
	net.Listener
	once    sync.Once
	onClose func()
}

func (l *closeListener) Close() error {
	l.once.Do(l.onClose)
	return l.Listener.Close()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func startRun(t *testing.T, lc *lifecycle.Lifecycle, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- lc.Run(ctx) }()
	return done
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func h1Client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func h2cClient(t *testing.T) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func getOK(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return resp
}

var errBoom = errors.New("boom")

func TestShutdownOrder(t *testing.T) {
	// The drain must outlast the test's own steps between the trigger and
	// its request during the drain: at 1s, a loaded 2-core machine once
	// took longer and the request met a closed listener.
	const drain = 3 * time.Second
	tests := []struct {
		name    string
		trigger func(sigc chan<- os.Signal, cancel context.CancelFunc, fail chan<- struct{})
		wantErr error
	}{
		{"SIGTERM", func(sigc chan<- os.Signal, _ context.CancelFunc, _ chan<- struct{}) { sigc <- syscall.SIGTERM }, nil},
		{"SIGINT", func(sigc chan<- os.Signal, _ context.CancelFunc, _ chan<- struct{}) { sigc <- os.Interrupt }, nil},
		{"context cancelled", func(_ chan<- os.Signal, cancel context.CancelFunc, _ chan<- struct{}) { cancel() }, nil},
		{"actor failed", func(_ chan<- os.Signal, _ context.CancelFunc, fail chan<- struct{}) { close(fail) }, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &seq{}
			lnClosed := make(chan struct{})
			checker := health.New(logger(t), health.Check{Name: "dep", Critical: true, Interval: 10 * time.Millisecond,
				Func: func(context.Context) error { return nil }})
			mux := http.NewServeMux()
			mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
				<-lnClosed // still in flight when Shutdown starts
				io.WriteString(w, "slow ok")
				ev.add("slow-handler-done")
			})
			srv := server.New(server.Config{}, mux)
			ln := &closeListener{Listener: listen(t), onClose: func() { ev.add("listener-closed"); close(lnClosed) }}
			url := "http://" + ln.Addr().String()

			sigc := make(chan os.Signal, 2)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fail := make(chan struct{})
			lc := lifecycle.New(lifecycle.Config{DrainDelay: drain, ShutdownTimeout: 20 * time.Second,
				Health: checker, SignalC: sigc, Logger: logger(t)})
			lc.Serve("app", srv, ln)
			lc.Go("worker", func(ctx context.Context) error {
				<-ctx.Done()
				ev.add("actor-stopped")
				return ctx.Err()
			})
			lc.Go("failer", func(ctx context.Context) error {
				select {
				case <-fail:
					return errBoom
				case <-ctx.Done():
					return nil
				}
			})
			for _, name := range []string{"a", "b", "c"} {
				lc.OnClose(name, func(context.Context) error {
					ev.add("close-" + name)
					return nil
				})
			}
			done := startRun(t, lc, ctx)

			client := h1Client(t)
			waitFor(t, "readiness", checker.Ready)
			if resp := getOK(t, client, url); resp.Close {
				t.Fatal("response before the stop asks to close the connection")
			}

			start := time.Now()
			tt.trigger(sigc, cancel, fail)
			waitFor(t, "readiness to fail", func() bool { return !checker.Ready() })
			ev.add("readiness-503")
			if resp := getOK(t, client, url); !resp.Close {
				t.Error("response during the drain does not carry Connection: close")
			}
			ev.add("drain-request-ok")
			slow := make(chan error, 1)
			go func() {
				resp, err := h1Client(t).Get(url + "/slow")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				slow <- err
			}()

			err := result(t, done)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Run: %v, want %v", err, tt.wantErr)
			}
			if err := <-slow; err != nil {
				t.Errorf("request in flight at Shutdown: %v", err)
			}
			want := []string{"readiness-503", "drain-request-ok", "listener-closed", "slow-handler-done",
				"actor-stopped", "close-c", "close-b", "close-a"}
			if got := ev.list(); !slices.Equal(got, want) {
				t.Fatalf("order:\n got %q\nwant %q", got, want)
			}
			if d := ev.time("listener-closed").Sub(start); d < drain {
				t.Errorf("Shutdown began %s after the trigger, before the %s drain", d, drain)
			}
		})
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	tests := []struct {
		name       string
		cancelCtx  bool // the stop begins with the context, not a signal
		signals    int
		wantForced bool
	}{
		{"two signals", false, 2, true},
		{"context then one signal", true, 1, false},
		{"context then two signals", true, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigc := make(chan os.Signal, 2)
			var closed atomic.Bool
			checker := health.New(nil)
			drain := time.Hour
			if !tt.wantForced {
				drain = 200 * time.Millisecond
			}
			lc := lifecycle.New(lifecycle.Config{DrainDelay: drain, SignalC: sigc, Health: checker, Logger: logger(t)})
			ln := listen(t)
			lc.Serve("app", server.New(server.Config{}, http.NotFoundHandler()), ln)
			lc.Go("worker", func(ctx context.Context) error { <-ctx.Done(); return nil })
			lc.OnClose("db", func(context.Context) error { closed.Store(true); return nil })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := startRun(t, lc, ctx)
			waitFor(t, "start-up", checker.Ready)

			if tt.cancelCtx {
				cancel()
			} else {
				sigc <- syscall.SIGTERM
				tt.signals--
			}
			waitFor(t, "the drain", lc.Draining)
			for range tt.signals {
				sigc <- syscall.SIGTERM
			}
			err := result(t, done)
			if !tt.wantForced {
				if err != nil || !closed.Load() {
					t.Fatalf("Run: %v, closer ran: %v; want a clean stop", err, closed.Load())
				}
				return
			}
			if !errors.Is(err, lifecycle.ErrForced) {
				t.Fatalf("Run: %v, want ErrForced", err)
			}
			if closed.Load() {
				t.Error("closer ran on a forced exit")
			}
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				c.Close()
				t.Error("listener still accepts after a forced exit")
			}
		})
	}
}

// TestDrainHTTP2 shows HTTP/2 clients moving off a draining server: the
// response that carries Connection: close makes the server send GOAWAY, so
// the client's next request opens a new connection.
func TestDrainHTTP2(t *testing.T) {
	// Connections are counted by the requests they carried, not as the
	// listener accepts them: another test's probe of a port it closed
	// once reached this listener, which the kernel had given the port.
	conns := connCounter{seen: map[string]bool{}}
	srv := server.New(server.Config{H2C: true}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("request over HTTP/%d", r.ProtoMajor)
		}
		conns.add(r.RemoteAddr)
	}))
	sigc := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lc := lifecycle.New(lifecycle.Config{DrainDelay: 10 * time.Second, SignalC: sigc, Logger: logger(t)})
	ln := listen(t)
	lc.Serve("app", srv, ln)
	done := startRun(t, lc, ctx)
	url := "http://" + ln.Addr().String()
	client := h2cClient(t)

	for range 3 {
		getOK(t, client, url)
	}
	if n := conns.count(); n != 1 {
		t.Fatalf("%d connections before the drain, want 1", n)
	}
	sigc <- syscall.SIGTERM
	waitFor(t, "the drain", lc.Draining)
	getOK(t, client, url) // answered with GOAWAY on connection 1
	getOK(t, client, url)
	if n := conns.count(); n != 2 {
		t.Fatalf("%d connections after a request during the drain, want 2 (GOAWAY moved the client)", n)
	}
	if !lc.Draining() {
		t.Fatal("drain ended during the test")
	}
	client.CloseIdleConnections()
	// The drain is long; a cancelled context does not cut it short, so
	// finish with Shutdown's deadline by forcing.
	sigc <- syscall.SIGTERM
	if err := result(t, done); !errors.Is(err, lifecycle.ErrForced) {
		t.Fatalf("Run: %v", err)
	}
}

// connCounter counts the distinct client addresses requests came from.
type connCounter struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (c *connCounter) add(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[addr] = true
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, lc *lifecycle.Lifecycle, release <-chan struct{}) (ready func())
		shutdown  time.Duration
		wantErr   error
		wantCause error
		trigger   bool // send SIGTERM after start
	}{
		{
			name: "nil server",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, _ <-chan struct{}) func() {
				lc.Serve("app", nil, listen(t))
				return nil
			},
			wantErr: lifecycle.ErrInvalid,
		},
		{
			name: "nil actor",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, _ <-chan struct{}) func() {
				lc.Go("x", nil)
				return nil
			},
			wantErr: lifecycle.ErrInvalid,
		},
		{
			name: "nil closer",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, _ <-chan struct{}) func() {
				lc.OnClose("x", nil)
				return nil
			},
			wantErr: lifecycle.ErrInvalid,
		},
		{
			// A negative ShutdownTimeout used to mean the default.
			name:     "negative shutdown timeout",
			setup:    func(*testing.T, *lifecycle.Lifecycle, <-chan struct{}) func() { return nil },
			shutdown: -time.Second,
			wantErr:  lifecycle.ErrInvalidConfig,
		},
		{
			name: "server fails",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, _ <-chan struct{}) func() {
				ln := listen(t)
				ln.Close()
				lc.Serve("app", server.New(server.Config{}, nil), ln)
				return nil
			},
			wantCause: net.ErrClosed,
		},
		{
			name: "closer fails, others still run",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, _ <-chan struct{}) func() {
				var first atomic.Bool
				lc.OnClose("first", func(context.Context) error { first.Store(true); return nil })
				lc.OnClose("second", func(context.Context) error { return errBoom })
				t.Cleanup(func() {
					if !first.Load() {
						t.Error("closer registered first did not run after a later one failed")
					}
				})
				return nil
			},
			wantCause: errBoom,
			trigger:   true,
		},
		{
			name: "actor ignores cancellation",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, release <-chan struct{}) func() {
				started := make(chan struct{})
				lc.Go("stubborn", func(context.Context) error { close(started); <-release; return nil })
				return func() { <-started }
			},
			shutdown: 200 * time.Millisecond,
			wantErr:  lifecycle.ErrShutdownTimeout,
			trigger:  true,
		},
		{
			name: "request outlives the shutdown timeout",
			setup: func(t *testing.T, lc *lifecycle.Lifecycle, release <-chan struct{}) func() {
				started := make(chan struct{})
				srv := server.New(server.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					close(started)
					select {
					case <-release:
					case <-r.Context().Done(): // Close after the deadline
					}
				}))
				ln := listen(t)
				lc.Serve("app", srv, ln)
				c := h1Client(t)
				go func() {
					if resp, err := c.Get("http://" + ln.Addr().String()); err == nil {
						resp.Body.Close()
					}
				}()
				return func() { <-started }
			},
			shutdown: 200 * time.Millisecond,
			wantErr:  lifecycle.ErrShutdownTimeout,
			trigger:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			sigc := make(chan os.Signal, 1)
			lc := lifecycle.New(lifecycle.Config{DrainDelay: -1, ShutdownTimeout: tt.shutdown, SignalC: sigc, Logger: logger(t)})
			ready := tt.setup(t, lc, release)
			done := startRun(t, lc, context.Background())
			if ready != nil {
				ready()
			}
			if tt.trigger {
				sigc <- syscall.SIGTERM
			}
			err := result(t, done)
			if err == nil {
				t.Fatal("Run returned nil")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Run: %v, want %v", err, tt.wantErr)
			}
			if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
				t.Errorf("Run: %v, want it to wrap %v", err, tt.wantCause)
			}
			if err := lc.Run(context.Background()); !errors.Is(err, lifecycle.ErrAlreadyRun) {
				t.Errorf("second Run: %v, want ErrAlreadyRun", err)
			}
		})
	}
}
