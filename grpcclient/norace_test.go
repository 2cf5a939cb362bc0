//go:build !race

package grpcclient_test

const raceEnabled = false
