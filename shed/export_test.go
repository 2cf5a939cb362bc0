package shed

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
