//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The twin models a pod's CPU as the curve's burns times a gain measured
// in the same run. Work on the node beside the lab moves the pods'
// readings a few per cent off the curve, so that a run's misses can be
// told apart from the model's, the twin measures how much of the node's
// CPU went outside the lab while it ran: the node's busy time less the
// lab's own (the pods' cgroup, the processes the lab started and their
// children, the containerd shims and this test).

// nodePeriod is how often the twin reads the node.
const nodePeriod = time.Second

// quietMean and quietPeak are the most CPU outside the lab, in cores on
// average over a case and over its busiest 10 s, of a node a failure calls
// quiet: one the lab has to itself reads a few hundredths. They excuse
// nothing; they only say which kind of node a miss happened on.
const (
	quietMean = 0.1
	quietPeak = 0.5
)

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// nodeReading is the node's CPU over one interval ending At (relative to
// a record's T0), in cores: Outside is the time busy outside the lab,
// Steal the time the hypervisor gave to other machines.
type nodeReading struct {
	At             time.Duration
	Outside, Steal float64
}

// procCPU is one process's CPU as last read, kept to tell a process
// that has run on from a new one with a reused PID.
type procCPU struct {
	start uint64 // clock ticks after boot
	used  time.Duration
}

// nodeMeter reads the node's CPU and the lab's share of it. Its fields
// name where the lab is; the zero value counts nothing as the lab.
type nodeMeter struct {
	// PIDDir holds the lab's PID files (one per component it started).
	PIDDir string
	// Cgroup is the pods' cpuacct cgroup folder (kubepods).
	Cgroup string
	// Lab reports whether a process outside PIDDir's counts as the lab
	// (this test, the shims); nil counts none.
	Lab func(pid int, comm string) bool

	procs             map[int]procCPU
	busy, steal, pods time.Duration
	uptime            time.Duration
	at                time.Time
}

// labMeter is the meter of the lab that scripts/lib.sh starts: its PID
// files, the kubelet's cgroupfs pods, the shims and this test's process.
func labMeter() *nodeMeter {
	self := os.Getpid()
	return &nodeMeter{
		PIDDir: "/var/lib/shoal-lab/run/pids",
		Cgroup: "/sys/fs/cgroup/cpuacct/kubepods",
		Lab: func(pid int, comm string) bool {
			return pid == self || strings.HasPrefix(comm, "containerd-shim")
		},
	}
}

// read takes the node's counters. The first call only sets the start; a
// later one returns the interval since the one before.
func (m *nodeMeter) read(now time.Time) (outside, steal time.Duration, interval time.Duration, err error) {
	busy, st, err := hostCPU()
	if err != nil {
		return 0, 0, 0, err
	}
	up, err := uptime()
	if err != nil {
		return 0, 0, 0, err
	}
	var pods time.Duration
	if m.Cgroup != "" {
		// Absent until the kubelet makes it: no pods, no time.
		if raw, err := os.ReadFile(filepath.Join(m.Cgroup, "cpuacct.usage")); err == nil {
			ns, perr := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
			if perr != nil {
				return 0, 0, 0, fmt.Errorf("twin: %s: %w", m.Cgroup, perr)
			}
			pods = time.Duration(ns)
		}
	}
	procs, err := m.labProcs()
	if err != nil {
		return 0, 0, 0, err
	}
	first := m.procs == nil
	var lab time.Duration
	for pid, p := range procs {
		prev, ok := m.procs[pid]
		switch {
		case ok && prev.start == p.start:
			lab += max(p.used-prev.used, 0)
		case time.Duration(p.start)*clockTick >= m.uptime:
			// Started since the last read: all of its time is new.
			lab += p.used
		}
	}
	outside = busy - m.busy - (pods - m.pods) - lab
	steal, interval = st-m.steal, now.Sub(m.at)
	m.procs, m.busy, m.steal, m.pods, m.uptime, m.at = procs, busy, st, pods, up, now
	if first {
		return 0, 0, 0, nil
	}
	return max(outside, 0), max(steal, 0), interval, nil
}

