package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/requestlog"
	"github.com/shoal-dev/shoal/server"
)

// lockedBuffer is a log destination the server's goroutines write while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes the JSON lines written so far.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %s: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// recoverServer serves h behind requestlog.ID and Recover on loopback.
type recoverServer struct {
	url    string
	client *http.Client
	log    *lockedBuffer
	panics atomic.Int64
	conns  atomic.Int64 // connections accepted
}

func newRecoverServer(t *testing.T, h http.HandlerFunc) *recoverServer {
	t.Helper()
	s := &recoverServer{log: &lockedBuffer{}}
	logger := slog.New(requestlog.Handler(slog.NewJSONHandler(s.log, nil), nil))
	mux := http.NewServeMux()
	mux.Handle("/panic", h)
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewUnstartedServer(requestlog.ID(server.Recover(logger, func() { s.panics.Add(1) }, mux)))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s.url = srv.URL
	s.client = &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

type outcome struct {
	status int    // 0 when the request failed
	body   string // what was read of it
	err    error  // from the request or from reading the body
	reused bool   // the request went over a kept-alive connection
}

func (s *recoverServer) get(t *testing.T, path, id string) outcome {
	t.Helper()
	var o outcome
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { o.reused = i.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, "GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(requestlog.HeaderID, id)
	resp, err := s.client.Do(req)
	if err != nil {
		o.err = err
		return o
	}
	defer resp.Body.Close()
	o.status = resp.StatusCode
	b, err := io.ReadAll(resp.Body)
	o.body, o.err = string(b), err
	return o
}

func TestRecover(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		// want: a complete 500, a broken response (the connection
		// aborted), or a panic passed through untouched
		want      string
		wantPanic string // the start of the panic attribute logged
	}{
		{"panic before writing", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			panic("boom")
		}, "500", "boom"},
		{"error value", func(w http.ResponseWriter, r *http.Request) {
			panic(fmt.Errorf("wrapped: %w", io.ErrClosedPipe))
		}, "500", "wrapped: io: read/write on closed pipe"},
		{"nil", func(w http.ResponseWriter, r *http.Request) {
			panic(nil)
		}, "500", "panic called with nil argument"},
		{"after an interim 103", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			panic("boom")
		}, "500", "boom"},
		{"after flushing", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("late")
		}, "broken", "late"},
		{"after writing, unflushed", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			panic("late")
		}, "broken", "late"},
		{"after WriteHeader", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			panic("late")
		}, "broken", "late"},
		{"ErrAbortHandler", func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler)
		}, "passed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRecoverServer(t, tt.handler)
			got := s.get(t, "/panic", "req-1")
			switch tt.want {
			case "500":
				if got.status != http.StatusInternalServerError || got.err != nil || got.body != "Internal Server Error\n" {
					t.Errorf("got %d %q (%v), want a complete 500", got.status, got.body, got.err)
				}
			default:
				if got.err == nil {
					t.Errorf("got a complete %d %q, want a broken response", got.status, got.body)
				}
			}

			// The process keeps serving; after a 500, on the same connection.
			after := s.get(t, "/ok", "req-2")
			if after.status != http.StatusOK || after.body != "ok" || after.err != nil {
				t.Errorf("next request: %d %q (%v), want 200 ok", after.status, after.body, after.err)
			}
			if tt.want == "500" && (!after.reused || s.conns.Load() != 1) {
				t.Errorf("next request reused the connection: %v; connections: %d; want the one kept alive", after.reused, s.conns.Load())
			}

			lines := s.log.lines(t)
			if tt.want == "passed" {
				if len(lines) != 0 || s.panics.Load() != 0 {
					t.Errorf("ErrAbortHandler: %d lines logged, onPanic called %d times; want none", len(lines), s.panics.Load())
				}
				return
			}
			if n := s.panics.Load(); n != 1 {
				t.Errorf("onPanic called %d times, want 1", n)
			}
			if len(lines) != 1 {
				t.Fatalf("logged %d lines, want 1: %v", len(lines), lines)
			}
			l := lines[0]
			if p, _ := l["panic"].(string); l["level"] != "ERROR" || !strings.HasPrefix(p, tt.wantPanic) || l["request_id"] != "req-1" || l["path"] != "/panic" {
				t.Errorf("level, panic, request_id, path = %v, %q, %v, %v; want ERROR, %q, req-1, /panic", l["level"], l["panic"], l["request_id"], l["path"], tt.wantPanic)
			}
			if l["response_started"] != (tt.want == "broken") {
				t.Errorf("response_started = %v, want %v", l["response_started"], tt.want == "broken")
			}
			// The stack names the function that panicked.
			if stack, _ := l["stack"].(string); !strings.Contains(stack, "server_test.TestRecover.func") || !strings.Contains(stack, "recover_test.go:") {
				t.Errorf("stack does not show the panicking handler:\n%s", stack)
			}
		})
	}
}

// TestRecoverCountsEachPanic: onPanic once per panic, from concurrent
// requests, each logged once.
func TestRecoverCountsEachPanic(t *testing.T) {
	s := newRecoverServer(t, func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if got := s.get(t, "/panic", fmt.Sprint("req-", i)); got.status != http.StatusInternalServerError {
				t.Errorf("status %d (%v), want 500", got.status, got.err)
			}
		})
	}
	wg.Wait()
	if got := s.panics.Load(); got != n {
		t.Errorf("onPanic called %d times for %d panics", got, n)
	}
	if got := len(s.log.lines(t)); got != n {
		t.Errorf("logged %d lines for %d panics", got, n)
	}
}

// TestRecoverPassesErrAbortHandler checks the value itself, without a
// server in between.
func TestRecoverPassesErrAbortHandler(t *testing.T) {
	var called bool
	h := server.Recover(slog.New(slog.DiscardHandler), func() { called = true }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	var p any
	func() {
		defer func() { p = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	if err, _ := p.(error); !errors.Is(err, http.ErrAbortHandler) || err != http.ErrAbortHandler {
		t.Errorf("recovered %v, want http.ErrAbortHandler itself", p)
	}
	if called {
		t.Error("onPanic called for ErrAbortHandler")
	}
}

// TestRecoverWriter: the wrapper keeps Flush and Unwrap working, and a nil
// logger and onPanic are allowed.
func TestRecoverWriter(t *testing.T) {
	inner := httptest.NewRecorder()
	var unwrapped http.ResponseWriter
	h := server.Recover(nil, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		unwrapped = w.(interface{ Unwrap() http.ResponseWriter }).Unwrap()
	}))
	h.ServeHTTP(inner, httptest.NewRequest("GET", "/", nil))
	if !inner.Flushed {
		t.Error("Flush did not reach the inner writer")
	}
	if unwrapped != inner {
		t.Errorf("Unwrap() = %T, want the writer Recover was given", unwrapped)
	}
}

func ExampleRecover() {
	// Time and stack are dropped here only to keep the output stable.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "stack" {
				return slog.Attr{}
			}
			return a
		},
	}))
	var panics atomic.Int64
	h := server.Recover(logger, func() { panics.Add(1) }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var items []string
		fmt.Fprint(w, items[len(r.URL.Path)]) // a bug
	}))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/items", nil))
	fmt.Println(w.Code, panics.Load())
	// Output:
	// level=ERROR msg="panic serving request" panic="runtime error: index out of range [6] with length 0" method=GET path=/items response_started=false
	// 500 1
}
