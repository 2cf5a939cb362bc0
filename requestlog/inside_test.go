package requestlog_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/metrics"
	"github.com/shoal-dev/shoal/requestlog"
)

// TestMiddlewareInsideMetrics: directly inside metrics.HTTP.Middleware the
// line is made from the metrics' writer instead of a recorder of its own,
// and says the same as it does alone.
func TestMiddlewareInsideMetrics(t *testing.T) {
	tests := []struct {
		name    string
		h       http.HandlerFunc
		status  float64
		bytes   float64
		aborted bool
	}{
		{"body", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, 200, 5, false},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 200, 0, false},
		{"404 with a body", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", 404) }, 404, 5, false},
		{"interim 103 then 201", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(103); w.WriteHeader(201) }, 201, 0, false},
		{"flushed", func(w http.ResponseWriter, r *http.Request) { w.(http.Flusher).Flush() }, 200, 0, false},
		{"panic before writing", func(w http.ResponseWriter, r *http.Request) { panic("boom") }, 500, 0, true},
		{"panic after writing", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ab"); panic("boom") }, 200, 2, true},
	}
	for _, tt := range tests {
		for _, inside := range []bool{false, true} {
			name := tt.name + ", alone"
			if inside {
				name = tt.name + ", inside metrics"
			}
			t.Run(name, func(t *testing.T) {
				out := newLines()
				var h http.Handler = requestlog.Middleware(requestlog.Config{Logger: out.logger()}, tt.h)
				if inside {
					m, err := metrics.NewHTTP(prometheus.NewRegistry())
					if err != nil {
						t.Fatal(err)
					}
					h = m.Middleware(h)
				}
				func() {
					defer func() { _ = recover() }()
					h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
				}()
				line := out.next(t)
				if line["status"] != tt.status || line["bytes"] != tt.bytes || (line["aborted"] == true) != tt.aborted {
					t.Errorf("status %v bytes %v aborted %v, want %v %v %v", line["status"], line["bytes"], line["aborted"], tt.status, tt.bytes, tt.aborted)
				}
				if d, _ := line["duration"].(float64); d <= 0 {
					t.Errorf("duration %v, want above 0", line["duration"])
				}
			})
		}
	}
}

// TestAllocs fails if a request costs more allocations than it does
// today: ID taking the caller's ID (its context and the request copy),
// making one (and the ID's string), and the log middleware alone (its
// recorder), directly inside the metrics (none), or off.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; scripts/test.sh runs this without -race")
	}
	m, err := metrics.NewHTTP(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	quiet := slog.New(slog.DiscardHandler)
	logged := requestlog.Middleware(requestlog.Config{Logger: quiet}, nop)
	tests := []struct {
		name string
		h    http.Handler
		id   string // the request's X-Request-ID, "" for none
		want float64
	}{
		{"ID taken", requestlog.ID(nop), "0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10", 2},
		{"ID made", requestlog.ID(nop), "", 3},
		{"log line, alone", logged, "", 1},
		{"log line, inside metrics (the metrics' own recorder)", m.Middleware(logged), "", 1},
		{"log sampled out, inside metrics", m.Middleware(requestlog.Middleware(requestlog.Config{Logger: quiet, SampleRate: 0.01}, nop)), "", 1},
		{"log off", requestlog.Middleware(requestlog.Config{SampleRate: -1}, nop), "", 0},
	}
	for _, tt := range tests {
		r := httptest.NewRequestWithContext(context.Background(), "GET", "/x", nil)
		w := discard{http.Header{}}
		vals := []string{tt.id}
		got := testing.AllocsPerRun(1000, func() {
			if tt.id != "" {
				r.Header["X-Request-Id"] = vals
			} else {
				delete(r.Header, "X-Request-Id")
			}
			tt.h.ServeHTTP(w, r)
		})
		t.Logf("%s: %v allocations per request", tt.name, got)
		if got > tt.want {
			t.Errorf("%s: %v allocations per request, want at most %v", tt.name, got, tt.want)
		}
	}
}
