package balancer

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
)

// ConsistentHash is the policy that maps a request key onto a hash ring
// (Karger et al.), so requests with the same key reach the same endpoint
// while the set is unchanged, and adding or removing one of N endpoints
// moves only about 1/N of the keys.
//
// Loads are bounded (Mirrokni, Thorup and Zadimoghaddam, "Consistent
// Hashing with Bounded Loads"): no endpoint takes more than LoadFactor
// times the average number of requests in flight. A request whose home
// endpoint is full, or ejected, walks the ring to the next one with room,
// so a hot key spills over instead of overloading one replica. A retry
// walks past the endpoints its earlier attempts used, so it reaches the
// key's next endpoint on the ring rather than the one that just failed.
//
// Slow start does not apply: affinity matters more than warm-up here,
// and the load bound already protects a cold endpoint.
type ConsistentHash struct {
	// Key returns the request's key, e.g. [HeaderKey]("X-Balance-Key"),
	// when [PickInfo.Key] is empty. Requests with an empty key, or all
	// requests if Key is nil and PickInfo.Key empty, go to
	// a random endpoint.
	Key func(*http.Request) string
	// LoadFactor is c in the bounded-load scheme: an endpoint takes at
	// most ceil(c × (in flight + 1) / endpoints) requests. Zero means
	// DefaultLoadFactor (1.25), and so does any value up to 1, where the
	// bound could not hold; negative is invalid.
	LoadFactor float64
	// Replicas is the number of points per endpoint on the ring; more
	// points spread keys more evenly. Zero means DefaultRingReplicas
	// (160); negative is invalid.
	Replicas int
}

var (
	_ Policy = ConsistentHash{}
	_ Picker = (*ringHash)(nil)
)

// Default settings of [ConsistentHash].
const (
	DefaultLoadFactor   = 1.25
	DefaultRingReplicas = 160
)

// Name returns "consistent_hash".
func (ConsistentHash) Name() string { return NameConsistentHash }

// validate is called by [Config.Validate].
func (c ConsistentHash) validate() error {
	switch {
	case c.LoadFactor < 0 || math.IsNaN(c.LoadFactor):
		return fmt.Errorf("balancer: ConsistentHash.LoadFactor %v is negative or NaN", c.LoadFactor)
	case c.Replicas < 0:
		return fmt.Errorf("balancer: ConsistentHash.Replicas %d is negative", c.Replicas)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c ConsistentHash) withDefaults() ConsistentHash {
	if c.LoadFactor <= 1 {
		c.LoadFactor = DefaultLoadFactor
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultRingReplicas
	}
	return c
}

// Build returns a ring hash picker over endpoints. It panics if c is
// invalid; [New] reports that as an error instead.
func (c ConsistentHash) Build(endpoints []*Endpoint) Picker {
	if err := c.validate(); err != nil {
		panic(err)
	}
	c = c.withDefaults()
	reps, lf := c.Replicas, c.LoadFactor
	ring := make([]ringPoint, 0, len(endpoints)*reps)
	var buf []byte
	for _, e := range endpoints {
		for i := range reps {
			buf = append(append(append(buf[:0], e.addr...), '#'), strconv.Itoa(i)...)
			ring = append(ring, ringPoint{hash: hashBytes(buf), ep: e})
		}
	}
	slices.SortFunc(ring, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		// Equal hashes (vanishingly rare) still need a stable order.
		if a.ep.addr < b.ep.addr {
			return -1
		}
		return 1
	})
	return &ringHash{eps: endpoints, ring: ring, key: c.Key, factor: lf}
}

type ringPoint struct {
	hash uint64
	ep   *Endpoint
}

type ringHash struct {
	eps    []*Endpoint
	ring   []ringPoint
	key    func(*http.Request) string
	factor float64
}

func (p *ringHash) Pick(info PickInfo) *Endpoint {
	n := len(p.eps)
	key := info.Key
	if key == "" && p.key != nil && info.Request != nil {
		key = p.key(info.Request)
	}
	if key == "" {
		return firstUsable(p.eps, int(info.Rand%uint64(n)), &info)
	}
	capacity := int64(math.Ceil(p.factor * float64(info.InFlight+1) / float64(n)))
	start := p.search(hashString(key))
	for k := range len(p.ring) {
		e := p.ring[(start+k)%len(p.ring)].ep
		if info.Usable(e) && e.InFlight()+1 <= capacity {
			return e
		}
	}
	// Only reachable when too many endpoints are out (or tried) to hold
	// the load: keep affinity, ignoring the bound, then the tries.
	for k := range len(p.ring) {
		if e := p.ring[(start+k)%len(p.ring)].ep; info.Usable(e) {
			return e
		}
	}
	if len(info.Tried) > 0 {
		for k := range len(p.ring) {
			if e := p.ring[(start+k)%len(p.ring)].ep; e.Available(info.Now) {
				return e
			}
		}
	}
	return p.ring[start].ep
}

// search returns the index of the first ring point at or after h,
// wrapping to 0.
func (p *ringHash) search(h uint64) int {
	lo, hi := 0, len(p.ring)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.ring[m].hash < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(p.ring) {
		return 0
	}
	return lo
}

// FNV-1a, then mix64 for avalanche: stable across processes, so every
// client of a service maps a key to the same replica.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix64(h)
}

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix64(h)
}
