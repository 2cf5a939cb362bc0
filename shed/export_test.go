package shed

import "time"

// BudgetQueued returns how many callers wait on b.
func BudgetQueued(b *Budget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// Waiting returns how many Middleware requests wait for a slot of l.
func Waiting(l *Limiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiters)
}

// AcquireWork is Acquire for work that begins after a wait, as the
// Middleware's does after its yield: start marks when it began.
func AcquireWork(l *Limiter) (start func(), release func(error), ok bool) {
	t, ok := l.acquire()
	if !ok {
		return nil, nil, false
	}
	return func() { t.workStart = l.cfg.Now() }, t.release, true
}

// ChooseVictim marks, as a caller waiting for b's budget does, a body b
// is reading as evicted, and returns the evict it would call next; ok is
// false when b reads none.
func ChooseVictim(b *Budget) (evict func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range b.readers {
		r.evicted.Store(true)
		return r.evict, true
	}
	return nil, false
}

// SetCPUTime makes l read the process's CPU time from cpu, from the next
// window on.
func SetCPUTime(l *Limiter, cpu func() time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cpuTime = func() (time.Duration, bool) { return cpu(), true }
	l.winCPU, l.winCPUOK = cpu(), true
}

// ProcessCPU is processCPU.
func ProcessCPU() (time.Duration, bool) { return processCPU() }
