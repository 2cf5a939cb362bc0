// Package pickers benchmarks the cost of one pick of Shoal's balancing
// policies side by side with grpc-go's round_robin and go-zero's
// p2c_ewma pickers. It is its own module so that those peers never
// become dependencies of the toolkit.
package pickers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	gbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"

	// Registers go-zero's "p2c_ewma" balancer with grpc-go; the picker
	// itself lives in an internal package and is reached through grpc's
	// balancer registry, exactly as a go-zero client reaches it.
	_ "github.com/zeromicro/go-zero/zrpc"

	"github.com/zeromicro/go-zero/core/logx"

	"github.com/shoal-dev/shoal/balancer"
)

const endpoints = 16

func TestMain(m *testing.M) {
	logx.Disable() // go-zero's picker logs statistics every minute
	os.Exit(m.Run())
}

// shoalPicker builds one of Shoal's pickers over n endpoints.
func shoalPicker(p balancer.Policy) balancer.Picker {
	eps := make([]*balancer.Endpoint, endpoints)
	for i := range eps {
		eps[i] = balancer.NewEndpoint(fmt.Sprintf("10.0.0.%d:8080", i+1))
	}
	return p.Build(eps)
}

// fakeCC is the smallest grpc balancer.ClientConn that lets a real grpc
// balancer build its real picker: subconns become READY when asked to
// connect, and the last picker is kept.
type fakeCC struct {
	gbalancer.ClientConn // unimplemented methods panic; grpc requires embedding

	mu      sync.Mutex
	picker  gbalancer.Picker
	pending []*fakeSC
	health  []func(gbalancer.SubConnState)
}

func (cc *fakeCC) NewSubConn(addrs []resolver.Address, opts gbalancer.NewSubConnOptions) (gbalancer.SubConn, error) {
	return &fakeSC{cc: cc, addrs: addrs, listener: opts.StateListener}, nil
}
func (cc *fakeCC) UpdateState(s gbalancer.State) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.picker = s.Picker
}
func (cc *fakeCC) ResolveNow(resolver.ResolveNowOptions)   {}
func (cc *fakeCC) MetricsRecorder() estats.MetricsRecorder { return noopRecorder{} }

// noopRecorder discards the metrics grpc balancers record.
type noopRecorder struct {
	estats.MetricsRecorder // grpc requires embedding
}

func (noopRecorder) RecordInt64Count(*estats.Int64CountHandle, int64, ...string)             {}
func (noopRecorder) RecordFloat64Count(*estats.Float64CountHandle, float64, ...string)       {}
func (noopRecorder) RecordInt64Histo(*estats.Int64HistoHandle, int64, ...string)             {}
func (noopRecorder) RecordFloat64Histo(*estats.Float64HistoHandle, float64, ...string)       {}
func (noopRecorder) RecordInt64Gauge(*estats.Int64GaugeHandle, int64, ...string)             {}
func (noopRecorder) RecordInt64UpDownCount(*estats.Int64UpDownCountHandle, int64, ...string) {}
func (noopRecorder) RegisterAsyncReporter(estats.AsyncMetricReporter, ...estats.AsyncMetric) func() {
	return func() {}
}
func (cc *fakeCC) Target() string { return "bench:///pickers" }

type fakeSC struct {
	gbalancer.SubConn
	cc       *fakeCC
	addrs    []resolver.Address
	listener func(gbalancer.SubConnState)
}

func (sc *fakeSC) Connect() {
	sc.cc.mu.Lock()
	defer sc.cc.mu.Unlock()
	sc.cc.pending = append(sc.cc.pending, sc)
}
func (sc *fakeSC) UpdateAddresses([]resolver.Address) {}
func (sc *fakeSC) Shutdown()                          {}
func (sc *fakeSC) GetOrBuildProducer(gbalancer.ProducerBuilder) (gbalancer.Producer, func()) {
	return nil, func() {}
}
func (sc *fakeSC) RegisterHealthListener(l func(gbalancer.SubConnState)) {
	if l == nil {
		return
	}
	sc.cc.mu.Lock()
	defer sc.cc.mu.Unlock()
	sc.cc.health = append(sc.cc.health, l)
}

