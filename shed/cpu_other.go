//go:build !unix

package shed

import "time"

// processCPU reports that the process's CPU time is not known here: the
// limit of CPU-bound work is then left alone under a light load.
func processCPU() (time.Duration, bool) { return 0, false }
