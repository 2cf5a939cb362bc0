package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// loadResult counts the outcome of a bounded load.
type loadResult struct {
	OK, Failed int
	// Errors counts failures by their error text.
	Errors map[string]int
}

func (r loadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d ok, %d failed", r.OK, r.Failed)
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(&b, "\n  %d× %s", r.Errors[k], k)
	}
	return b.String()
}

// hammer calls fn count times from workers goroutines (i is the call's
// number, 0..count-1) and returns when every call has returned or ctx has
// ended; calls not started by then are not counted. fn's error is a
// failure.
func hammer(ctx context.Context, workers, count int, fn func(ctx context.Context, i int) error) loadResult {
	var (
		next atomic.Int64
		mu   sync.Mutex
		res  = loadResult{Errors: map[string]int{}}
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= count || ctx.Err() != nil {
					return
				}
				err := fn(ctx, i)
				if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
					return
				}
				mu.Lock()
				if err != nil {
					res.Failed++
					res.Errors[err.Error()]++
				} else {
					res.OK++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}
