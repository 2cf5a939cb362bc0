// Package redistest runs a real redis-server on a loopback port for tests,
// and can stop and restart it on the same port to stage an outage.
package redistest
