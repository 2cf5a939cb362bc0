package lifecycle_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/server"
)

// The test binary doubles as a small service: with childEnv set, TestMain
// runs childMain instead of the tests, so the tests can send it real
// signals.
const (
	childEnv      = "SHOAL_LIFECYCLE_TEST_CHILD"
	childDrainEnv = "SHOAL_LIFECYCLE_TEST_DRAIN"
)

const childShutdownTimeout = 10 * time.Second

// childMain is the main of a service built like the reference services:
// an app server and an admin server with the probes, both on loopback.
func childMain() int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	drain, err := time.ParseDuration(os.Getenv(childDrainEnv))
	if err != nil {
		log.Error("bad drain delay", "err", err)
		return 2
	}
	checker := health.New(log)
	app := server.New(server.Config{Logger: log}, server.ServedBy("child", http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	admin := server.New(server.Config{Logger: log}, server.AdminMux(checker, nil))
	appLn, err1 := net.Listen("tcp", "127.0.0.1:0")
	adminLn, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err := errors.Join(err1, err2); err != nil {
		log.Error("listen", "err", err)
		return 2
	}
	fmt.Printf("app=%s admin=%s\n", appLn.Addr(), adminLn.Addr())

	lc := lifecycle.New(lifecycle.Config{DrainDelay: drain, ShutdownTimeout: childShutdownTimeout, Logger: log, Health: checker})
	lc.Serve("app", app, appLn)
	lc.Serve("admin", admin, adminLn)
	lc.OnClose("store", func(context.Context) error { return nil })
	if err := lc.Run(context.Background()); err != nil {
		log.Error("exit", "err", err)
		return 1
	}
	return 0
}

// child is a running childMain process.
type child struct {
	cmd    *exec.Cmd
	app    string
	admin  string
	stderr *syncBuffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startChild(t *testing.T, drain time.Duration) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDrainEnv+"="+drain.String())
	c := &child{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("reading the child's addresses: %v\n%s", err, c.stderr)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("child stderr:\n%s", c.stderr)
		}
	})
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "app=%s admin=%s", &c.app, &c.admin); err != nil {
		t.Fatalf("child printed %q: %v", line, err)
	}
	return c
}

// readyz probes the child's readiness on a fresh connection, like a
// kubelet; it returns 0 when the probe cannot connect.
func (c *child) readyz(t *testing.T) int {
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + c.admin + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (c *child) wait(t *testing.T, within time.Duration) (int, time.Time) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(within):
		t.Fatalf("child did not exit within %s", within)
	}
	at := time.Now()
	if c.err == nil {
		return 0, at
	}
	var ee *exec.ExitError
	if !errors.As(c.err, &ee) {
		t.Fatalf("child: %v", c.err)
	}
	return ee.ExitCode(), at
}

// sent is one request of the load stream.
type sent struct {
	at     time.Time
	status int
	close  bool // the response asked to close the connection
	err    error
}

func TestProcessGracefulSIGTERM(t *testing.T) {
	const drain, workers = 3 * time.Second, 4
	c := startChild(t, drain)
	waitFor(t, "the child to become ready", func() bool { return c.readyz(t) == http.StatusOK })

	// A steady stream on keep-alive connections, bounded by count and by
	// the child's exit.
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var log []sent
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range workers {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for range 2000 {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				s := sent{at: time.Now()}
				resp, err := client.Get("http://" + c.app + "/")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					s.status, s.close = resp.StatusCode, resp.Close
				}
				s.err = err
				mu.Lock()
				log = append(log, s)
				mu.Unlock()
			}
		})
	}
	waitFor(t, "traffic to flow", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(log) >= 20
	})

	signalled := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var first503 time.Time
	waitFor(t, "/readyz to answer 503", func() bool {
		if c.readyz(t) == http.StatusServiceUnavailable {
			first503 = time.Now()
			return true
		}
		return false
	})
	if first503.Sub(signalled) >= drain {
		t.Errorf("/readyz turned 503 only %s after SIGTERM, after the drain", first503.Sub(signalled))
	}
	// From then on, readiness stays 503 until the admin server goes away.
	for {
		code := c.readyz(t)
		if code == 0 {
			break
		}
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz answered %d during the stop", code)
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, exitedAt := c.wait(t, drain+childShutdownTimeout+30*time.Second)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("child exited %d, want 0", code)
	}
	if d := exitedAt.Sub(signalled); d < drain {
		t.Errorf("child exited %s after SIGTERM, before its %s drain", d, drain)
	}

	// Requests sent during the drain all succeed. The window stops short
	// of the drain's end, as a request sent just before it is still on the
	// wire when the listener closes.
	windowEnd := signalled.Add(drain - 500*time.Millisecond)
	var before, during, closing int
	for _, s := range log {
		ok := s.err == nil && s.status == http.StatusOK
		switch {
		case s.at.Before(signalled):
			before++
			if !ok {
				t.Errorf("request before SIGTERM failed: %v %d", s.err, s.status)
			}
		case s.at.Before(windowEnd):
			during++
			if !ok {
				t.Errorf("request sent %s into the drain failed: %v %d", s.at.Sub(signalled), s.err, s.status)
			}
			if s.at.After(first503) {
				if !s.close {
					t.Errorf("response to a request sent %s into the drain does not carry Connection: close", s.at.Sub(signalled))
				}
				closing++
			}
		}
	}
	if during < 10*workers || closing == 0 {
		t.Fatalf("only %d requests during the drain (%d after readiness failed); the test proves nothing", during, closing)
	}
	t.Logf("%d requests before SIGTERM, %d during the drain, all served", before, during)

	wantPhases := []string{"stopping: signal received", "health: draining, readiness now fails", "draining",
		"shutting down servers", "stopping actors", "closing resources", "closed", "stopped"}
	if got := phases(t, c.stderr.String(), wantPhases); !equalStrings(got, wantPhases) {
		t.Errorf("child logged phases %q, want %q", got, wantPhases)
	}
}

func TestProcessSecondSignalForcesExit(t *testing.T) {
	const drain = time.Minute
	c := startChild(t, drain)
	waitFor(t, "the child to become ready", func() bool { return c.readyz(t) == http.StatusOK })
	signalled := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to answer 503", func() bool { return c.readyz(t) == http.StatusServiceUnavailable })
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, exitedAt := c.wait(t, 30*time.Second)
	if code == 0 {
		t.Fatal("child exited 0 after a second signal, want non-zero")
	}
	if d := exitedAt.Sub(signalled); d >= drain {
		t.Errorf("child exited %s after the first signal: the second did not cut the drain short", d)
	}
	if !strings.Contains(c.stderr.String(), lifecycle.ErrForced.Error()) {
		t.Errorf("child log does not name the forced exit:\n%s", c.stderr)
	}
}

// phases returns the log messages of the child that are in want, in the
// order logged.
func phases(t *testing.T, logs string, want []string) []string {
	in := map[string]bool{}
	for _, w := range want {
		in[w] = true
	}
	var got []string
	for line := range strings.Lines(logs) {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("child log line %q: %v", line, err)
			continue
		}
		if in[rec.Msg] {
			got = append(got, rec.Msg)
		}
	}
	return got
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }
