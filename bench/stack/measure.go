package main

import (
	"slices"
	"syscall"
	"time"
)

// loadMeasurement is one load run against one server.
type loadMeasurement struct {
	rps float64
	// cpu is the server's CPU time per answered request: the time this
	// process (the server; the load runs in a child) spent, user and
	// system, over the requests. On a machine shared with other jobs it is
	// the steadier figure, as it does not depend on the share of the cores
	// the server got.
	cpu time.Duration
}

// measureLoad loads s's server and reads this process's CPU time around it.
func measureLoad(hey string, s loadSpec) (loadMeasurement, error) {
	before := processCPU()
	rps, err := loadRPS(hey, s)
	used := processCPU() - before
	if err != nil || rps <= 0 {
		return loadMeasurement{rps: rps}, err
	}
	return loadMeasurement{rps: rps, cpu: time.Duration(float64(used) / (rps * s.d.Seconds()))}, nil
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// summary is one side's measurements, in the order taken.
type summary []loadMeasurement

func (s summary) meanRPS() float64 {
	var t float64
	for _, m := range s {
		t += m.rps
	}
	return t / float64(len(s))
}

func (s summary) meanCPU() time.Duration {
	var t time.Duration
	for _, m := range s {
		t += m.cpu
	}
	return t / time.Duration(len(s))
}

// medianRatio is the median over rounds of stack's req/s over bare's in
// the same round, which drift in the machine's load moves less than the
// ratio of the means.
func medianRatio(stack, bare summary) float64 {
	var rs []float64
	for i := range min(len(stack), len(bare)) {
		rs = append(rs, stack[i].rps/bare[i].rps)
	}
	slices.Sort(rs)
	if len(rs) == 0 {
		return 0
	}
	if len(rs)%2 == 1 {
		return rs[len(rs)/2]
	}
	return (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
}
