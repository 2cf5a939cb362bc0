package lifecycle_test

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
)

// fakeServer is a lifecycle.Server that records its calls in s. Serve
// blocks until Shutdown or Close; Shutdown blocks until ctx ends when
// hang is set.
type fakeServer struct {
	s       *seq
	hang    bool
	failNow bool // Serve returns at once with errBoom
	stopped chan struct{}
}

func newFake(s *seq) *fakeServer { return &fakeServer{s: s, stopped: make(chan struct{})} }

func (f *fakeServer) Serve(ln net.Listener) error {
	defer ln.Close()
	f.s.add("serve")
	if f.failNow {
		return errBoom
	}
	<-f.stopped
	return nil
}

func (f *fakeServer) Drain() { f.s.add("drain") }

func (f *fakeServer) Shutdown(ctx context.Context) error {
	f.s.add("shutdown")
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	close(f.stopped)
	return nil
}

func (f *fakeServer) Close() error {
	f.s.add("close")
	select {
	case <-f.stopped:
	default:
		close(f.stopped)
	}
	return nil
}

var _ lifecycle.Server = (*fakeServer)(nil)

func TestOwnedServer(t *testing.T) {
	tests := []struct {
		name    string
		hang    bool
		failNow bool
		want    []string
		wantErr error
	}{
		{name: "clean stop", want: []string{"serve", "drain", "shutdown", "closed db"}},
		{name: "hung shutdown is closed at the deadline", hang: true,
			want: []string{"serve", "drain", "shutdown", "close"}, wantErr: lifecycle.ErrShutdownTimeout},
		{name: "serve failing stops the process", failNow: true,
			want: []string{"serve", "drain", "shutdown", "closed db"}, wantErr: errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s seq
			f := newFake(&s)
			f.hang, f.failNow = tt.hang, tt.failNow
			checker := health.New(nil)
			sigc := make(chan os.Signal, 2)
			lc := lifecycle.New(lifecycle.Config{
				DrainDelay: 50 * time.Millisecond, ShutdownTimeout: 300 * time.Millisecond,
				Logger: logger(t), Health: checker, SignalC: sigc,
			})
			lc.Own("fake", f, listen(t))
			lc.OnClose("db", func(context.Context) error { s.add("closed db"); return nil })
			done := startRun(t, lc, context.Background())
			waitFor(t, "serve", func() bool { return slices.Contains(s.list(), "serve") })
			if !tt.failNow {
				sigc <- syscall.SIGTERM
			}
			err := result(t, done)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run: %v, want %v", err, tt.wantErr)
			}
			got := s.list()
			if tt.hang {
				// Past the deadline the closers' context has ended too;
				// whether the closer ran is not this test's question.
				got = slices.DeleteFunc(got, func(e string) bool { return e == "closed db" })
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("calls %q, want %q", got, tt.want)
			}
			if !checker.Draining() {
				t.Fatal("readiness not failed")
			}
			if !tt.failNow {
				// The drain hook comes at the start of the drain delay,
				// Shutdown at its end.
				if gap := s.time("shutdown").Sub(s.time("drain")); gap < 50*time.Millisecond {
					t.Fatalf("Shutdown %v after Drain, want the drain delay", gap)
				}
			}
		})
	}
}

func TestOwnRefusesNil(t *testing.T) {
	lc := lifecycle.New(lifecycle.Config{Logger: logger(t)})
	lc.Own("nil", nil, listen(t))
	if err := lc.Run(context.Background()); !errors.Is(err, lifecycle.ErrInvalid) {
		t.Fatalf("Run: %v, want ErrInvalid", err)
	}
}
