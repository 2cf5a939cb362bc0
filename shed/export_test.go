package shed

// BudgetQueued returns how many callers wait on b.
func BudgetQueued(b *Budget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}
