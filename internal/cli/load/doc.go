// Package load implements `shoal load URL`: open-loop HTTP load at a
// fixed or stepped rate, reported as latency percentiles, errors by kind
// and each replica's share of the requests (package loadgen does the
// work).
package load
