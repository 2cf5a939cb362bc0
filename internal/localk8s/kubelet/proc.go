package kubelet

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 on every architecture Go supports.
const userHZ = 100

// process is one run of a container: an OS process leading its own process
// group, so that a kill reaches whatever it forked.
type process struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	log     *os.File
	done    chan struct{} // closed once the process has been waited for

	// Set before done is closed.
	state *os.ProcessState

	mu      sync.Mutex
	lastCPU time.Duration // last reading from /proc, for the moment after exit
}

// startProcess starts argv with env, output appended to logPath ("" for
// none), in directory dir, behind wrap (the resolv.conf mount namespace) if
// wrap is not empty.
func startProcess(argv, env []string, dir, logPath string, wrap []string) (*process, error) {
	full := append(append([]string(nil), wrap...), argv...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logFile *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pr := &process{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), log: logFile, done: make(chan struct{})}
	go pr.wait()
	return pr, nil
}

func (pr *process) wait() {
	_ = pr.cmd.Wait() // the exit status is in ProcessState
	pr.state = pr.cmd.ProcessState
	// A container ends with its main process, as when PID 1 of a container's
	// PID namespace exits: whatever it left behind in its group is killed,
	// and gone before the container counts as ended.
	_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
	awaitGroupGone(pr.pid, groupGoneWait)
	close(pr.done)
}

// groupGoneWait bounds how long a container's end waits for the rest of
// its process group to die of the SIGKILL: a process in the middle of a
// system call (the resolv.conf mount, say, when a pod is stopped as it
// starts) dies only when the call returns, and the kernel's init reaps
// it after that.
const groupGoneWait = 5 * time.Second

// awaitGroupGone waits until process group pgid has no living process
// left, or d has passed. A zombie is not waited for: it holds nothing but
// its PID, and it is init's to reap, whenever init does.
func awaitGroupGone(pgid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

// groupAlive reports whether a process of group pgid is alive (not a
// zombie), from /proc.
func groupAlive(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false // none at all, zombies included
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		st := string(b)
		// Fields after the command name: state (3), ppid (4), pgrp (5).
		f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// signal sends sig to the main process only, as a container runtime signals
// the container's PID 1.
func (pr *process) signal(sig syscall.Signal) {
	_ = syscall.Kill(pr.pid, sig)
}

// kill sends SIGKILL to the whole process group.
func (pr *process) kill() {
	_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
}

func (pr *process) closeLog() {
	if pr.log != nil {
		pr.log.Close()
	}
}

func (pr *process) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// cpu returns the CPU time used by the process and the children it has
// waited for: from /proc while it runs, from its rusage once it has exited.
func (pr *process) cpu() time.Duration {
	if pr.exited() {
		return pr.state.UserTime() + pr.state.SystemTime()
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if t, err := readProcCPU(pr.pid); err == nil {
		pr.lastCPU = max(pr.lastCPU, t)
	}
	return pr.lastCPU
}

// readProcCPU reads utime+stime+cutime+cstime of a process.
func readProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat extracts the CPU times from the text of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("kubelet: malformed /proc stat: no ')'")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return 0, fmt.Errorf("kubelet: malformed /proc stat: %d fields after the name", len(f))
	}
	var ticks uint64
	for _, field := range f[11:15] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("kubelet: malformed /proc stat: cpu time %q", field)
		}
		ticks += uint64(n)
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// lookPath finds an executable named file in the colon-separated list dirs,
// as a shell would with that PATH.
func lookPath(file, dirs string) (string, error) {
	if strings.Contains(file, "/") {
		if err := isExecutable(file); err != nil {
			return "", err
		}
		return file, nil
	}
	for _, dir := range filepath.SplitList(dirs) {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, file)
		if isExecutable(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%q not found in PATH %s", file, dirs)
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", path, fs.ErrPermission)
	}
	return nil
}

// checkPorts makes sure every containerPort can be bound on the pod IP, so
// that a clash is an error at start rather than a crash loop.
func (p *Pod) checkPorts() error {
	for _, c := range p.containers {
		for _, port := range c.spec.Ports {
			addr := net.JoinHostPort(p.cfg.IP.String(), strconv.Itoa(int(port.ContainerPort)))
			var err error
			if port.Protocol == corev1.ProtocolUDP {
				var pc net.PacketConn
				if pc, err = net.ListenPacket("udp", addr); err == nil {
					pc.Close()
				}
			} else {
				var l net.Listener
				if l, err = net.Listen("tcp", addr); err == nil {
					l.Close()
				}
			}
			if err != nil {
				return fmt.Errorf("kubelet: pod %s: containerPort %d on %s is %w: %w",
					p.cfg.Name, port.ContainerPort, p.cfg.IP, ErrPortInUse, err)
			}
		}
	}
	return nil
}
