package get

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve starts an API server that answers GET /api/v1/snapshot with the
// fixture file and returns its host:port.
func serve(t *testing.T, fixture string) string {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.SnapshotPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// execute runs `get args...` and returns stdout, stderr and the error.
func execute(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := NewCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(ctx)
	return stdout.String(), stderr.String(), err
}

func TestGetGolden(t *testing.T) {
	addr := serve(t, "snapshot.json")
	tests := []struct {
		name string
		args []string
	}{
		{"pods", []string{"pods"}},
		{"pods-wide", []string{"po", "-o", "wide"}},
		{"pods-all-namespaces", []string{"pods", "-A"}},
		{"pods-namespace", []string{"pod", "-n", "monitoring"}},
		{"pods-json", []string{"pods", "-n", "monitoring", "-o", "json"}},
		{"svc", []string{"svc"}},
		{"svc-wide-all-namespaces", []string{"services", "-o", "wide", "-A"}},
		{"hpa", []string{"hpa"}},
		{"hpa-wide", []string{"hpa", "-o", "wide"}},
		{"deploy", []string{"deploy", "-A"}},
		{"deploy-wide", []string{"deployments", "-o", "wide"}},
		{"ingress", []string{"ing"}},
		{"events", []string{"events"}},
		{"events-wide", []string{"ev", "-o", "wide"}},
		{"events-namespace", []string{"events", "-n", "monitoring"}},
		{"events-all-namespaces", []string{"events", "-A"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := execute(t, append(tc.args, "--server", addr)...)
			if err != nil {
				t.Fatalf("get %v: %v", tc.args, err)
			}
			if stderr != "" {
				t.Errorf("stderr: %q", stderr)
			}
			golden.Check(t, filepath.Join("testdata", tc.name+".golden"), []byte(out), *update)
		})
	}
}

func TestGetShowsTheOnlyNamespaceWithoutFlag(t *testing.T) {
	addr := serve(t, "one-namespace.json")
	out, _, err := execute(t, "pods", "--server", addr)
	if err != nil {
		t.Fatal(err)
	}
	// Two containers, both ready, in the only namespace "shoal".
	if !strings.Contains(out, "gallery-5d8f7c4b9-h6n2d   2/2") {
		t.Errorf("pods of namespace shoal missing:\n%s", out)
	}
	out, stderr, err := execute(t, "pods", "-n", "default", "--server", addr)
	if err != nil {
		t.Fatal(err)
	}
	if out != "" || stderr != "No resources found in default namespace.\n" {
		t.Errorf("-n default: stdout %q, stderr %q", out, stderr)
	}
}

func TestGetNotRunning(t *testing.T) {
	// A port that was just free: nothing answers there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	_, _, err = execute(t, "pods", "--server", addr)
	if !errors.Is(err, api.ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
	want := "get: no shoal up answering at " + addr + ": dial tcp " + addr
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q does not start with %q", err, want)
	}
}

func TestGetAPIError(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.SnapshotPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error": "cluster: starting"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	_, _, err := execute(t, "svc", "--server", srv.URL)
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable || ae.Message != "cluster: starting" {
		t.Fatalf("err = %v, want the API's error with code 503", err)
	}
	if err.Error() != "get: cluster: starting (HTTP 503)" {
		t.Errorf("message %q", err)
	}
}

func TestGetRejectsBadSnapshot(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.SnapshotPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`<html>not the API</html>`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	_, _, err := execute(t, "pods", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "get: decode snapshot from "+srv.URL) {
		t.Fatalf("err = %v, want a decode error naming the server", err)
	}
}

func TestGetUsageErrors(t *testing.T) {
	addr := serve(t, "snapshot.json")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no type", nil, "get: usage: want one resource type (pods, svc, hpa, deploy, ingress, events), got 0 arguments"},
		{"two types", []string{"pods", "svc"}, "got 2 arguments"},
		{"unknown type", []string{"nodes"}, `get: usage: unknown resource type "nodes"; want one of pods, svc, hpa, deploy, ingress, events`},
		{"bad output", []string{"pods", "-o", "yaml"}, `get: usage: -o "yaml": want wide or json`},
		{"namespace and all", []string{"pods", "-n", "default", "-A"}, "get: usage: -n and -A exclude each other"},
		{"bad server", []string{"pods", "--server", "ftp://127.0.0.1:1"}, `get: server "ftp://127.0.0.1:1": scheme must be http or https`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !strings.HasPrefix(tc.name, "bad server") {
				args = append(args, "--server", addr)
			}
			out, _, err := execute(t, args...)
			if err == nil {
				t.Fatalf("no error; printed %q", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("printed %q on bad input", out)
			}
		})
	}
}
