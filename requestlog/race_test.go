//go:build race

package requestlog_test

const raceEnabled = true
