package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// cpuCgroup is the cgroup v1 cpu hierarchy.
const cpuCgroup = "/sys/fs/cgroup/cpu"

// weightPrefix starts the name of the group this program makes.
const weightPrefix = "shoal-grpcbalance-"

// cpuWeight is a cgroup v1 cpu group with a high CFS weight holding this
// whole process (every thread: the servers, the clients and the
// generator), so that other work on a shared machine delays the
// experiment less. The weight changes how soon this process gets a core
// when it wants one, not how much work it does, and it is the same for
// every policy.
type cpuWeight struct{ dir string }

// raiseWeight moves this process into a new group with the given
// cpu.shares (the default is 1024). It fails where cgroup v1 is not
// mounted or not writable.
func raiseWeight(shares int) (*cpuWeight, error) {
	// Groups of earlier runs that were killed before they could remove
	// theirs; the kernel refuses to remove one that still holds a
	// process.
	stale, _ := filepath.Glob(filepath.Join(cpuCgroup, weightPrefix+"*"))
	for _, d := range stale {
		os.Remove(d)
	}
	w := &cpuWeight{dir: filepath.Join(cpuCgroup, fmt.Sprintf("%s%d", weightPrefix, os.Getpid()))}
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		return nil, fmt.Errorf("grpcbalance: cpu weight: %w", err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := errors.Join(
		os.WriteFile(filepath.Join(w.dir, "cpu.shares"), []byte(strconv.Itoa(shares)), 0o644),
		os.WriteFile(filepath.Join(w.dir, "cgroup.procs"), pid, 0o644),
	); err != nil {
		w.restore()
		return nil, fmt.Errorf("grpcbalance: cpu weight: %w", err)
	}
	return w, nil
}

// restore moves this process back to the root group and removes its own.
func (w *cpuWeight) restore() error {
	pid := []byte(strconv.Itoa(os.Getpid()))
	return errors.Join(
		os.WriteFile(filepath.Join(cpuCgroup, "cgroup.procs"), pid, 0o644),
		os.Remove(w.dir),
	)
}
