package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A target is one server of the comparison.
type target struct {
	name string
	// src is the directory `go build .` runs in: a module of its own (the
	// peers) or a package of the main module. Empty when bin is given.
	src  string
	bin  string // the executable; build sets it from src
	args []string
	// env is added to PORT, ADMIN_PORT and BACKEND, which every target gets.
	env []string
	// backend is the value of BACKEND; {BACKEND_ADDR} is replaced by the
	// downstream's host:port, which answers GET /ping.
	backend string
	trivial string // the path loaded, answering 200 "ok"
	// readyURL and metricsURL are checked when not empty; {PORT} and
	// {ADMIN_PORT} are replaced by the ports the target was given.
	readyURL   string
	metricsURL string
	hello      bool // serves GET /hello with the downstream's body
	graceful   bool // exits 0 on SIGTERM
}

// build compiles t.src into dir, unless t.bin is already set.
func build(ctx context.Context, t *target, dir string, timeout time.Duration) error {
	if t.bin != "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := filepath.Abs(filepath.Join(dir, t.name))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = t.src
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kit: building %s in %s (-only leaves it out): %w\n%s", t.name, t.src, err, msg)
	}
	t.bin = out
	return nil
}

// linkedModules counts the dependency modules go version -m lists for bin.
func linkedModules(ctx context.Context, bin string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return 0, fmt.Errorf("kit: go version -m %s: %w", bin, err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "dep" {
			n++
		}
	}
	return n, nil
}

// A proc is a running target. It owns the goroutine waiting for the
// process; stop and kill return only after that goroutine has.
type proc struct {
	cmd     *exec.Cmd
	trivial string
	port    int
	admin   int
	logf    *os.File
	exited  chan struct{} // closed when the process has been waited for
	err     error         // Wait's result, once exited is closed
}

// start runs t in its own process group on loopback ports, with its
// output in logPath. The process gets SIGKILL if the driver dies.
func start(t target, backendAddr, logPath string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(t.bin, t.args...)
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port), "ADMIN_PORT="+strconv.Itoa(admin), "BACKEND="+strings.ReplaceAll(t.backend, "{BACKEND_ADDR}", backendAddr))
	cmd.Env = append(cmd.Env, t.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", t.name, err)
	}
	p := &proc{cmd: cmd, trivial: t.trivial, port: port, admin: admin, logf: logf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// url expands {PORT} and {ADMIN_PORT} in tmpl.
func (p *proc) url(tmpl string) string {
	return strings.NewReplacer("{PORT}", strconv.Itoa(p.port), "{ADMIN_PORT}", strconv.Itoa(p.admin)).Replace(tmpl)
}

// waitReady polls GET of the trivial path until it answers 200, the process exits or
// the timeout passes.
func (p *proc) waitReady(ctx context.Context, client *http.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := p.url("http://127.0.0.1:{PORT}" + p.trivial)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if code, _, err := get(ctx, client, url); err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before answering %s: %v; its output ends:\n%s", url, p.err, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %v; its output ends:\n%s", url, timeout, p.tail())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits up to timeout for the process to exit; then
// it kills the process group. It reports how long the exit took and how
// the process ended.
func (p *proc) stop(timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		took := time.Since(began)
		p.kill() // children of the target, if it left any
		return took, p.err
	case <-t.C:
		p.kill()
		return time.Since(began), fmt.Errorf("no exit within %v of SIGTERM", timeout)
	}
}

// kill sends SIGKILL to the process group and waits for the process.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	p.logf.Close()
}

// tail returns the end of the process's output, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.logf.Name())
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// memory reads the resident set size and its peak from /proc, in MiB.
func (p *proc) memory() (rss, peak float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for key, dst := range map[string]*float64{"VmRSS:": &rss, "VmHWM:": &peak} {
			if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
				kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
				if err != nil {
					return 0, 0, err
				}
				*dst = float64(kb) / 1024
			}
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	}
	return rss, peak, sc.Err()
}

// userHZ is the unit of the CPU times in /proc/PID/stat on Linux.
const userHZ = 100

// cpu reads the user and system CPU time the process has used.
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces; the fields after its
	// closing parenthesis start at field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", p.cmd.Process.Pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", p.cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// get fetches url and returns its status and up to 1 MiB of its body.
func get(ctx context.Context, client *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
