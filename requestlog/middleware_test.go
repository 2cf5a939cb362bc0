package requestlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/requestlog"
)

// lines collects the records of a JSON logger, one per Write, and hands
// them over a channel, so a test waits for a line instead of sleeping.
type lines struct {
	mu  sync.Mutex
	all [][]byte
	c   chan []byte
}

func newLines() *lines { return &lines{c: make(chan []byte, 1000)} }

func (l *lines) Write(p []byte) (int, error) {
	b := bytes.Clone(p)
	l.mu.Lock()
	l.all = append(l.all, b)
	l.mu.Unlock()
	l.c <- b
	return len(p), nil
}

func (l *lines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *lines) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, nil))
}

// next waits for the next line and decodes it.
func (l *lines) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case b := <-l.c:
		return decode(t, b)
	case <-time.After(30 * time.Second):
		t.Fatal("no log line")
		return nil
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("log line %s: %v", b, err)
	}
	return m
}

// TestMiddlewareLine serves requests over a real connection and checks
// every field of the line each one logs.
func TestMiddlewareLine(t *testing.T) {
	out := newLines()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "item "+r.PathValue("id"))
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	})
	cfg := requestlog.Config{
		Logger:  out.logger(),
		TraceID: func(ctx context.Context) string { return "trace-" + requestlog.IDFromContext(ctx) },
	}
	srv := httptest.NewServer(requestlog.ID(requestlog.Middleware(cfg, mux)))
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 30 * time.Second
	defer client.CloseIdleConnections()

	tests := []struct {
		name, method, path, id string
		want                   map[string]any
	}{
		{"ok", "GET", "/items/42", "r1", map[string]any{
			"route": "GET /items/{id}", "status": 200.0, "bytes": 7.0}},
		{"error", "POST", "/fail", "r2", map[string]any{
			"route": "POST /fail", "status": 503.0, "bytes": 3.0}},
		{"unmatched", "GET", "/nope", "r3", map[string]any{
			"route": "unmatched", "status": 404.0, "bytes": 19.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(requestlog.HeaderID, tt.id)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			line := out.next(t)
			took := time.Since(start).Seconds()

			want := map[string]any{
				"level": "INFO", "msg": "request", "method": tt.method,
				"request_id": tt.id, "trace_id": "trace-" + tt.id,
			}
			for k, v := range tt.want {
				want[k] = v
			}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("%s = %#v, want %#v", k, line[k], v)
				}
			}
			if d, ok := line["duration"].(float64); !ok || d < 0 || d > took {
				t.Errorf("duration = %#v, want seconds in [0, %g]", line["duration"], took)
			}
			if p, _ := line["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("peer = %#v, want the client's loopback address", line["peer"])
			}
			if _, ok := line["aborted"]; ok {
				t.Errorf("aborted = %v on a request that did not panic", line["aborted"])
			}
		})
	}
}

// seq returns the numbers given, in order, then fails the test.
func seq(t *testing.T, xs ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(xs) == 0 {
			t.Error("Rand called more often than expected")
			return 0
		}
		x := xs[0]
		xs = xs[1:]
		return x
	}
}

func status(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code != 0 {
			w.WriteHeader(code)
		}
	})
}

func TestMiddlewareSampling(t *testing.T) {
	panics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	tests := []struct {
		name   string
		rate   float64
		rand   []float64 // every draw the middleware may make
		next   http.Handler
		logged int
	}{
		{"zero rate logs all", 0, nil, status(200), 1},
		{"rate 1 logs all", 1, nil, status(0), 1},
		{"sampled in", 0.25, []float64{0.1}, status(204), 1},
		{"sampled in at the edge", 0.25, []float64{0.2499}, status(404), 1},
		{"sampled out at the edge", 0.25, []float64{0.25}, status(200), 0},
		{"sampled out", 0.25, []float64{0.9}, status(499), 0},
		{"5xx always, no draw", 0.0001, nil, status(500), 1},
		{"503 always", 0.0001, nil, status(503), 1},
		{"panic always, no draw", 0.0001, nil, panics, 1},
		{"off: success", -1, nil, status(200), 0},
		{"off: 5xx", -1, nil, status(500), 0},
		{"off: panic", -0.5, nil, panics, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := newLines()
			h := requestlog.Middleware(requestlog.Config{Logger: out.logger(), SampleRate: tt.rate, Rand: seq(t, tt.rand...)}, tt.next)
			func() {
				defer func() { recover() }()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}()
			if n := out.count(); n != tt.logged {
				t.Errorf("logged %d lines, want %d", n, tt.logged)
			}
		})
	}
}