// labProcs are the lab's processes outside the pods' cgroup, with the CPU
// each used: the components in PIDDir and whatever Lab names, with every
// descendant still running. A component's time includes the children it
// reaped (kube-proxy's iptables runs); a shim's does not, since the
// children a shim reaps are containers, counted in the cgroup.
func (m *nodeMeter) labProcs() (map[int]procCPU, error) {
	reaped := map[int]bool{} // the lab's roots: whether their reaped children count
	if m.PIDDir != "" {
		files, _ := filepath.Glob(filepath.Join(m.PIDDir, "*.pid"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue // a component stopping
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				reaped[pid] = true
			}
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("twin: list processes: %w", err)
	}
	all := map[int]procStat{}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue // exited since the listing
		}
		if m.Cgroup != "" {
			cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
			st.podded = bytes.Contains(cg, []byte("/kubepods"))
		}
		if _, ok := reaped[pid]; !ok && m.Lab != nil && m.Lab(pid, st.comm) {
			reaped[pid] = !strings.HasPrefix(st.comm, "containerd-shim")
		}
		all[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := map[int]procCPU{}
	var walk func(pid int, withReaped bool)
	walk = func(pid int, withReaped bool) {
		st, ok := all[pid]
		if _, seen := out[pid]; !ok || seen || st.podded {
			return
		}
		used := st.own
		if withReaped {
			used += st.reaped
		}
		out[pid] = procCPU{start: st.start, used: used}
		for _, c := range children[pid] {
			walk(c, false)
		}
	}
	for pid, withReaped := range reaped {
		walk(pid, withReaped)
	}
	return out, nil
}

// procStat is what the lab's meter reads of a process in /proc/PID/stat.
type procStat struct {
	comm        string
	ppid        int
	own, reaped time.Duration // user+system; of the children waited for
	start       uint64        // clock ticks after boot
	podded      bool          // in the pods' cgroup
}

func readProcStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command sits in parentheses and may hold spaces or ')'.
	open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("twin: /proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(raw[end+1:]))
	// After the command: state(0) ppid(1) ... utime(11) stime(12)
	// cutime(13) cstime(14) ... starttime(19).
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("twin: /proc/%d/stat: %d fields", pid, len(f))
	}
	n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
	ppid, _ := strconv.Atoi(f[1])
	return procStat{
		comm:   string(raw[open+1 : end]),
		ppid:   ppid,
		own:    time.Duration(n(11)+n(12)) * clockTick,
		reaped: time.Duration(n(13)+n(14)) * clockTick,
		start:  n(19),
	}, nil
}

// hostCPU is the node's busy time (user, nice, system, irq, softirq) and
// steal, summed over its CPUs, from /proc/stat.
func hostCPU() (busy, steal time.Duration, err error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("twin: %w", err)
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("twin: /proc/stat: no cpu line")
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("twin: /proc/stat: %w", err)
		}
	}
	// user nice system idle iowait irq softirq steal
	return time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * clockTick, time.Duration(v[7]) * clockTick, nil
}

func uptime() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, fmt.Errorf("twin: %w", err)
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0, fmt.Errorf("twin: /proc/uptime empty")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("twin: /proc/uptime: %w", err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// nodeLog is the node's readings over a run, one a second, taken by run
// until its context ends; each reading's At is its time since start.
type nodeLog struct {
	mu       sync.Mutex
	start    time.Time
	readings []nodeReading
	err      error
}

// run reads m every period until ctx ends.
func (l *nodeLog) run(ctx context.Context, m *nodeMeter, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	l.mu.Lock()
	l.start = time.Now()
	l.mu.Unlock()
	if _, _, _, err := m.read(l.start); err != nil {
		l.fail(err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			out, st, iv, err := m.read(now)
			if err != nil {
				l.fail(err)
				return
			}
			if iv <= 0 {
				continue
			}
			l.mu.Lock()
			l.readings = append(l.readings, nodeReading{At: now.Sub(l.start), Outside: out.Seconds() / iv.Seconds(), Steal: st.Seconds() / iv.Seconds()})
			l.mu.Unlock()
		}
	}
}

func (l *nodeLog) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

// between returns the readings in [from, to], times relative to t0.
func (l *nodeLog) between(t0, from, to time.Time) ([]nodeReading, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []nodeReading
	for _, r := range l.readings {
		if at := l.start.Add(r.At); !at.Before(from) && !at.After(to) {
			r.At = at.Sub(t0)
			out = append(out, r)
		}
	}
	return out, l.err
}

// nodeBusy summarises readings taken every period: the mean CPU outside
// the lab and the highest mean over any whole window, in cores.
func nodeBusy(rs []nodeReading, window, period time.Duration) (mean, peak float64) {
	if len(rs) == 0 {
		return 0, 0
	}
	var sum float64
	for i, r := range rs {
		sum += r.Outside
		var w float64
		var n int
		j := i
		for ; j < len(rs) && rs[j].At-r.At < window; j++ {
			w += rs[j].Outside
			n++
		}
		if rs[j-1].At-r.At+period >= window || i == 0 { // a whole window, or all there is
			peak = max(peak, w/float64(n))
		}
	}
	return sum / float64(len(rs)), peak
}
