package loadgen

import (
	"context"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRun measures the generator's own cost per request (with the
// net/http client it drives) against a loopback server that allocates
// nothing per request, with a cap of 64 in flight, offered at MaxRate
// (saturated) and at 5000 req/s. ns/op is the offered interval or the
// saturation throughput, whichever is slower. The overhead is in the custom
// metrics: allocs/req and B/req are heap allocations per completed
// request, cpu-ns/req the process CPU time (user+system, the tiny
// server's syscalls included) per completed request, dropped/op the
// share the in-flight cap turned away.
func BenchmarkRun(b *testing.B) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"saturated", Config{Rate: MaxRate, Connections: 8}},
		{"5000rps", Config{Rate: 5000, Connections: 8}},
		{"5000rps-key-header", Config{Rate: 5000, Connections: 8, KeyHeader: "X-Balance-Key", Keys: 100}},
		{"5000rps-post-body", Config{Rate: 5000, Connections: 8, Method: http.MethodPost, Body: []byte(`{"user":"ann"}`)}},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			s := startRawServer(b)
			cfg := tc.cfg
			cfg.URL, cfg.MaxInFlight = s.url(), 64
			cfg.Count = int64(b.N)
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu0 := cpuTime(b)
			b.ResetTimer()
			rep, err := Run(context.Background(), cfg)
			b.StopTimer()
			cpu := cpuTime(b) - cpu0
			runtime.ReadMemStats(&after)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Completed > 0 {
				n := float64(rep.Completed)
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/req")
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/req")
				b.ReportMetric(float64(cpu)/n, "cpu-ns/req")
			}
			if rep.Completed+rep.Dropped != int64(b.N) {
				b.Fatalf("completed %d + dropped %d != %d, errors %v", rep.Completed, rep.Dropped, b.N, rep.Errors)
			}
			b.ReportMetric(float64(rep.Dropped)/float64(b.N), "dropped/op")
		})
	}
}
