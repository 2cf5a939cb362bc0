//go:build race

package session_test

// raceEnabled: the race detector adds allocations and makes sync.Pool
// drop items at random, so allocation counts mean nothing under it.
const raceEnabled = true
