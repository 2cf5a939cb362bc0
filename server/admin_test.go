package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/server"
)

func TestAdminMux(t *testing.T) {
	checker := health.New(nil)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up 1\n") })
	tests := []struct {
		name     string
		opts     []server.AdminOption
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{"livez", nil, "GET", "/livez", 200, `"status":"ok"`},
		{"readyz before start", nil, "GET", "/readyz", 503, `"status":"fail"`},
		{"healthz", nil, "GET", "/healthz", 503, `"probe":"readyz"`},
		{"startupz", nil, "GET", "/startupz", 503, `"probe":"startupz"`},
		{"metrics", nil, "GET", "/metrics", 200, "up 1"},
		{"unknown", nil, "GET", "/nope", 404, ""},
		{"metrics is read-only", nil, "POST", "/metrics", 405, ""},
		{"pprof off by default", nil, "GET", "/debug/pprof/", 404, ""},
		{"pprof profile off by default", nil, "GET", "/debug/pprof/goroutine?debug=1", 404, ""},
		{"pprof symbol off by default", nil, "GET", "/debug/pprof/symbol", 404, ""},
		{"pprof index", []server.AdminOption{server.WithPprof()}, "GET", "/debug/pprof/", 200, "goroutine"},
		{"pprof named profile", []server.AdminOption{server.WithPprof()}, "GET", "/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"pprof symbol", []server.AdminOption{server.WithPprof()}, "GET", "/debug/pprof/symbol", 200, "num_symbols"},
		// The command line holds flags such as -session-secret.
		{"pprof cmdline never", []server.AdminOption{server.WithPprof()}, "GET", "/debug/pprof/cmdline", 404, ""},
		{"pprof cmdline off", nil, "GET", "/debug/pprof/cmdline", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := server.AdminMux(checker, metrics, tt.opts...)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, w.Code, w.Body, tt.wantCode, tt.wantBody)
			}
			if strings.Contains(w.Body.String(), os.Args[0]) {
				t.Fatalf("%s %s: body shows the command line: %q", tt.method, tt.path, w.Body)
			}
		})
	}
	t.Run("nil parts", func(t *testing.T) {
		mux := server.AdminMux(nil, nil)
		for _, p := range []string{"/readyz", "/metrics"} {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
			if w.Code != 404 {
				t.Errorf("GET %s: %d, want 404", p, w.Code)
			}
		}
	})
}
