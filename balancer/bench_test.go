package balancer

import (
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

// okTransport answers every request at once, so BenchmarkRoundTrip
// measures the balancer's own work per request.
type okTransport struct{}

func (okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// BenchmarkRoundTrip measures a balanced request without the network:
// pick, accounting, latency and outlier bookkeeping; with /metrics, the
// balancer's metrics too.
func BenchmarkRoundTrip(b *testing.B) {
	addrs := make([]string, 16)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
	}
	for _, pol := range []Policy{RoundRobin{}, PeakEWMA{}, ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}} {
		b.Run(pol.Name(), func(b *testing.B) { benchRoundTrip(b, addrs, pol, nil) })
		b.Run(pol.Name()+"/metrics", func(b *testing.B) { benchRoundTrip(b, addrs, pol, prometheus.NewRegistry()) })
	}
}

func benchRoundTrip(b *testing.B, addrs []string, pol Policy, reg prometheus.Registerer) {
	r, err := NewStatic(addrs...)
	if err != nil {
		b.Fatal(err)
	}
	lb, err := New(Config{Resolver: r, Policy: pol, Transport: okTransport{}, Registerer: reg,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer lb.Close()
	req := keyRequest("user-1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lb.RoundTrip(req); err != nil {
			b.Fatal(err)
		}
	}
}
