package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the golden files")

// execute runs `load args...` and returns stdout, stderr and the error.
func execute(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := NewCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// server is a loopback server naming itself in X-Served-By; it records
// the last request's method, body and key header.
type server struct {
	*httptest.Server
	n                 atomic.Int64
	method, body, key atomic.Value
}

func startServer(t *testing.T) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		s.method.Store(r.Method)
		s.body.Store(b.String())
		s.key.Store(r.Header.Get("X-Balance-Key"))
		w.Header().Set("X-Served-By", "replica-"+strings.TrimPrefix(r.Header.Get("X-Balance-Key"), "key-"))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestBadInputNamesTheFlag(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.png")
	tests := []struct {
		name string
		args []string
		flag string
	}{
		{"no URL", []string{"--count", "1"}, "URL"},
		{"two URLs", []string{"http://127.0.0.1:1/", "http://127.0.0.1:2/", "--count", "1"}, "URL"},
		{"bad URL scheme", []string{"ftp://127.0.0.1/", "--count", "1"}, "URL"},
		{"unparsable URL", []string{"http://[::1", "--count", "1"}, "URL"},
		{"no bound", []string{"http://127.0.0.1:1/"}, "--duration"},
		{"zero rate", []string{"http://127.0.0.1:1/", "--count", "1", "--rate", "0"}, "--rate"},
		{"rate above cap", []string{"http://127.0.0.1:1/", "--count", "1", "--rate", "1e6"}, "--rate"},
		{"negative count", []string{"http://127.0.0.1:1/", "--count", "-3"}, "--count"},
		{"duration above cap", []string{"http://127.0.0.1:1/", "--duration", "5h"}, "--duration"},
		{"bad steps", []string{"http://127.0.0.1:1/", "--steps", "100:10s,400"}, "--steps"},
		{"bad step duration", []string{"http://127.0.0.1:1/", "--steps", "100:ten"}, "--steps"},
		{"rate and steps", []string{"http://127.0.0.1:1/", "--steps", "1:1s", "--rate", "5"}, "--steps"},
		{"header without colon", []string{"http://127.0.0.1:1/", "--count", "1", "-H", "X-Key abc"}, "--header"},
		{"unreadable body file", []string{"http://127.0.0.1:1/", "--count", "1", "--body", "@" + missing}, "--body"},
		{"bad output", []string{"http://127.0.0.1:1/", "--count", "1", "-o", "yaml"}, "--output"},
		{"keys without header", []string{"http://127.0.0.1:1/", "--count", "1", "--keys", "5"}, "--keys"},
		{"in flight above cap", []string{"http://127.0.0.1:1/", "--count", "1", "--max-in-flight", "100000"}, "--max-in-flight"},
		{"h2c over https", []string{"https://127.0.0.1:1/", "--count", "1", "--h2c"}, "--h2c"},
		{"bad method", []string{"http://127.0.0.1:1/", "--count", "1", "-X", "GE T"}, "--method"},
		{"bad served-by header", []string{"http://127.0.0.1:1/", "--count", "1", "--served-by-header", "X Y"}, "--served-by-header"},
		{"tiny window", []string{"http://127.0.0.1:1/", "--count", "1", "--window", "1ms"}, "--window"},
		{"max errors below -1", []string{"http://127.0.0.1:1/", "--count", "1", "--max-errors", "-2"}, "--max-errors"},
	}
	var all strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(t, "", tc.args...)
			var fe *FlagError
			if !errors.As(err, &fe) || fe.Flag != tc.flag {
				t.Fatalf("err = %v, want a FlagError on %s", err, tc.flag)
			}
			if !strings.HasPrefix(err.Error(), "load: "+tc.flag+": ") {
				t.Errorf("message %q does not start with the flag", err)
			}
			if out != "" {
				t.Errorf("printed a report for bad input: %q", out)
			}
			all.WriteString(tc.name + ": " + strings.ReplaceAll(err.Error(), missing, "MISSING") + "\n")
		})
	}
	golden.Check(t, filepath.Join("testdata", "errors.golden"), []byte(all.String()), *update)
}

