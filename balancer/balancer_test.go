package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	bs := startBackends(t, 2, 4, false)
	r, err := NewStatic(addrsOf(bs)...)
	if err != nil {
		t.Fatal(err)
	}
	_, c := newTestBalancer(t, Config{Resolver: r, Policy: RoundRobin{}})
	const n = 10000
	counts := load(t, c, n, 8)
	for _, b := range bs {
		got := counts[b.addr]
		if share := float64(got) / n; math.Abs(share-0.25) > 0.25*0.03 {
			t.Errorf("%s served %d of %d (%.3f), want 0.25 within 3%%", b.addr, got, n, share)
		}
	}
}

func TestPeakEWMAAvoidsSlowReplicaAndReturns(t *testing.T) {
	bs := startBackends(t, 2, 4, false)
	const fast = 2 * time.Millisecond
	for _, b := range bs {
		b.delay.Store(int64(fast))
	}
	// The slow replica is 50× slower: a margin that scheduling delays on a
	// loaded machine (tens of milliseconds on every request alike) cannot
	// hide.
	slow := bs[3]
	slow.delay.Store(int64(50 * fast))
	r, err := NewStatic(addrsOf(bs)...)
	if err != nil {
		t.Fatal(err)
	}
	_, c := newTestBalancer(t, Config{Resolver: r, Policy: PeakEWMA{Decay: 100 * time.Millisecond}})

	counts := load(t, c, 800, 8)
	if share := float64(counts[slow.addr]) / 800; share > 0.10 {
		t.Fatalf("slow replica got %.3f of requests (%v), want at most 0.10", share, counts)
	}

	// Recovered, it must win traffic back once its cost decays.
	slow.delay.Store(int64(fast))
	recovered := false
	deadline := time.Now().Add(60 * time.Second)
	for !recovered && time.Now().Before(deadline) {
		counts = load(t, c, 400, 8)
		recovered = float64(counts[slow.addr])/400 >= 0.15
	}
	if !recovered {
		t.Fatalf("recovered replica never got 15%% of a batch back; last batch %v", counts)
	}
}

// mapKeys sends one request per key and returns key -> replica.
func mapKeys(t *testing.T, c *http.Client, keys []string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		by, _, err := get(ctx, c, k)
		if err != nil {
			t.Fatalf("key %s: %v", k, err)
		}
		out[k] = by
	}
	return out
}