// TestMiddlewareSampleShare checks the share over many requests with the
// real random source.
func TestMiddlewareSampleShare(t *testing.T) {
	var n int
	h := requestlog.Middleware(requestlog.Config{Logger: slog.New(countHandler{&n}), SampleRate: 0.1}, status(200))
	const total = 20000
	for range total {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	// 0.1 × 20000 = 2000 with σ ≈ 42: ±400 is more than 9σ.
	if n < 1600 || n > 2400 {
		t.Errorf("logged %d of %d at rate 0.1, want about 2000", n, total)
	}
}

type countHandler struct{ n *int }

func (countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(context.Context, slog.Record) error {
	*h.n++
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func TestMiddlewarePanic(t *testing.T) {
	tests := []struct {
		name   string
		before func(w http.ResponseWriter)
		status float64
		bytes  float64
	}{
		{"before writing", func(http.ResponseWriter) {}, 500, 0},
		{"after writing", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "part")
		}, 202, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := newLines()
			h := requestlog.Middleware(requestlog.Config{Logger: out.logger()}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.before(w)
				panic("boom")
			}))
			var p any
			func() {
				defer func() { p = recover() }()
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}()
			if p != "boom" {
				t.Errorf("recovered %v, want the handler's panic to continue", p)
			}
			line := out.next(t)
			if line["status"] != tt.status || line["bytes"] != tt.bytes || line["aborted"] != true {
				t.Errorf("status, bytes, aborted = %v, %v, %v; want %v, %v, true", line["status"], line["bytes"], line["aborted"], tt.status, tt.bytes)
			}
		})
	}
}

func TestMiddlewareRoute(t *testing.T) {
	out := newLines()
	var sawW http.ResponseWriter
	outer := httptest.NewRecorder()
	cfg := requestlog.Config{
		Logger: out.logger(),
		Route: func(w http.ResponseWriter, r *http.Request) string {
			sawW = w
			return "route-of-" + r.URL.Path
		},
	}
	requestlog.Middleware(cfg, status(200)).ServeHTTP(outer, httptest.NewRequest("GET", "/x", nil))
	if line := out.next(t); line["route"] != "route-of-/x" {
		t.Errorf("route = %v, want route-of-/x", line["route"])
	}
	if sawW != outer {
		t.Errorf("Route got %T, want the ResponseWriter Middleware was given", sawW)
	}
}

// marker is a ResponseWriter the test looks for through Unwrap chains.
type marker struct{ http.ResponseWriter }

func (m marker) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func TestMiddlewareWriter(t *testing.T) {
	out := newLines()
	inner := marker{httptest.NewRecorder()}
	var flushed, found bool
	h := requestlog.Middleware(requestlog.Config{Logger: out.logger()}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
			flushed = inner.ResponseWriter.(*httptest.ResponseRecorder).Flushed
		}
		for range 8 {
			if _, ok := w.(marker); ok {
				found = true
				break
			}
			u, ok := w.(interface{ Unwrap() http.ResponseWriter })
			if !ok {
				break
			}
			w = u.Unwrap()
		}
	}))
	h.ServeHTTP(inner, httptest.NewRequest("GET", "/", nil))
	if !flushed {
		t.Error("Flush did not reach the inner writer")
	}
	if !found {
		t.Error("the inner writer is not found through Unwrap")
	}
	if line := out.next(t); line["status"] != 200.0 {
		t.Errorf("status after a bare Flush = %v, want 200", line["status"])
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		rate    float64
		wantErr string
	}{
		{"zero", 0, ""},
		{"one", 1, ""},
		{"half", 0.5, ""},
		{"off", -1, ""},
		{"above one", 1.5, "requestlog: SampleRate 1.5"},
		{"NaN", math.NaN(), "requestlog: SampleRate NaN"},
		{"infinity", math.Inf(1), "requestlog: SampleRate +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := requestlog.Config{SampleRate: tt.rate}
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q...", err, tt.wantErr)
			}
			defer func() {
				if p, _ := recover().(error); p == nil || p.Error() != err.Error() {
					t.Errorf("Middleware panicked with %v, want %v", p, err)
				}
			}()
			requestlog.Middleware(cfg, status(200))
			t.Error("Middleware accepted an invalid config")
		})
	}
}