func TestJSONReport(t *testing.T) {
	s := startServer(t)
	body := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(body, []byte(`{"user":"ann"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := execute(t, "", s.URL+"/", "--rate", "200", "--count", "30", "-X", "POST",
		"--body", "@"+body, "--key-header", "X-Balance-Key", "--keys", "3", "--seed", "9", "-o", "json", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if stderr != "" {
		t.Errorf("--quiet still wrote %q", stderr)
	}
	var rep struct {
		Schema   string
		Requests struct{ Scheduled, Completed, OK int64 }
		Replicas []struct {
			Name     string
			Requests int64
			Share    float64
		}
		CV float64
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if rep.Schema != "shoal.load/v1" || rep.Requests.Scheduled != 30 || rep.Requests.OK != 30 || s.n.Load() != 30 {
		t.Errorf("report %+v, server saw %d", rep, s.n.Load())
	}
	var sum float64
	var total int64
	for _, r := range rep.Replicas {
		sum += r.Share
		total += r.Requests
		if !strings.HasPrefix(r.Name, "replica-") {
			t.Errorf("replica %q", r.Name)
		}
	}
	if len(rep.Replicas) != 3 || total != 30 || sum < 0.999999 || sum > 1.000001 {
		t.Errorf("replicas %+v", rep.Replicas)
	}
	if s.method.Load() != "POST" || s.body.Load() != `{"user":"ann"}` {
		t.Errorf("server saw %v %v", s.method.Load(), s.body.Load())
	}
}

func TestMaxErrors(t *testing.T) {
	// Every third request answers 503.
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{name: "no limit by default", args: nil, wantErr: false},
		{name: "zero allowed", args: []string{"--max-errors", "0"}, wantErr: true},
		{name: "just under", args: []string{"--max-errors", "9"}, wantErr: true},
		{name: "exactly the failures", args: []string{"--max-errors", "10"}, wantErr: false},
		{name: "explicit no limit", args: []string{"--max-errors", "-1"}, wantErr: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.Store(0)
			args := append([]string{srv.URL + "/", "--rate", "500", "--count", "30", "--quiet", "-o", "json"}, tt.args...)
			out, _, err := execute(t, "", args...)
			var rep struct {
				Errors map[string]int64 `json:"errors"`
			}
			if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
				t.Fatalf("the report must be written whatever the outcome: %v in %q", jerr, out)
			}
			if rep.Errors["http_503"] != 10 {
				t.Fatalf("errors %v, want 10 http_503 (every third of 30)", rep.Errors)
			}
			var tooMany *TooManyErrorsError
			if got := errors.As(err, &tooMany); got != tt.wantErr {
				t.Fatalf("err = %v, want a TooManyErrorsError: %v", err, tt.wantErr)
			}
			if tt.wantErr && (tooMany.Failed != 10 || tooMany.Scheduled != 30 || tooMany.ExitCode() != 1) {
				t.Errorf("error %+v (%q), want 10 of 30 failed and exit status 1", tooMany, err)
			}
		})
	}
}

func TestTextReportAndProgress(t *testing.T) {
	s := startServer(t)
	out, stderr, err := execute(t, "payload", s.URL+"/", "--steps", "100:1s,50:1s", "--window", "1s",
		"--key-header", "X-Balance-Key", "--keys", "2", "--body", "@-", "--no-keepalive")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scheduled 150", "completed 150", "replica (X-Served-By)", "replica-0", "replica-1", "cv of shares", "window (1s)", "0s-1s", "1s-2s", "p99.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "sent 150") || !strings.Contains(stderr, "p99 ") {
		t.Errorf("progress on stderr lacks the final count: %q", stderr)
	}
	if s.body.Load() != "payload" {
		t.Errorf("body from stdin: server saw %q", s.body.Load())
	}
}

func TestFlagFor(t *testing.T) {
	for field, want := range map[string]string{"Rate": "--rate", "MaxInFlight": "--max-in-flight", "Steps": "--steps",
		"Header": "--header", "KeyHeader": "--key-header", "URL": "URL", "Connections": "--connections"} {
		if got := flagFor(field); got != want {
			t.Errorf("flagFor(%s) = %s, want %s", field, got, want)
		}
	}
}

// TestErrorKindsGolden pins how the text report names each kind of error
// with the message of its first one, for the failures a user meets first:
// nothing listening at a *.localhost address (which must not be a DNS
// error), and a service answering 503 with a JSON reason.
func TestErrorKindsGolden(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"session store unavailable, try again shortly"}`+"\n")
	}))
	t.Cleanup(unavailable.Close)
	_, upPort, _ := net.SplitHostPort(strings.TrimPrefix(unavailable.URL, "http://"))
	tests := []struct {
		name string
		url  string
	}{
		{"nothing listening at gallery.localhost", "http://gallery.localhost:" + closedPort + "/v1/history"},
		{"503 from the service", "http://gallery.localhost:" + upPort + "/v1/history"},
	}
	var all strings.Builder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execute(t, "", tc.url, "--count", "3", "--rate", "100", "--quiet")
			if err != nil {
				t.Fatal(err)
			}
			section := errorsSection(out)
			if section == "" {
				t.Fatalf("no errors section in:\n%s", out)
			}
			section = strings.NewReplacer(closedPort, "PORT", upPort, "PORT").Replace(section)
			all.WriteString("# " + tc.name + "\n" + section + "\n")
		})
	}
	golden.Check(t, filepath.Join("testdata", "error_kinds.golden"), []byte(all.String()), *update)
}

// errorsSection is the "errors" table of a text report.
func errorsSection(report string) string {
	_, rest, ok := strings.Cut(report, "\nerrors ")
	if !ok {
		return ""
	}
	table, _, _ := strings.Cut("errors "+rest, "\n\n")
	return table + "\n"
}
