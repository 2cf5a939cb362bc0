package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	publicPort = "8080"
	adminPort  = "9090"
	// startTimeout bounds a process's start until /readyz answers 200,
	// generous for a loaded 2-core machine.
	startTimeout = 60 * time.Second
)

// proc is one service process on its own loopback address.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	// Host is the process's loopback address; Addr is host:8080.
	Host, Addr string
	logs       *lockedBuffer
	done       chan struct{} // closed when the process has exited
	waitErr    error
}

// allocHost returns a loopback address no other process of this test
// binary uses, 127.0.N.M with N in 100..227, whose two ports are free
// now: another test binary on the machine (a second run, an engineer's)
// may hold some, and a test must never attack another run's processes.
func allocHost(t testing.TB) string {
	t.Helper()
	for range 1000 {
		n := nextHost.Add(1)
		host := fmt.Sprintf("127.0.%d.%d", 100+(n/250)%128, 1+n%250)
		if portsFree(host, publicPort, adminPort) {
			return host
		}
	}
	t.Fatal("no loopback address with free ports in 127.0.100.0-127.0.227.255")
	return ""
}

func portsFree(host string, ports ...string) bool {
	for _, port := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// startProc runs bin with env (KEY=VALUE) on its own loopback address,
// ports 8080 (public) and 9090 (admin), and waits until its /readyz
// answers 200. The process is killed and reaped when the test ends.
func startProc(t testing.TB, bin string, env ...string) *proc {
	t.Helper()
	return startProcNice(t, 0, bin, env...)
}

// startProcNice is startProc with the process's nice value set to nice
// before it starts (every thread inherits it).
func startProcNice(t testing.TB, nice int, bin string, env ...string) *proc {
	t.Helper()
	host := allocHost(t)
	p := &proc{
		t: t, name: bin[strings.LastIndexByte(bin, '/')+1:],
		Host: host, Addr: net.JoinHostPort(host, publicPort),
		logs: &lockedBuffer{}, done: make(chan struct{}),
	}
	p.cmd = exec.Command(bin)
	if nice != 0 {
		p.cmd = exec.Command("nice", "-n", strconv.Itoa(nice), bin)
	}
	p.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOST=" + host, "PORT=" + publicPort, "ADMIN_PORT=" + adminPort,
		"POD_NAME=" + p.name + "@" + host,
		"LOG_LEVEL=info",
	}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// Killed with the test binary, so that a run stopped from outside
	// (a timeout's SIGKILL, an operator's kill -9) leaves no server
	// holding its address.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s (%s) logs, lines of note:\n%s\nlast lines:\n%s", p.name, host, p.ofNote(40), p.tail(60))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := p.waitReady(ctx); err != nil {
		t.Fatalf("%s on %s: %v\n%s", p.name, host, err, p.tail(40))
	}
	return p
}

// startThumbnailer starts a thumbnailer; env adds or overrides settings.
func startThumbnailer(t testing.TB, env ...string) *proc {
	t.Helper()
	return startProc(t, bins.thumbnailer, env...)
}

// startGallery starts a gallery with in-memory sessions (unless env sets
// REDIS_URL); env must name its thumbnailers (THUMBNAILER_ADDRS).
func startGallery(t testing.TB, env ...string) *proc {
	t.Helper()
	return startProc(t, bins.gallery, append([]string{"SESSION_SECRET=chaos-test-secret-0123456789abcdef"}, env...)...)
}

// addrsOf joins the public addresses of ps for THUMBNAILER_ADDRS.
func addrsOf(ps ...*proc) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Addr
	}
	return strings.Join(out, ",")
}

// URL is the public URL of path.
func (p *proc) URL(path string) string { return "http://" + p.Addr + path }

// AdminURL is the admin URL of path.
func (p *proc) AdminURL(path string) string {
	return "http://" + net.JoinHostPort(p.Host, adminPort) + path
}

// PID is the process ID.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *proc) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// Kill sends SIGKILL to the process and waits until it is gone.
func (p *proc) Kill() {
	p.t.Helper()
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit within ctx and returns its exit
// error (nil for status 0).
func (p *proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.name, ctx.Err())
	}
}

// PeakRSS is the process's peak resident set (VmHWM) in bytes; zero once
// the process has exited.
func (p *proc) PeakRSS() int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(p.PID()) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Logs returns everything the process wrote so far.
func (p *proc) Logs() string { return p.logs.String() }

// ofNote returns the first n lines of the process's log that are not
// INFO, or that record an answer of 500 or over other than 503 (which
// the shedder answers by design): what a failed test's reader looks
// for first, and what the last lines seldom hold.
func (p *proc) ofNote(n int) string {
	var note []string
	for line := range strings.Lines(p.Logs()) {
		if len(note) == n {
			break
		}
		if !strings.Contains(line, `"level":"INFO"`) || (strings.Contains(line, `"status":5`) && !strings.Contains(line, `"status":503`)) {
			note = append(note, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(note, "\n")
}

func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Logs(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitReady polls /readyz until it answers 200, the process exits or ctx
// ends.
func (p *proc) waitReady(ctx context.Context) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.AdminURL("/readyz"), nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the process's two output pipes
// and the test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
