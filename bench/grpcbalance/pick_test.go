package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"

	gbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"
)

// pickEndpoints is how many endpoints the pickers choose among, as in
// bench/pickers.
const pickEndpoints = 16

// fakeCC is the smallest grpc balancer.ClientConn that lets a real
// balancer, built through grpc's registry as a ClientConn builds it,
// make its real picker: subconns become READY when asked to connect, and
// the last picker is kept.
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
func (cc *fakeCC) Target() string                          { return "grpcbalance:///pick" }
func (cc *fakeCC) RemoveSubConn(gbalancer.SubConn)         {}

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

// buildPicker builds the balancer of mode's service config over
// pickEndpoints addresses and returns its picker once every subconn is
// READY.
func buildPicker(tb testing.TB, mode string) gbalancer.Picker {
	tb.Helper()
	sc, err := serviceConfig(mode, "")
	if err != nil {
		tb.Fatal(err)
	}
	var cfg struct {
		LB []map[string]json.RawMessage `json:"loadBalancingConfig"`
	}
	if err := json.Unmarshal([]byte(sc), &cfg); err != nil {
		tb.Fatal(err)
	}
	if len(cfg.LB) != 1 || len(cfg.LB[0]) != 1 {
		tb.Fatalf("%s: want one balancer in %s", mode, sc)
	}
	var name string
	var raw json.RawMessage
	for k, v := range cfg.LB[0] {
		name, raw = k, v
	}
	builder := gbalancer.Get(name)
	cc := &fakeCC{}
	bal := builder.Build(cc, gbalancer.BuildOptions{})
	tb.Cleanup(bal.Close)
	ccs := gbalancer.ClientConnState{}
	if p, ok := builder.(gbalancer.ConfigParser); ok {
		if ccs.BalancerConfig, err = p.ParseConfig(raw); err != nil {
			tb.Fatalf("%s: config: %v", name, err)
		}
	}
	for i := range pickEndpoints {
		addr := resolver.Address{Addr: fmt.Sprintf("10.0.0.%d:8080", i+1)}
		ccs.ResolverState.Addresses = append(ccs.ResolverState.Addresses, addr)
		ccs.ResolverState.Endpoints = append(ccs.ResolverState.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
	}
	if err := bal.UpdateClientConnState(ccs); err != nil {
		tb.Fatalf("%s: %v", name, err)
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
	if mode == modeWRR {
		weigh(tb, cc)
	}
	p := cc.current()
	if p == nil {
		tb.Fatalf("%s built no picker", name)
	}
	if _, err := p.Pick(gbalancer.PickInfo{FullMethodName: workMethod, Ctx: context.Background()}); err != nil {
		tb.Fatalf("%s picker not ready: %v", name, err)
	}
	return p
}

func (cc *fakeCC) current() gbalancer.Picker {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.picker
}

// weigh gives weighted_round_robin's picker ORCA load reports, endpoint i
// reporting a utilization proportional to i+1, until its picks follow
// the weights (after the blackout period of the experiment's config), so
// that its weighted scheduler is what the benchmark measures, as in the
// experiment.
func weigh(tb testing.TB, cc *fakeCC) {
	tb.Helper()
	addr := map[gbalancer.SubConn]int{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		counts := map[gbalancer.SubConn]int{}
		p := cc.current()
		for range 20 * pickEndpoints {
			res, err := p.Pick(gbalancer.PickInfo{FullMethodName: workMethod, Ctx: context.Background()})
			if err != nil {
				tb.Fatal(err)
			}
			i, ok := addr[res.SubConn]
			if !ok {
				i = len(addr)
				addr[res.SubConn] = i
			}
			counts[res.SubConn]++
			res.Done(gbalancer.DoneInfo{ServerLoad: &v3orcapb.OrcaLoadReport{
				RpsFractional: 100, ApplicationUtilization: 0.05 * float64(i+1),
			}})
		}
		lo, hi := len(counts), 0
		for _, n := range counts {
			lo, hi = min(lo, n), max(hi, n)
		}
		if hi >= 4*lo {
			return // weighted: the first endpoint gets 16x the last's share
		}
		runtime.Gosched()
	}
	tb.Fatal("weighted_round_robin never used its weights")
}

// pickModes are the policies whose pickers are compared.
var pickModes = []string{modePeakEWMA, modeRoundRobin, modeLeastReq, modeWRR}

func TestPickersSpread(t *testing.T) {
	for _, mode := range pickModes {
		t.Run(mode, func(t *testing.T) {
			p := buildPicker(t, mode)
			seen := map[gbalancer.SubConn]bool{}
			for range 50 * pickEndpoints {
				res, err := p.Pick(gbalancer.PickInfo{FullMethodName: workMethod, Ctx: context.Background()})
				if err != nil {
					t.Fatal(err)
				}
				seen[res.SubConn] = true
				if res.Done != nil {
					res.Done(gbalancer.DoneInfo{})
				}
			}
			// Peak-EWMA assumes an unmeasured endpoint slow, so the
			// last ones may wait for their turn; all must spread.
			if len(seen) < pickEndpoints/2 {
				t.Fatalf("%d picks reached %d of %d endpoints", 50*pickEndpoints, len(seen), pickEndpoints)
			}
		})
	}
}

// BenchmarkPick measures one pick over 16 ready endpoints by each policy's
// real picker, built through grpc's balancer registry from the service
// config the experiment uses, with the pick's Done called as a finished
// call would (that is where least_request and Shoal's peak-EWMA count
// calls in flight and latency).
func BenchmarkPick(b *testing.B) {
	for _, mode := range pickModes {
		info := gbalancer.PickInfo{FullMethodName: workMethod, Ctx: context.Background()}
		body := func(b *testing.B, p gbalancer.Picker) {
			res, err := p.Pick(info)
			if err != nil {
				b.Fatal(err)
			}
			if res.Done != nil {
				res.Done(gbalancer.DoneInfo{})
			}
		}
		b.Run(mode, func(b *testing.B) {
			p := buildPicker(b, mode)
			b.ReportAllocs()
			for b.Loop() {
				body(b, p)
			}
		})
		// RunParallel calls this once per b.N tried, so the set-up is
		// paid each time; b.Loop in the serial case pays it once.
		b.Run(mode+"/parallel", func(b *testing.B) {
			p := buildPicker(b, mode)
			b.ReportAllocs()
			b.ResetTimer() // weighted_round_robin's setup waits out its blackout
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					body(b, p)
				}
			})
		})
	}
}
