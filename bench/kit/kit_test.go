package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestGoLines(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"package only", "package main\n", 1},
		{"blank lines", "package main\n\n\n\nvar x = 1\n", 2},
		{"line comments", "// Package main.\npackage main\n\n// x is one.\nvar x = 1 // trailing\n", 2},
		{"block comment", "package main\n/*\nnot\ncode\n*/\nvar x = 1\n", 2},
		{"code after block comment", "package main\n/* a */ var x = 1\n", 2},
		{"raw string spans lines", "package main\nvar s = `a\nb\n\nc`\n", 5},
		{"func", "package main\n\nfunc f() {\n\t// nothing\n}\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := goLines([]byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("goLines = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestGoLinesRejectsBadSource(t *testing.T) {
	if _, err := goLines([]byte("package main\nvar s = \"unterminated\n")); err == nil {
		t.Error("goLines of an unterminated string: no error")
	}
}

func TestConfigLines(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want int
	}{
		{"empty", "", 0},
		{"yaml", "# comment\nName: x\n\n  # indented comment\nPort: 1\n", 2},
		{"value with hash", "Name: a#b\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := configLines([]byte(tt.src)); got != tt.want {
				t.Errorf("configLines = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestProgramFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"main.go":            "package main\n\nfunc main() {}\n",
		"main_test.go":       "package main\n",
		"go.mod":             "module x\n",
		"go.sum":             "",
		"etc/app.yaml":       "# c\nName: x\n",
		"testdata/skip.yaml": "a: b\n",
		"README.md":          "# x\n",
		"internal/h/h.go":    "package h\n",
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := programFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	total := 0
	for _, f := range got {
		rel, _ := filepath.Rel(dir, f.path)
		names = append(names, rel)
		total += f.lines
	}
	slices.Sort(names)
	want := []string{"etc/app.yaml", "internal/h/h.go", "main.go"}
	if !slices.Equal(names, want) {
		t.Errorf("files = %v, want %v", names, want)
	}
	if total != 4 {
		t.Errorf("lines = %d, want 4", total)
	}
}

func TestParsePrograms(t *testing.T) {
	got := parsePrograms([]string{"a=x,y", "bench/peers/kratos/"})
	if len(got) != 2 || got[0].name != "a" || !slices.Equal(got[0].paths, []string{"x", "y"}) ||
		got[1].name != "kratos" || !slices.Equal(got[1].paths, []string{"bench/peers/kratos/"}) {
		t.Errorf("parsePrograms = %+v", got)
	}
}

func TestPercentile(t *testing.T) {
	r := loadResult{}
	for i := 1; i <= 100; i++ {
		r.latency = append(r.latency, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{0.001, time.Millisecond},
	}
	for _, tt := range tests {
		if got := r.percentile(tt.q); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := (loadResult{}).percentile(0.5); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd median = %v", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("even median = %v, want 2 (mean of 2 and 3, truncated)", got)
	}
}

func TestDrive(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		path     string
		wantOK   bool
		wantKind string
	}{
		{"ok", "/trivial", true, ""},
		{"errors by status", "/fail", false, "http_503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := newLoadClient(4, 5*time.Second)
			defer client.CloseIdleConnections()
			r := drive(context.Background(), client, srv.URL+tt.path, 4, 100*time.Millisecond)
			if tt.wantOK && (r.ok == 0 || r.errorCount() != 0 || len(r.latency) != r.ok || r.rate() <= 0) {
				t.Errorf("ok %d, errors %v, %d latencies, rate %v", r.ok, r.errors, len(r.latency), r.rate())
			}
			if !tt.wantOK && (r.ok != 0 || r.errors[tt.wantKind] == 0) {
				t.Errorf("ok %d, errors %v; want only %s", r.ok, r.errors, tt.wantKind)
			}
			if !slices.IsSorted(r.latency) {
				t.Error("latencies not sorted")
			}
		})
	}
}

func TestDriveStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	client := newLoadClient(2, 5*time.Second)
	defer client.CloseIdleConnections()
	done := make(chan loadResult)
	go func() { done <- drive(ctx, client, srv.URL, 2, time.Hour) }()
	select {
	case r := <-done:
		if r.errorCount() != 0 {
			t.Errorf("errors after cancel: %v", r.errors)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("drive did not stop when its context was cancelled")
	}
}

// TestBackendAndCheck runs the functional checks against a target served
// in-process the way the peers serve it: readiness follows the downstream.
func TestBackendAndCheck(t *testing.T) {
	b, err := startBackend()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.close(); err != nil {
			t.Error(err)
		}
	}()
	probe := &http.Client{Timeout: 5 * time.Second}
	defer probe.CloseIdleConnections()
	down := "http://" + b.addr + "/ping"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		_, body, err := get(r.Context(), probe, down)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(body)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if code, _, err := get(r.Context(), probe, down); err != nil || code != http.StatusOK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# TYPE x counter\nx 1\n")
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, _ *http.Request) {})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name       string
		target     target
		timeout    time.Duration
		wantFailed int
	}{
		{"all pass", target{hello: true, readyURL: "http://127.0.0.1:{PORT}/readyz", metricsURL: "http://127.0.0.1:{ADMIN_PORT}/metrics"}, checkTimeout, 0},
		{"readiness that ignores the downstream", target{readyURL: "http://127.0.0.1:{PORT}/broken"}, 200 * time.Millisecond, 1},
		{"metrics that are not Prometheus text", target{metricsURL: "http://127.0.0.1:{PORT}/broken"}, checkTimeout, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &proc{port: port, admin: port}
			ctx, cancel := context.WithTimeout(context.Background(), 4*checkTimeout)
			defer cancel()
			failed := check(ctx, tt.target, p, b, probe, tt.timeout)
			if len(failed) != tt.wantFailed {
				t.Errorf("failed = %q, want %d failure(s)", failed, tt.wantFailed)
			}
			if b.failing.Load() {
				t.Error("check left the downstream failing")
			}
		})
	}
}