func TestConsistentHashAffinityAndMovement(t *testing.T) {
	bs := startBackends(t, 2, 6, false)
	initial := addrsOf(bs[:5])
	r, err := NewStatic(initial...)
	if err != nil {
		t.Fatal(err)
	}
	b, c := newTestBalancer(t, Config{Resolver: r, Policy: ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}})
	keys := make([]string, 600)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	before := mapKeys(t, c, keys)
	if again := mapKeys(t, c, keys); !mapsEqual(before, again) {
		t.Fatal("the same key reached different replicas with an unchanged set")
	}

	tests := []struct {
		name  string
		addrs []string
		// moved keys must all come from (or go to) this replica
		changed string
		n       int
	}{
		{name: "remove one of five", addrs: initial[1:], changed: initial[0], n: 5},
		{name: "add a sixth", addrs: addrsOf(bs), changed: bs[5].addr, n: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Update(initial...); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "initial set", func() bool { return slices.Equal(b.Endpoints(), sorted(initial)) })
			if err := r.Update(tt.addrs...); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "new set", func() bool { return slices.Equal(b.Endpoints(), sorted(tt.addrs)) })
			after := mapKeys(t, c, keys)
			moved := 0
			for _, k := range keys {
				if before[k] == after[k] {
					continue
				}
				moved++
				if before[k] != tt.changed && after[k] != tt.changed {
					t.Errorf("key %s moved from %s to %s, neither is the changed replica", k, before[k], after[k])
				}
			}
			frac, want := float64(moved)/float64(len(keys)), 1/float64(tt.n)
			if frac < want*0.5 || frac > want*1.6 {
				t.Errorf("%d of %d keys moved (%.3f), want about %.3f", moved, len(keys), frac, want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestBoundedLoadCapsHotKey(t *testing.T) {
	bs := startBackends(t, 2, 4, false)
	gate := make(chan struct{})
	arrived := make(chan string)
	for _, b := range bs {
		b.gate, b.arrived = gate, arrived
	}
	r, err := NewStatic(addrsOf(bs)...)
	if err != nil {
		t.Fatal(err)
	}
	_, c := newTestBalancer(t, Config{Resolver: r, Policy: ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	at := map[string]int{}
	// One at a time, so each pick sees the previous requests in flight.
	for range n {
		wg.Go(func() {
			if _, _, err := get(ctx, c, "hot-key"); err != nil {
				errs <- err
			}
		})
		select {
		case a := <-arrived:
			at[a]++
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("request never arrived")
		}
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	hot, most := "", 0
	for a, k := range at {
		if k > most {
			hot, most = a, k
		}
	}
	limit := int(math.Ceil(DefaultLoadFactor * n / 4))
	if most > limit {
		t.Errorf("hot key's replica %s held %d of %d requests, want at most %d (%v)", hot, most, n, limit, at)
	}
	if most < limit-1 {
		t.Errorf("hot key's replica %s held only %d of %d requests; affinity lost (%v)", hot, most, n, at)
	}
}

func TestEjectionAndProbation(t *testing.T) {
	bs := startBackends(t, 2, 3, false)
	bad := bs[0]
	bad.status.Store(http.StatusInternalServerError)
	r, err := NewStatic(addrsOf(bs)...)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	reg := prometheus.NewPedanticRegistry()
	b, c := newTestBalancer(t, Config{
		Resolver:   r,
		Policy:     RoundRobin{},
		Ejection:   Ejection{ConsecutiveFailures: 3, BaseTime: 10 * time.Second, MaxTime: time.Minute},
		Registerer: reg,
		Now:        clock.Now,
		Rand:       seqRand(1),
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	send := func(n int) {
		t.Helper()
		for range n {
			if _, _, err := get(ctx, c, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	ejected := func() bool { return slices.Contains(b.Ejected(), bad.addr) }
	ejections := func() float64 { return testutil.ToFloat64(b.metrics.ejections.WithLabelValues(bad.addr)) }

	send(9) // round robin: three failures in a row on bad
	if !ejected() {
		t.Fatalf("not ejected after %d failures", bad.hits.Load())
	}
	hits := bad.hits.Load()
	send(30)
	if got := bad.hits.Load(); got != hits {
		t.Fatalf("ejected replica got %d requests", got-hits)
	}

	clock.Advance(10*time.Second + time.Millisecond)
	if ejected() {
		t.Fatal("still ejected after the base time")
	}
	send(3) // on probation, one failure ejects again, for twice as long
	if got := bad.hits.Load(); got != hits+1 {
		t.Fatalf("replica on probation got %d requests, want 1", got-hits)
	}
	if !ejected() {
		t.Fatal("one failure on probation did not eject")
	}
	clock.Advance(10*time.Second + time.Millisecond)
	if !ejected() {
		t.Fatal("second ejection was not longer than the first")
	}
	clock.Advance(10 * time.Second)
	if ejected() {
		t.Fatal("still ejected after twice the base time")
	}

	bad.status.Store(0) // healthy again: a success ends probation
	send(3)
	bad.status.Store(http.StatusInternalServerError)
	send(3) // a single failure off probation does not eject
	if ejected() {
		t.Fatal("one failure after probation ended ejected the replica")
	}
	if got := ejections(); got != 2 {
		t.Fatalf("ejections metric = %v, want 2", got)
	}
}

func TestNeverEjectsMoreThanMaxPercent(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		maxPercent int
		want       int
	}{
		{name: "default half of four", n: 4, want: 2},
		{name: "all allowed keeps one", n: 3, maxPercent: 100, want: 2},
		{name: "single endpoint never ejected", n: 1, maxPercent: 100, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := startBackends(t, 2, tt.n, false)
			for _, b := range bs {
				b.status.Store(http.StatusServiceUnavailable)
			}
			r, err := NewStatic(addrsOf(bs)...)
			if err != nil {
				t.Fatal(err)
			}
			clock := &fakeClock{}
			b, c := newTestBalancer(t, Config{Resolver: r, Ejection: Ejection{ConsecutiveFailures: 2, MaxPercent: tt.maxPercent},
				Now: clock.Now, Rand: seqRand(2)})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for range 20 * tt.n {
				if _, code, err := get(ctx, c, ""); err != nil || code != http.StatusServiceUnavailable {
					t.Fatalf("got %d, %v; want the replicas' 503", code, err)
				}
			}
			if got := len(b.Ejected()); got != tt.want {
				t.Fatalf("%d of %d ejected, want %d", got, tt.n, tt.want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	bs := startBackends(t, 2, 1, false)
	r, err := NewStatic(bs[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	_, c := newTestBalancer(t, Config{Resolver: r, Policy: PeakEWMA{}, Registerer: reg})
	load(t, c, 5, 1)
	if _, err := New(Config{Resolver: r, Registerer: reg}); err == nil {
		t.Fatal("second balancer on the same registerer: no error")
	}
	want := fmt.Sprintf(`
# HELP shoal_balancer_in_flight_requests Requests to an endpoint whose responses are not yet closed.
# TYPE shoal_balancer_in_flight_requests gauge
shoal_balancer_in_flight_requests{endpoint=%[1]q} 0
# HELP shoal_balancer_policy_info The balancing policy in use (always 1).
# TYPE shoal_balancer_policy_info gauge
shoal_balancer_policy_info{policy="peak_ewma"} 1
# HELP shoal_balancer_requests_total Requests sent to an endpoint.
# TYPE shoal_balancer_requests_total counter
shoal_balancer_requests_total{endpoint=%[1]q} 5
`, bs[0].addr)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"shoal_balancer_in_flight_requests", "shoal_balancer_policy_info", "shoal_balancer_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestNoEndpointsAndBadConfig(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("New without resolver: %v, want ErrNoResolver", err)
	}
	r, err := NewStatic()
	if err != nil {
		t.Fatal(err)
	}
	_, c := newTestBalancer(t, Config{Resolver: r})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := get(ctx, c, ""); !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("empty set: %v, want ErrNoEndpoints", err)
	}
	for _, bad := range []string{"nohost", "127.0.0.1", "a:b:c"} {
		if _, err := NewStatic(bad); err == nil {
			t.Errorf("NewStatic(%q): no error", bad)
		}
	}
}

func TestNewValidates(t *testing.T) {
	r, err := NewStatic("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	// Each negative value used to mean the field's default (SlowStart's:
	// none); now New rejects it, naming the field.
	tests := []struct {
		name  string
		cfg   Config
		field string // in the error; empty means valid
	}{
		{name: "zero is valid", cfg: Config{Resolver: r}},
		{name: "no resolver", cfg: Config{}, field: "no resolver"},
		{name: "negative slow start", cfg: Config{Resolver: r, SlowStart: -time.Second}, field: "SlowStart"},
		{name: "negative initial latency", cfg: Config{Resolver: r, InitialLatency: -time.Millisecond}, field: "InitialLatency"},
		{name: "negative consecutive failures", cfg: Config{Resolver: r, Ejection: Ejection{ConsecutiveFailures: -1}}, field: "Ejection.ConsecutiveFailures"},
		{name: "negative base time", cfg: Config{Resolver: r, Ejection: Ejection{BaseTime: -time.Second}}, field: "Ejection.BaseTime"},
		{name: "negative max time", cfg: Config{Resolver: r, Ejection: Ejection{MaxTime: -time.Second}}, field: "Ejection.MaxTime"},
		{name: "negative max percent", cfg: Config{Resolver: r, Ejection: Ejection{MaxPercent: -1}}, field: "Ejection.MaxPercent"},
		{name: "negative decay", cfg: Config{Resolver: r, Policy: PeakEWMA{Decay: -time.Second}}, field: "PeakEWMA.Decay"},
		{name: "negative load factor", cfg: Config{Resolver: r, Policy: ConsistentHash{LoadFactor: -1}}, field: "ConsistentHash.LoadFactor"},
		{name: "load factor up to 1 means the default", cfg: Config{Resolver: r, Policy: ConsistentHash{LoadFactor: 0.5}}},
		{name: "negative replicas", cfg: Config{Resolver: r, Policy: ConsistentHash{Replicas: -1}}, field: "ConsistentHash.Replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if err == nil {
				defer b.Close()
			}
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("New: %v, want no error", err)
			case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
				t.Fatalf("New: %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

// TestConcurrentFailuresRespectMaxPercent fails every endpoint at once
// from many goroutines: the max-percent check and the ejection it allows
// must not interleave between endpoints.
func TestConcurrentFailuresRespectMaxPercent(t *testing.T) {
	const n = 8
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.%d:80", i+2)
	}
	r, err := NewStatic(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	fail := roundTripperFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusBadGateway, Body: http.NoBody}, nil
	})
	clock := &fakeClock{}
	b, err := New(Config{Resolver: r, Transport: fail, Ejection: Ejection{ConsecutiveFailures: 1},
		Now: clock.Now, Rand: seqRand(3), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 * n {
		wg.Go(func() {
			for range 20 {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
				if resp, err := b.RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if got := len(b.Ejected()); got != n*DefaultEjectionMaxPercent/100 {
		t.Fatalf("%d of %d ejected, want %d", got, n, n*DefaultEjectionMaxPercent/100)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSlowStartOnlyForLaterEndpoints(t *testing.T) {
	bs := startBackends(t, 2, 3, false)
	r, err := NewStatic(bs[0].addr, bs[1].addr)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	b, c := newTestBalancer(t, Config{Resolver: r, SlowStart: 10 * time.Second, Now: clock.Now, Rand: seqRand(9)})
	waitFor(t, "first resolution", func() bool { return len(b.Endpoints()) == 2 })
	if err := r.Update(addrsOf(bs)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new endpoint", func() bool { return len(b.Endpoints()) == 3 })

	tests := []struct {
		name     string
		at       time.Duration
		min, max float64 // the new endpoint's share
	}{
		{name: "just joined", at: 0, min: 0.01, max: 0.08},
		{name: "warmed up", at: 10 * time.Second, min: 0.30, max: 0.37},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.ns.Store(int64(tt.at))
			counts := load(t, c, 600, 4)
			if s := float64(counts[bs[2].addr]) / 600; s < tt.min || s > tt.max {
				t.Fatalf("new endpoint's share %.3f, want in [%v, %v] (%v)", s, tt.min, tt.max, counts)
			}
		})
	}
}
