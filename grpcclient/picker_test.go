package grpcclient_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/attributes"
	gbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/grpcclient"
)

// fakeCC is the smallest grpc balancer.ClientConn that lets a real grpc
// balancer build its real picker: subconns become READY when asked to
// connect, and the last picker is kept.
type fakeCC struct {
	gbalancer.ClientConn // unimplemented methods panic; grpc requires embedding

	mu      sync.Mutex
	picker  gbalancer.Picker
	state   connectivity.State
	pending []*fakeSC
	health  []func(gbalancer.SubConnState)
}

func (cc *fakeCC) NewSubConn(addrs []resolver.Address, opts gbalancer.NewSubConnOptions) (gbalancer.SubConn, error) {
	return &fakeSC{cc: cc, addrs: addrs, listener: opts.StateListener}, nil
}

func (cc *fakeCC) UpdateState(s gbalancer.State) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.picker, cc.state = s.Picker, s.ConnectivityState
}
func (cc *fakeCC) ResolveNow(resolver.ResolveNowOptions)   {}
func (cc *fakeCC) MetricsRecorder() estats.MetricsRecorder { return noopRecorder{} }
func (cc *fakeCC) Target() string                          { return "test:///pickers" }

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

// buildPicker builds the named grpc balancer (with its service config's
// JSON, if any) over n addresses and returns its picker once every
// subconn is READY.
func buildPicker(tb testing.TB, name, config string, n int) gbalancer.Picker {
	tb.Helper()
	builder := gbalancer.Get(name)
	if builder == nil {
		tb.Fatalf("grpc balancer %q not registered", name)
	}
	cc := &fakeCC{}
	bal := builder.Build(cc, gbalancer.BuildOptions{})
	tb.Cleanup(bal.Close)
	var ccs gbalancer.ClientConnState
	ccs.ResolverState.Attributes = attributes.New(grpcclient.LoggerKey, discard)
	if p, ok := builder.(gbalancer.ConfigParser); ok && config != "" {
		c, err := p.ParseConfig([]byte(config))
		if err != nil {
			tb.Fatal(err)
		}
		ccs.BalancerConfig = c
	}
	for i := range n {
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
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.picker == nil || cc.state != connectivity.Ready {
		tb.Fatalf("%s: no ready picker (state %v)", name, cc.state)
	}
	return cc.picker
}

// pickOnce picks and finishes the call as grpc does.
func pickOnce(p gbalancer.Picker, info gbalancer.PickInfo) error {
	res, err := p.Pick(info)
	if err != nil {
		return err
	}
	if res.Done != nil {
		res.Done(gbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	return nil
}

var pickers = []struct {
	name, policy, config string
	keyed                bool
}{
	{name: "round_robin(grpc)", policy: roundrobin.Name},
	{name: "peak_ewma", policy: grpcclient.PeakEWMA},
	{name: "peak_ewma/slow_start", policy: grpcclient.PeakEWMA, config: `{"slowStart":"10s"}`},
	{name: "consistent_hash", policy: grpcclient.ConsistentHash, keyed: true},
}

// TestPickAllocs fails if a pick (with its Done) allocates more than
// the closure grpc's Done callback forces: one allocation.
func TestPickAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts do not hold under -race; scripts/test.sh runs this without it")
	}
	want := map[string]float64{
		"round_robin(grpc)":    0,
		"peak_ewma":            1,
		"peak_ewma/slow_start": 1,
		"consistent_hash":      1,
	}
	for _, tc := range pickers {
		t.Run(tc.name, func(t *testing.T) {
			p := buildPicker(t, tc.policy, tc.config, 16)
			info := gbalancer.PickInfo{FullMethodName: "/grpc.testing.TestService/UnaryCall", Ctx: context.Background()}
			if tc.keyed {
				info.Ctx = grpcclient.WithBalanceKey(info.Ctx, "sha256:0123456789abcdef")
			}
			var err error
			got := testing.AllocsPerRun(1000, func() { err = pickOnce(p, info) })
			if err != nil {
				t.Fatal(err)
			}
			if got > want[tc.name] {
				t.Errorf("%.1f allocations per pick, want at most %.0f", got, want[tc.name])
			}
		})
	}
}

// BenchmarkPick compares a pick of this package's policies with one of
// grpc-go's round_robin, each over 16 ready SubConns, Done included.
func BenchmarkPick(b *testing.B) {
	for _, tc := range pickers {
		b.Run(tc.name, func(b *testing.B) {
			p := buildPicker(b, tc.policy, tc.config, 16)
			info := gbalancer.PickInfo{FullMethodName: "/grpc.testing.TestService/UnaryCall", Ctx: context.Background()}
			if tc.keyed {
				info.Ctx = grpcclient.WithBalanceKey(info.Ctx, "sha256:0123456789abcdef")
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pickOnce(p, info); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func TestOutcomeOf(t *testing.T) {
	pushback := metadata.Pairs("grpc-retry-pushback-ms", "100")
	for _, tc := range []struct {
		name string
		di   gbalancer.DoneInfo
		want balancer.Outcome
	}{
		{name: "ok", di: gbalancer.DoneInfo{BytesSent: true}, want: balancer.OutcomeSuccess},
		{name: "application error", di: gbalancer.DoneInfo{Err: status.Error(codes.NotFound, "no"), BytesSent: true}, want: balancer.OutcomeSuccess},
		{name: "unavailable", di: gbalancer.DoneInfo{Err: status.Error(codes.Unavailable, "gone"), BytesSent: true}, want: balancer.OutcomeFailure},
		{name: "unavailable, never sent", di: gbalancer.DoneInfo{Err: status.Error(codes.Unavailable, "gone")}, want: balancer.OutcomeAbandoned},
		{name: "unavailable with pushback", di: gbalancer.DoneInfo{Err: status.Error(codes.Unavailable, "busy"), BytesSent: true, Trailer: pushback}, want: balancer.OutcomeShed},
		{name: "resource exhausted", di: gbalancer.DoneInfo{Err: status.Error(codes.ResourceExhausted, "busy"), BytesSent: true}, want: balancer.OutcomeShed},
		{name: "internal", di: gbalancer.DoneInfo{Err: status.Error(codes.Internal, "panic"), BytesSent: true}, want: balancer.OutcomeFailure},
		{name: "deadline", di: gbalancer.DoneInfo{Err: status.Error(codes.DeadlineExceeded, "slow"), BytesSent: true}, want: balancer.OutcomeTimeout},
		{name: "canceled", di: gbalancer.DoneInfo{Err: status.Error(codes.Canceled, "bye"), BytesSent: true}, want: balancer.OutcomeAbandoned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := grpcclient.OutcomeOf(tc.di); got != tc.want {
				t.Errorf("outcome %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPickerAvoidsFailingEndpoint: an endpoint whose calls fail with
// Unavailable five times in a row is ejected: it gets no more picks, and
// the others keep theirs. The successful calls stay in flight meanwhile,
// so that peak EWMA, which counts each failure as slow, keeps drawing the
// failing endpoint while the others fill up.
func TestPickerAvoidsFailingEndpoint(t *testing.T) {
	for _, policy := range []string{grpcclient.PeakEWMA, grpcclient.ConsistentHash} {
		t.Run(policy, func(t *testing.T) {
			p := buildPicker(t, policy, "", 4)
			const bad = "10.0.0.2:8080"
			fails := 0
			var held []func(gbalancer.DoneInfo)
			for i := range 2000 {
				ctx := grpcclient.WithBalanceKey(context.Background(), fmt.Sprint(i))
				res, err := p.Pick(gbalancer.PickInfo{Ctx: ctx})
				if err != nil {
					t.Fatal(err)
				}
				if addrOf(res.SubConn) != bad {
					held = append(held, res.Done)
					continue
				}
				fails++
				res.Done(gbalancer.DoneInfo{Err: status.Error(codes.Unavailable, "connection reset"), BytesSent: true})
			}
			for _, done := range held {
				done(gbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
			}
			if fails != 5 {
				t.Errorf("%d calls failed on %s, want 5 (then ejected)", fails, bad)
			}
			seen := map[string]int{}
			for i := range 400 {
				ctx := grpcclient.WithBalanceKey(context.Background(), fmt.Sprint(i))
				res, err := p.Pick(gbalancer.PickInfo{Ctx: ctx})
				if err != nil {
					t.Fatal(err)
				}
				seen[addrOf(res.SubConn)]++
				res.Done(gbalancer.DoneInfo{BytesSent: true})
			}
			if seen[bad] > 0 || len(seen) != 3 {
				t.Errorf("picks after the failures %v, want none for %s and some for the 3 others", seen, bad)
			}
		})
	}
}

func addrOf(sc gbalancer.SubConn) string { return sc.(*fakeSC).addrs[0].Addr }
