// Package redistest runs a real redis-server on a loopback port for tests,
// and can stop and restart it on the same port, or pause and resume it, to
// stage an outage or a hang.
package redistest
