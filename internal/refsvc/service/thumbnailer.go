package service

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/shed"
)

// BindThumbnailer registers the thumbnailer's settings on cs.
func BindThumbnailer(cs *config.Set, cfg *thumbnailer.Config) {
	cs.Int64(&cfg.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", thumbnailer.DefaultMaxBodyBytes, "largest accepted image upload")
	cs.Int(&cfg.MaxPixels, "max-pixels", "MAX_PIXELS", thumbnail.DefaultMaxPixels, "largest accepted width×height")
	cs.Int(&cfg.CacheBytes, "cache-bytes", "CACHE_BYTES", thumbnailer.DefaultCacheBytes, "bound on the result cache (negative disables it)")
	cs.Int64(&cfg.MemoryLimit, "memory-limit", "MEMORY_LIMIT", MemoryLimit(), "bytes the process may use; uploads and decodes are budgeted from it (default: the cgroup limit or GOMEMLIMIT, else 1 GiB)")
	cs.Duration(&cfg.MemoryWait, "memory-wait", "MEMORY_WAIT", shed.DefaultBudgetWait, "how long a request waits for memory before 503")
}

// MemoryLimit returns the memory this process may use: the smaller of its
// cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) and
// GOMEMLIMIT, or 0 when neither is set.
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

// AddThumbnailer registers the thumbnailer's routes and metrics on svc.
func AddThumbnailer(svc *Service, cfg thumbnailer.Config) error {
	cfg.Logger = svc.Logger
	api, err := thumbnailer.New(cfg, svc.Registry)
	if err != nil {
		return err
	}
	api.Register(svc.Mux)
	return nil
}
