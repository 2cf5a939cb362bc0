package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quickstart is the built program running with its stderr collected.
type quickstart struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []map[string]any
	seen  chan struct{} // signalled on every line
	done  chan error
}

func (q *quickstart) find(msg string) []map[string]any {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []map[string]any
	for _, l := range q.lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitFor waits until a line with msg has been logged.
func (q *quickstart) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if l := q.find(msg); len(l) > 0 {
			return l[0]
		}
		select {
		case <-q.seen:
		case err := <-q.done:
			t.Fatalf("quickstart exited (%v) before logging %q", err, msg)
		case <-deadline:
			t.Fatalf("quickstart did not log %q", msg)
		}
	}
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quickstart")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, bin string, env ...string) *quickstart {
	t.Helper()
	q := &quickstart{cmd: exec.Command(bin), seen: make(chan struct{}, 1), done: make(chan error, 1)}
	q.cmd.Env = append(os.Environ(), env...)
	stderr, err := q.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := q.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"msg": "not JSON", "line": sc.Text()}
			}
			q.mu.Lock()
			q.lines = append(q.lines, m)
			q.mu.Unlock()
			select {
			case q.seen <- struct{}{}:
			default:
			}
		}
		q.done <- q.cmd.Wait()
	}()
	t.Cleanup(func() {
		q.cmd.Process.Kill()
	})
	return q
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestQuickstart runs the program as a user would: probes, the call to
// its backend, metrics, one request log line per request, and the drain
// on SIGTERM with a request in flight.
func TestQuickstart(t *testing.T) {
	release := make(chan struct{})
	var slow sync.Once
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Request-ID") == "slow-one" {
			slow.Do(func() { <-release })
		}
		io.WriteString(w, "pong")
	}))
	defer backend.Close()
	defer close(release)

	q := run(t, build(t),
		"HOST=127.0.0.1", "PORT=0", "ADMIN_PORT=0", "DRAIN_DELAY=2s", "SHUTDOWN_TIMEOUT=10s",
		"BACKEND="+strings.TrimPrefix(backend.URL, "http://"))
	serving := q.waitFor(t, "serving")
	app, admin := "http://"+serving["addr"].(string), "http://"+serving["admin_addr"].(string)

	ready := time.Now().Add(60 * time.Second)
	for {
		if code, _, _ := get(t, admin+"/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(ready) {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, _ := get(t, admin+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez %d", code)
	}

	code, body, hdr := get(t, app+"/hello")
	if code != http.StatusOK || body != "pong" {
		t.Fatalf("GET /hello: %d %q", code, body)
	}
	if hdr.Get("X-Request-ID") == "" || hdr.Get("X-Served-By") == "" {
		t.Errorf("GET /hello headers lack X-Request-ID or X-Served-By: %v", hdr)
	}
	_, metrics, _ := get(t, admin+"/metrics")
	for _, want := range []string{
		`http_requests_total{code="200",method="GET",route="/hello"} 1`,
		`shoal_balancer_requests_total{endpoint="` + strings.TrimPrefix(backend.URL, "http://") + `",upstream="backend"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if lines := q.find("request"); len(lines) != 1 || lines[0]["route"] != "GET /hello" || lines[0]["status"] != float64(200) {
		t.Errorf("request log lines after one request = %v", lines)
	}

	// A request in flight when SIGTERM arrives is answered; readiness
	// fails during the drain; the process exits 0.
	inflight := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, app+"/hello", nil)
		req.Header.Set("X-Request-ID", "slow-one")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	// The slow request has reached the backend once the quickstart has
	// a call in flight to it.
	waitMetric(t, admin, `shoal_balancer_in_flight_requests{endpoint="`+strings.TrimPrefix(backend.URL, "http://")+`",upstream="backend"} 1`)
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	q.waitFor(t, "draining")
	if code, _, _ := get(t, admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the drain: %d, want 503", code)
	}
	release <- struct{}{}
	if code := <-inflight; code != http.StatusOK {
		t.Errorf("request in flight at SIGTERM: %d, want 200", code)
	}
	select {
	case err := <-q.done:
		if err != nil {
			t.Fatalf("quickstart exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("quickstart did not exit after SIGTERM")
	}
	if n := len(q.find("request")); n != 2 {
		t.Errorf("%d request log lines for 2 requests", n)
	}
}

func waitMetric(t *testing.T, admin, line string) {
	t.Helper()
	until := time.Now().Add(30 * time.Second)
	for {
		_, m, _ := get(t, admin+"/metrics")
		if strings.Contains(m, line) {
			return
		}
		if time.Now().After(until) {
			t.Fatalf("/metrics never showed %s", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
