package service

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// MemoryLimit returns the memory this process may use: the smaller of its
// cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) and
// GOMEMLIMIT, or 0 when neither is set. Services size their memory
// budgets (uploads held at once, images decoded at once) from it.
func MemoryLimit() int64 {
	limit := int64(math.MaxInt64)
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// "max" (v2) or a huge number (v1) mean no limit.
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && n < 1<<60 {
			limit = min(limit, n)
		}
	}
	limit = min(limit, debug.SetMemoryLimit(-1)) // MaxInt64 unless GOMEMLIMIT is set
	if limit == math.MaxInt64 {
		return 0
	}
	return limit
}

// softMemoryLimit is the Go runtime's soft limit for a process that may
// use limit bytes, fileResident of them already resident as file pages
// (the binary's code): what is left of the limit after those pages and a
// twentieth more (the kernel's share of the process, cgo), at most nine
// tenths of it and at least half. The runtime counts only the memory it
// maps. At the whole limit the garbage collector let the heap grow to the
// container's limit itself, and a burst of connections and goroutines took
// the process past it; at nine tenths, the gallery's code (15 MiB of its
// 128 MiB) took it past it while the heap stood at its goal.
func softMemoryLimit(limit, fileResident int64) int64 {
	return max(limit/2, min(limit-limit/10, limit-limit/20-fileResident))
}

// residentFileBytes is how much of this process's memory is resident file
// pages (RssFile in /proc/self/status: its binary's code that has run), 0
// where that cannot be read.
func residentFileBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil || kb < 0 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// goMemoryLimit is the Go runtime's soft memory limit, 0 if there is none.
func goMemoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l
	}
	return 0
}
