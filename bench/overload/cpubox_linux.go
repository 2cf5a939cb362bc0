package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// cgroupRoot is where cgroup v1 hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// boxSubsystems are the hierarchies the peers read: cpu for the quota,
// cpuacct for the usage. cpuset stays the machine's, as in a Kubernetes
// pod with a CPU limit and no pinning.
var boxSubsystems = []string{"cpu", "cpuacct"}

// cpuBox is a cgroup v1 with a CFS quota of whole cores, and the view of it
// a container has: inside, the box's directory is mounted over
// /sys/fs/cgroup/cpu and /sys/fs/cgroup/cpuacct.
//
// The peers need that view. go-zero (core/stat) and kratos (aegis'
// internal/cpu) compute CPU usage as the usage of the cgroup mounted at
// /sys/fs/cgroup/cpuacct over the quota of the one at /sys/fs/cgroup/cpu,
// assuming the mount root is the container's own cgroup. On a bare
// machine they would read the whole machine: with one core busy of two,
// 50%, never their thresholds (90% and 80%), so they would never shed.
type cpuBox struct {
	name string
}

// newCPUBox creates the box, limited to cores (none if 0), with a CFS
// weight of shares (the default 1024 if 0).
func newCPUBox(name string, cores, shares int) (*cpuBox, error) {
	b := &cpuBox{name: name}
	for _, sub := range boxSubsystems {
		if err := os.Mkdir(b.dir(sub), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			b.remove()
			return nil, fmt.Errorf("overload: cpu box: %w", err)
		}
	}
	const period = 100000 // µs
	quota := -1
	if cores > 0 {
		quota = cores * period
	}
	if shares == 0 {
		shares = 1024
	}
	for _, f := range []struct{ name, value string }{
		{"cpu.cfs_period_us", strconv.Itoa(period)},
		{"cpu.cfs_quota_us", strconv.Itoa(quota)},
		{"cpu.shares", strconv.Itoa(shares)},
	} {
		if err := os.WriteFile(filepath.Join(b.dir("cpu"), f.name), []byte(f.value), 0o644); err != nil {
			b.remove()
			return nil, fmt.Errorf("overload: cpu box: %w", err)
		}
	}
	return b, nil
}

// cpuBoxAvailable reports whether boxes can be made here: cgroup v1 cpu and
// cpuacct hierarchies that this process may write.
func cpuBoxAvailable() error {
	for _, sub := range boxSubsystems {
		if err := syscall.Access(filepath.Join(cgroupRoot, sub, "cgroup.procs"), 2 /* W_OK */); err != nil {
			return fmt.Errorf("overload: no writable cgroup v1 %s hierarchy: %w", sub, err)
		}
	}
	return nil
}

func (b *cpuBox) dir(sub string) string { return filepath.Join(cgroupRoot, sub, b.name) }

// command returns a command that runs exe with args inside the box: this
// program re-executed with -enter-box in a new mount namespace, which
// moves itself into the box, mounts the view and executes exe.
func (b *cpuBox) command(self, exe string, args ...string) *exec.Cmd {
	cmd := exec.Command(self, append([]string{"-enter-box", b.name, "--", exe}, args...)...)
	// Go makes the new namespace's mounts private, so the view does
	// not leak to the machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd
}

// join moves this whole process into the box's cpu hierarchy (not the
// view: only servers get that); leave moves it back.
func (b *cpuBox) join() error {
	pid := []byte(strconv.Itoa(os.Getpid()))
	return os.WriteFile(filepath.Join(b.dir("cpu"), "cgroup.procs"), pid, 0o644)
}

func (b *cpuBox) leave() error {
	pid := []byte(strconv.Itoa(os.Getpid()))
	return os.WriteFile(filepath.Join(cgroupRoot, "cpu", "cgroup.procs"), pid, 0o644)
}

// throttled returns how many CFS periods the box ran out of quota in.
func (b *cpuBox) throttled() (int64, error) {
	data, err := os.ReadFile(filepath.Join(b.dir("cpu"), "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "nr_throttled "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}

// remove deletes the box; its processes must have exited.
func (b *cpuBox) remove() error {
	var errs []error
	for _, sub := range boxSubsystems {
		if err := os.Remove(b.dir(sub)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// boxPrefix starts the name of every box this program makes.
const boxPrefix = "shoal-overload-"

// removeStaleBoxes removes the boxes of earlier runs that were killed
// before they could; a box still holding a process is left alone (the
// kernel refuses to remove it).
func removeStaleBoxes() {
	for _, sub := range boxSubsystems {
		dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, sub, boxPrefix+"*"))
		for _, d := range dirs {
			os.Remove(d)
		}
	}
}

// enterBox runs in the child started by command: it joins the box, mounts
// the container view over the hierarchies and replaces itself with argv.
// The peers read their cgroup files when their packages initialize, so the
// view must be in place before the server's process starts.
func enterBox(name string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("overload: -enter-box: no command")
	}
	b := &cpuBox{name: name}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, sub := range boxSubsystems {
		if err := os.WriteFile(filepath.Join(b.dir(sub), "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("overload: join box: %w", err)
		}
		if err := syscall.Mount(b.dir(sub), filepath.Join(cgroupRoot, sub), "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("overload: mount box view: %w", err)
		}
	}
	return syscall.Exec(argv[0], argv, os.Environ())
}