// grpcPicker builds the named grpc balancer over n addresses and returns
// its picker once every subconn is READY.
func grpcPicker(b *testing.B, name string) gbalancer.Picker {
	builder := gbalancer.Get(name)
	if builder == nil {
		b.Fatalf("grpc balancer %q not registered", name)
	}
	cc := &fakeCC{}
	bal := builder.Build(cc, gbalancer.BuildOptions{})
	b.Cleanup(bal.Close)
	var st resolver.State
	for i := range endpoints {
		addr := resolver.Address{Addr: fmt.Sprintf("10.0.0.%d:8080", i+1)}
		st.Addresses = append(st.Addresses, addr)
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
	}
	if err := bal.UpdateClientConnState(gbalancer.ClientConnState{ResolverState: st}); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	// Deliver connectivity changes outside the balancer's own calls, as
	// grpc's serializer does.
	for range 100 {
		cc.mu.Lock()
		todo, health := cc.pending, cc.health
		cc.pending, cc.health = nil, nil
		cc.mu.Unlock()
		if len(todo)+len(health) == 0 {
			break
		}
		for _, sc := range todo {
			sc.listener(gbalancer.SubConnState{ConnectivityState: connectivity.Connecting})
			sc.listener(gbalancer.SubConnState{ConnectivityState: connectivity.Ready})
		}
		for _, l := range health {
			l(gbalancer.SubConnState{ConnectivityState: connectivity.Ready})
		}
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.picker == nil {
		b.Fatalf("%s built no picker", name)
	}
	if _, err := cc.picker.Pick(gbalancer.PickInfo{Ctx: context.Background()}); err != nil {
		b.Fatalf("%s picker not ready: %v", name, err)
	}
	return cc.picker
}

// BenchmarkPick measures one pick over 16 endpoints. Shoal's pickers are
// given what a Balancer gives them per request (a clock reading and a
// random number, both included in the cost); grpc pickers get a
// PickInfo, and their Done callback, when they return one, is called
// as a finished RPC would.
func BenchmarkPick(b *testing.B) {
	reqs := make([]*http.Request, 64)
	for i := range reqs {
		reqs[i], _ = http.NewRequest(http.MethodGet, "http://svc/", nil)
		reqs[i].Header.Set(balancer.DefaultKeyHeader, fmt.Sprintf("user-%d", i))
	}
	epoch := time.Now()
	shoal := []balancer.Policy{
		balancer.RoundRobin{},
		balancer.PeakEWMA{},
		balancer.ConsistentHash{Key: balancer.HeaderKey(balancer.DefaultKeyHeader)},
	}
	for _, pol := range shoal {
		p := shoalPicker(pol)
		// "pick" is the picker alone; "+clock" adds the clock reading
		// and random draw a Balancer makes for every pick.
		for _, clock := range []bool{false, true} {
			for _, parallel := range []bool{false, true} {
				name := "shoal/" + pol.Name()
				if clock {
					name += "+clock"
				}
				if parallel {
					name += "/parallel"
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					body := func(i int) {
						info := balancer.PickInfo{Request: reqs[i&63], Now: int64(i), Rand: uint64(i) * 0x9e3779b97f4a7c15}
						if clock {
							info.Now, info.Rand = int64(time.Since(epoch)), rand.Uint64()
						}
						p.Pick(info)
					}
					if !parallel {
						i := 0
						for b.Loop() {
							body(i)
							i++
						}
						return
					}
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							body(i)
							i++
						}
					})
				})
			}
		}
	}

	for _, name := range []string{"round_robin", "p2c_ewma"} {
		label := "grpc-go/round_robin"
		if name == "p2c_ewma" {
			label = "go-zero/p2c_ewma"
		}
		run := func(b *testing.B, parallel bool) {
			p := grpcPicker(b, name)
			info := gbalancer.PickInfo{FullMethodName: "/thumbnailer.v1/Resize", Ctx: context.Background()}
			b.ReportAllocs()
			body := func() {
				res, err := p.Pick(info)
				if err != nil {
					b.Fatal(err)
				}
				if res.Done != nil {
					res.Done(gbalancer.DoneInfo{})
				}
			}
			if !parallel {
				for b.Loop() {
					body()
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					body()
				}
			})
		}
		b.Run(label, func(b *testing.B) { run(b, false) })
		b.Run(label+"/parallel", func(b *testing.B) { run(b, true) })
	}
}
