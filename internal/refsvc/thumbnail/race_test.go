//go:build race

package thumbnail

// raceEnabled: the race detector changes what allocations measure.
const raceEnabled = true
