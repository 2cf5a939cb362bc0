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
// use limit bytes: nine tenths of it. The runtime counts only the memory
// it maps; the binary's text, cgo and the kernel's share of the process
// need the rest. At the whole limit the garbage collector let the heap
// grow to the container's limit itself, and a burst of connections and
// goroutines took the process past it.
func softMemoryLimit(limit int64) int64 { return limit - limit/10 }

// goMemoryLimit is the Go runtime's soft memory limit, 0 if there is none.
func goMemoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l
	}
	return 0
}
