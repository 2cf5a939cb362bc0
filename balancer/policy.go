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
// endpoints it was built with (never nil).
type Picker interface {
	Pick(info PickInfo) *Endpoint
}

// PickInfo is what a [Picker] may base its choice on.
type PickInfo struct {
	// Request is the request being balanced.
	Request *http.Request
	// Now is the time in nanoseconds on the balancer's clock.
	Now int64
	// InFlight is the number of requests in flight through the balancer,
	// not counting this one.
	InFlight int64
	// Rand is a fresh random number from the balancer's source.
	Rand uint64
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

// firstAvailable returns the first endpoint from index start (wrapping)
// that is not ejected at now, or endpoints[start] if all are ejected: the
// balancer never refuses a request because every endpoint looks bad.
func firstAvailable(eps []*Endpoint, start int, now int64) *Endpoint {
	n := len(eps)
	for i := range n {
		if e := eps[(start+i)%n]; e.Available(now) {
			return e
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
