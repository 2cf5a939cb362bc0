package promtest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on a server's start and stop: a loaded machine starts
// Prometheus slowly.
const (
	readyWithin = 2 * time.Minute
	stopWithin  = 30 * time.Second
)

// debian is where Debian's prometheus package puts the binary.
const debian = "/usr/bin/prometheus"

// Options says how to run the server. The zero value is valid: an empty
// configuration, storage in a new temporary directory, and no extra flags.
type Options struct {
	// Config is the text of prometheus.yml; empty means "global: {}".
	Config string
	// DataDir is the TSDB directory, for a test that fills it before the
	// server starts (with promtool, say); empty means a new temporary one.
	DataDir string
	// Args are extra flags, such as --web.enable-remote-write-receiver or
	// --storage.tsdb.retention.time=100y. They must not repeat the flags
	// Start sets: --config.file, --storage.tsdb.path, --web.listen-address
	// and --log.level.
	Args []string
}

// Server is a running Prometheus, owned by one test.
type Server struct {
	addr string
	logs output
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.addr }

// URL is the server's base URL, http://host:port.
func (s *Server) URL() string { return "http://" + s.addr }

// Output is what the server has written to stdout and stderr so far.
func (s *Server) Output() string { return s.logs.String() }

// output is the command's stdout and stderr, read while it runs.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Bin returns the prometheus binary, Debian's if it is installed, else
// the first on PATH, or skips the test saying how to install it.
func Bin(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	if bin, err := exec.LookPath("prometheus"); err == nil {
		return bin
	}
	t.Skip("no /usr/bin/prometheus: install it with scripts/deps.sh, or apt-get install -y prometheus")
	return ""
}

// Start runs prometheus on a free loopback port and returns once it
// answers ready on /-/ready. It fails the test with the server's output if
// the server exits or is not ready within two minutes. When the test ends
// the server gets SIGTERM, then SIGKILL if it has not exited within 30s,
// and its output is logged if the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Bin(t)
	dir := t.TempDir()
	conf := opts.Config
	if conf == "" {
		conf = "global: {}\n"
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	data := opts.DataDir
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{addr: l.Addr().String()}
	l.Close()
	args := append([]string{"--config.file=" + config, "--storage.tsdb.path=" + data,
		"--web.listen-address=" + s.addr, "--log.level=warn"}, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("promtest: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopWithin):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", s.Output())
		}
	})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(readyWithin)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("promtest: prometheus exited: %v\n%s", err, s.Output())
		default:
		}
		resp, err := client.Get(s.URL() + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: prometheus not ready after %v: %v\n%s", readyWithin, err, s.Output())
		}
		time.Sleep(100 * time.Millisecond) // polling a process's readiness
	}
}
