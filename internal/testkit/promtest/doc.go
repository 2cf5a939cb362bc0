// Package promtest runs a real Prometheus server on a loopback port for
// tests, over a configuration and flags the test gives, and stops it when
// the test ends.
package promtest
