package balancer

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkPick measures one pick per policy over 16 endpoints, serially
// and from parallel goroutines.
func BenchmarkPick(b *testing.B) {
	eps := endpoints(16)
	reqs := make([]*http.Request, 64)
	for i := range reqs {
		reqs[i] = keyRequest(fmt.Sprintf("user-%d", i))
	}
	for _, pol := range []Policy{RoundRobin{}, PeakEWMA{}, ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}} {
		p := pol.Build(eps)
		b.Run(pol.Name(), func(b *testing.B) {
			rnd := seqRand(1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Pick(PickInfo{Request: reqs[i&63], Now: int64(i), Rand: rnd()})
				i++
			}
		})
		b.Run(pol.Name()+"/parallel", func(b *testing.B) {
			rnd := seqRand(2)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					p.Pick(PickInfo{Request: reqs[i&63], Now: int64(i), Rand: rnd()})
					i++
				}
			})
		})
	}
}
