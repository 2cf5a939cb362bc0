package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Policy builds a [Picker] from the current endpoint set. It is called
// each time the set changes; endpoints that stay in the set are the same
// *Endpoint values, so their statistics carry over.
type Policy interface {
	// Name identifies the policy in metrics and logs, e.g. "round_robin".
	Name() string
	// Build returns a picker over endpoints, which is never empty.
	// The picker must not modify the slice.
	Build(endpoints []*Endpoint) Picker
}

// Picker chooses the endpoint for one request. Pick must be safe for
// concurrent use, must not block or allocate, and must return one of the
// endpoints it was built with (never nil). It should prefer endpoints
// [PickInfo.Usable] accepts, and fall back to others only when none is.
type Picker interface {
	Pick(info PickInfo) *Endpoint
}

// PickInfo is what a [Picker] may base its choice on.
type PickInfo struct {
	// Request is the request being balanced; nil outside HTTP.
	Request *http.Request
	// Key is the request's balancing key when the caller knows it
	// without a Request (package grpcclient reads it from the RPC's
	// metadata); [ConsistentHash] uses it before its Key function.
	Key string
	// Now is the time in nanoseconds on the balancer's clock.
	Now int64
	// InFlight is the number of requests in flight through the balancer,
	// not counting this one.
	InFlight int64
	// Rand is a fresh random number from the balancer's source.
	Rand uint64
	// Tried lists the addresses earlier attempts of the same request
	// went to (see package client's Tries); nil on a first attempt.
	Tried []string
}

// Usable reports whether e may take the request: it is available at Now
// (not ejected, backed off or failing health checks) and no earlier
// attempt of the request went to it.
func (info *PickInfo) Usable(e *Endpoint) bool {
	if !e.Available(info.Now) {
		return false
	}
	for _, a := range info.Tried {
		if a == e.addr {
			return false
		}
	}
	return true
}

// ErrUnknownPolicy is returned by [PolicyByName] for a name it does not know.
var ErrUnknownPolicy = errors.New("balancer: unknown policy")

// Policy names accepted by [PolicyByName].
const (
	NameRoundRobin     = "round_robin"
	NamePeakEWMA       = "peak_ewma"
	NameConsistentHash = "consistent_hash"
)

// DefaultKeyHeader is the request header [PolicyByName] hashes for
// [NameConsistentHash].
const DefaultKeyHeader = "X-Balance-Key"

// PolicyByName returns the policy with the given name and default
// settings: "round_robin", "peak_ewma", or "consistent_hash" (keyed by
// the X-Balance-Key header). Names are case-insensitive and may use '-'
// for '_'.
func PolicyByName(name string) (Policy, error) {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "-", "_") {
	case NameRoundRobin, "roundrobin", "rr":
		return RoundRobin{}, nil
	case NamePeakEWMA, "p2c", "ewma":
		return PeakEWMA{}, nil
	case NameConsistentHash, "hash", "ring_hash":
		return ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}, nil
	}
	return nil, fmt.Errorf("%w %q (want %s, %s or %s)", ErrUnknownPolicy, name,
		NameRoundRobin, NamePeakEWMA, NameConsistentHash)
}

// HeaderKey returns a key function for [ConsistentHash] that reads the
// named request header.
func HeaderKey(name string) func(*http.Request) string {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		if v := r.Header[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// firstUsable returns the first endpoint from index start (wrapping) that
// info accepts; failing that, the first available one even if tried; and
// failing that endpoints[start]: the balancer never refuses a request
// because every endpoint looks bad.
func firstUsable(eps []*Endpoint, start int, info *PickInfo) *Endpoint {
	n := len(eps)
	for i := range n {
		if e := eps[(start+i)%n]; info.Usable(e) {
			return e
		}
	}
	if len(info.Tried) > 0 {
		for i := range n {
			if e := eps[(start+i)%n]; e.Available(info.Now) {
				return e
			}
		}
	}
	return eps[start%n]
}

// mix64 is the splitmix64 finalizer: it spreads the bits of x so that
// nearby inputs give unrelated outputs. Pickers use it to derive more
// random numbers from one, and to hash keys.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unitFloat maps x to [0, 1).
func unitFloat(x uint64) float64 { return float64(x>>11) / (1 << 53) }
