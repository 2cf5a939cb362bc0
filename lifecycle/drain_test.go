package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/server"
)

// TestDrainServesKeptAliveConnections is the request that used to be lost
// at SIGTERM: a POST sent on a kept-alive connection that sat idle when the
// drain began. The drain must serve it on that very connection, then close
// the connection after the response (Connection: close on HTTP/1.1, GOAWAY
// on h2c), so the client's next request opens a new one. Closing idle
// connections when the drain begins (http.Server.SetKeepAlivesEnabled)
// races such a request, and Go's transport does not retry a POST.
func TestDrainServesKeptAliveConnections(t *testing.T) {
	tests := []struct {
		name string
		h2c  bool
	}{
		{"HTTP/1.1", false},
		{"h2c", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server.New(server.Config{H2C: tt.h2c}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := io.Copy(io.Discard, r.Body); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				io.WriteString(w, "ok")
			}))
			var dials atomic.Int32
			tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}
			if tt.h2c {
				var p http.Protocols
				p.SetUnencryptedHTTP2(true)
				tr.Protocols = &p
			}
			t.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

			// "draining" is logged once the stop has done everything it does
			// when the drain begins; from then on the servers only wait.
			log, draining := watchLog(t, "draining")
			sigc := make(chan os.Signal, 2)
			lc := lifecycle.New(lifecycle.Config{DrainDelay: time.Hour, SignalC: sigc, Logger: log})
			ln := listen(t)
			lc.Serve("app", srv, ln)
			done := startRun(t, lc, context.Background())
			url := "http://" + ln.Addr().String() + "/"

			if _, reused := post(t, client, url, "before the stop"); reused {
				t.Fatal("first request reused a connection")
			}
			sigc <- syscall.SIGTERM
			select {
			case <-draining:
			case <-time.After(20 * time.Second):
				t.Fatal("the drain did not begin")
			}
			resp, reused := post(t, client, url, "on the idle connection after the drain began")
			if !reused {
				t.Error("request after the drain began did not travel on the kept-alive connection: the server closed it")
			}
			if !tt.h2c && !resp.Close {
				t.Error("response during the drain does not carry Connection: close")
			}
			if _, reused := post(t, client, url, "after the connection's last response"); reused && !tt.h2c {
				t.Error("HTTP/1.1 connection reused after Connection: close")
			}
			// On h2c a request may race the GOAWAY on the old connection;
			// the transport retries it on a new one, so count dials.
			if n := dials.Load(); n != 2 {
				t.Errorf("%d connections dialled, want 2: one before the stop and one after its close", n)
			}
			if !lc.Draining() {
				t.Fatal("the drain ended during the test")
			}
			tr.CloseIdleConnections()
			// The drain is an hour long: finish by forcing.
			sigc <- syscall.SIGTERM
			if err := result(t, done); !errors.Is(err, lifecycle.ErrForced) {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// post sends a POST with a body to url, fails the test unless it is
// answered 200, and reports whether it travelled on a reused connection.
func post(t *testing.T, c *http.Client, url, what string) (*http.Response, bool) {
	t.Helper()
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
		http.MethodPost, url, strings.NewReader(`{"user":"ann"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", what, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s, reading body: %v", what, resp.Status, err)
	}
	return resp, reused
}

// watchLog returns a logger writing to the test's output and a channel
// closed when a record with message msg is logged.
func watchLog(t *testing.T, msg string) (*slog.Logger, <-chan struct{}) {
	w := &logWatch{Handler: logger(t).Handler(), msg: msg, once: new(sync.Once), seen: make(chan struct{})}
	return slog.New(w), w.seen
}

// logWatch shares once and seen with the handlers WithAttrs and
// WithGroup derive from it.
type logWatch struct {
	slog.Handler
	msg  string
	once *sync.Once
	seen chan struct{}
}

func (w *logWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == w.msg {
		w.once.Do(func() { close(w.seen) })
	}
	return w.Handler.Handle(ctx, r)
}

func (w *logWatch) WithAttrs(as []slog.Attr) slog.Handler {
	c := *w
	c.Handler = w.Handler.WithAttrs(as)
	return &c
}

func (w *logWatch) WithGroup(name string) slog.Handler {
	c := *w
	c.Handler = w.Handler.WithGroup(name)
	return &c
}
