package balancer

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"
)

// endpoints makes n endpoints 10.0.0.1:80 ... added at time 0.
func endpoints(n int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = newEndpoint(fmt.Sprintf("10.0.0.%d:80", i+1), 0, 0, float64(10*time.Millisecond))
	}
	return eps
}

func keyRequest(key string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
	if key != "" {
		r.Header.Set(DefaultKeyHeader, key)
	}
	return r
}

func TestRoundRobinPicker(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		ejected []int
		picks   int
		want    []int // indices picked, in order
	}{
		{name: "in turn", n: 3, picks: 6, want: []int{0, 1, 2, 0, 1, 2}},
		{name: "skips ejected", n: 3, ejected: []int{1}, picks: 4, want: []int{0, 2, 0, 2}},
		{name: "all ejected still answers", n: 2, ejected: []int{0, 1}, picks: 2, want: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := endpoints(tt.n)
			for _, i := range tt.ejected {
				eps[i].ejectedUntil.Store(100)
			}
			p := RoundRobin{}.Build(eps)
			rnd := seqRand(7)
			for i, w := range tt.want {
				got := p.Pick(PickInfo{Now: 1, Rand: rnd()})
				if got != eps[w] {
					t.Fatalf("pick %d = %s, want %s", i, got.Addr(), eps[w].Addr())
				}
			}
		})
	}
}

func TestSlowStartWeight(t *testing.T) {
	win := int64(10 * time.Second)
	tests := []struct {
		name string
		age  time.Duration
		want float64
	}{
		{name: "just joined", age: 0, want: 0.1},
		{name: "a quarter in", age: 2500 * time.Millisecond, want: 0.25},
		{name: "half way", age: 5 * time.Second, want: 0.5},
		{name: "done", age: 10 * time.Second, want: 1},
		{name: "long after", age: time.Hour, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEndpoint("10.0.0.1:80", 0, win, 1)
			if got := e.Weight(int64(tt.age)); got != tt.want {
				t.Fatalf("Weight = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoundRobinSlowStartShare(t *testing.T) {
	eps := endpoints(3)
	win := int64(10 * time.Second)
	eps[2] = newEndpoint("10.0.0.9:80", 0, win, 1)
	p := RoundRobin{}.Build(eps)
	rnd := seqRand(3)
	tests := []struct {
		name     string
		now      time.Duration
		min, max float64 // share of the new endpoint
	}{
		{name: "cold", now: 0, min: 0.02, max: 0.06},
		{name: "half way", now: 5 * time.Second, min: 0.18, max: 0.28},
		{name: "warm", now: 20 * time.Second, min: 0.31, max: 0.35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 30000
			got := 0
			for range n {
				if p.Pick(PickInfo{Now: int64(tt.now), Rand: rnd()}) == eps[2] {
					got++
				}
			}
			if s := float64(got) / n; s < tt.min || s > tt.max {
				t.Fatalf("new endpoint share %.3f, want in [%v, %v]", s, tt.min, tt.max)
			}
		})
	}
}

func TestPeakEWMAPicker(t *testing.T) {
	ms := float64(time.Millisecond)
	tests := []struct {
		name    string
		latency []float64 // per endpoint, observed at time 0
		late    []float64 // per endpoint, then observed 12 times, then latency 10 times; 0 for none
		load    []int64   // requests in flight per endpoint
		conc    []float64 // Concurrency per endpoint; 1 when missing
		ejected []int
		want    int // the endpoint that must take the most picks
		minFrac float64
	}{
		{name: "fast wins", latency: []float64{1 * ms, 10 * ms}, want: 0, minFrac: 0.99},
		{name: "load counts", latency: []float64{2 * ms, 2 * ms}, load: []int64{5, 0}, want: 1, minFrac: 0.99},
		{name: "ejected never chosen", latency: []float64{1 * ms, 10 * ms, 10 * ms}, ejected: []int{0}, want: 1, minFrac: 0.45},
		{name: "slow of four avoided", latency: []float64{2 * ms, 2 * ms, 2 * ms, 20 * ms}, want: -3, minFrac: 1},
		// 2ms × (12+1) would lose to 20ms; a replica seen serving four at
		// once answers the next in about 2ms × (1 + 12/4).
		{name: "busy fast replica serving several at once beats idle slow one",
			latency: []float64{2 * ms, 20 * ms}, load: []int64{12, 0}, conc: []float64{4, 4}, want: 0, minFrac: 0.99},
		{name: "busy fast serial replica loses to idle slow one",
			latency: []float64{2 * ms, 20 * ms}, load: []int64{12, 0}, want: 1, minFrac: 0.99},
		// Alike replicas: requests in flight count in full, whatever the
		// concurrency, so load spreads evenly over them.
		{name: "alike: in flight counts in full",
			latency: []float64{2 * ms, 3.5 * ms}, load: []int64{2, 0}, conc: []float64{4, 4}, want: 1, minFrac: 0.99},
		// A stall's late answers raised endpoint 1's mean to nearly six
		// times endpoint 0's, but its next answers were prompt: alike by
		// their floors, in flight counts in full and the idle one wins.
		// Told apart by their means, endpoint 0 would win until 38 in
		// flight, and endpoint 1 would get no sample to correct its mean.
		{name: "alike: a stall's late answers do not make a replica unalike",
			latency: []float64{2 * ms, 2 * ms}, late: []float64{0, 40 * ms}, load: []int64{8, 0}, conc: []float64{8, 8}, want: 1, minFrac: 0.99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := endpoints(len(tt.latency))
			for i, l := range tt.latency {
				eps[i].ewma.Store(0)
				eps[i].observeLatency(0, l, float64(DefaultDecay), 0)
			}
			for i, l := range tt.late {
				if l == 0 {
					continue
				}
				for range 12 {
					eps[i].observeLatency(0, l, float64(DefaultDecay), 0)
				}
				for range 10 {
					eps[i].observeLatency(0, tt.latency[i], float64(DefaultDecay), 0)
				}
			}
			for i, l := range tt.load {
				eps[i].inFlight.Store(l)
			}
			for i, c := range tt.conc {
				eps[i].conc.Store(math.Float64bits(c))
			}
			for _, i := range tt.ejected {
				eps[i].ejectedUntil.Store(1 << 40)
			}
			p := PeakEWMA{}.Build(eps)
			rnd := seqRand(11)
			counts := make([]int, len(eps))
			const n = 1000
			for range n {
				e := p.Pick(PickInfo{Now: 1, Rand: rnd()})
				for i := range eps {
					if eps[i] == e {
						counts[i]++
					}
				}
			}
			for _, i := range tt.ejected {
				if counts[i] != 0 {
					t.Fatalf("ejected endpoint %d picked %d times", i, counts[i])
				}
			}
			if tt.want < 0 { // never pick -want
				if counts[-tt.want] != 0 {
					t.Fatalf("slow endpoint picked %d times: %v", counts[-tt.want], counts)
				}
				return
			}
			if f := float64(counts[tt.want]) / n; f < tt.minFrac {
				t.Fatalf("endpoint %d got %.3f of picks, want at least %v: %v", tt.want, f, tt.minFrac, counts)
			}
		})
	}
}

// TestPeakEWMAProbesStaleOneAtATime: an endpoint without a sample for
// a tenth of the decay time has a decayed, cheap-looking estimate; it
// takes one request, and no other while that one is in flight.
func TestPeakEWMAProbesStaleOneAtATime(t *testing.T) {
	ms := int64(time.Millisecond)
	tau := float64(DefaultDecay)
	tests := []struct {
		name     string
		age      time.Duration // since the slow endpoint's last sample
		inFlight int64         // on the slow endpoint
		want     int           // endpoint every pick goes to
	}{
		{name: "stale and idle: probed", age: time.Minute, want: 0},
		{name: "stale with a probe in flight: left alone", age: time.Minute, inFlight: 1, want: 1},
		{name: "fresh and slow: avoided", age: 100 * time.Millisecond, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := int64(2 * time.Minute)
			eps := endpoints(2)
			eps[0].observeLatency(now-int64(tt.age), float64(20*ms), tau, 0)
			eps[0].inFlight.Store(tt.inFlight)
			eps[1].observeLatency(now-ms, float64(2*ms), tau, 0)
			p := PeakEWMA{}.Build(eps)
			rnd := seqRand(5)
			for range 100 {
				if got := p.Pick(PickInfo{Now: now, Rand: rnd()}); got != eps[tt.want] {
					t.Fatalf("picked %s, want %s", got.Addr(), eps[tt.want].Addr())
				}
			}
		})
	}
}

func TestEndpointConcurrency(t *testing.T) {
	tau := float64(time.Second)
	e := newEndpoint("10.0.0.1:80", 0, 0, 0)
	steps := []struct {
		name   string
		at     time.Duration
		rtt    float64
		others int64
		min    float64
		max    float64
	}{
		{name: "first sample teaches latency only", at: 0, rtt: 100, others: 5, min: 1, max: 1},
		{name: "no slower with three others: four at once", at: time.Millisecond, rtt: 90, others: 3, min: 3.99, max: 4},
		{name: "a peak with more in flight teaches nothing", at: 2 * time.Millisecond, rtt: 500, others: 9, min: 3.99, max: 4},
		{name: "decays towards one", at: 5 * time.Second, rtt: 1000, others: 0, min: 1, max: 1.03},
	}
	for _, st := range steps {
		e.observeLatency(int64(st.at), st.rtt, tau, st.others)
		if c := e.Concurrency(); c < st.min || c > st.max {
			t.Fatalf("%s: Concurrency = %v, want in [%v, %v]", st.name, c, st.min, st.max)
		}
	}
}

func TestPeakEWMADecay(t *testing.T) {
	tau := float64(time.Second)
	e := newEndpoint("10.0.0.1:80", 0, 0, 0)
	e.observeLatency(0, 100, tau, 0)
	tests := []struct {
		name     string
		now      time.Duration
		min, max float64
	}{
		{name: "at once", now: 0, min: 100, max: 100},
		{name: "one decay time", now: time.Second, min: 36, max: 37},
		{name: "five decay times", now: 5 * time.Second, min: 0.6, max: 0.7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.Latency(int64(tt.now), tau); got < tt.min || got > tt.max {
				t.Fatalf("Latency = %v, want in [%v, %v]", got, tt.min, tt.max)
			}
		})
	}
	// A peak replaces the average; a lower sample only pulls it down.
	e.observeLatency(int64(time.Second), 500, tau, 0)
	if got := e.Latency(int64(time.Second), tau); got != 500 {
		t.Fatalf("after a peak: %v, want 500", got)
	}
	e.observeLatency(int64(time.Second+time.Millisecond), 10, tau, 0)
	if got := e.Latency(int64(time.Second+time.Millisecond), tau); got < 400 || got >= 500 {
		t.Fatalf("after a low sample: %v, want it pulled a little below 500", got)
	}
}

func TestConsistentHashPicker(t *testing.T) {
	eps := endpoints(10)
	p := ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}.Build(eps)
	const nkeys = 5000
	reqs := make([]*http.Request, nkeys)
	home := make([]*Endpoint, nkeys)
	counts := map[*Endpoint]int{}
	for i := range reqs {
		reqs[i] = keyRequest(fmt.Sprintf("key-%d", i))
		home[i] = p.Pick(PickInfo{Request: reqs[i]})
		counts[home[i]]++
	}
	for _, e := range eps {
		if c := counts[e]; c < nkeys/10/2 || c > nkeys/10*2 {
			t.Errorf("%s holds %d of %d keys, want near %d", e.Addr(), c, nkeys, nkeys/10)
		}
	}

	tests := []struct {
		name string
		eps  []*Endpoint
	}{
		{name: "remove one", eps: append(append([]*Endpoint{}, eps[:3]...), eps[4:]...)},
		{name: "add one", eps: append(append([]*Endpoint{}, eps...), newEndpoint("10.0.0.99:80", 0, 0, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}.Build(tt.eps)
			moved := 0
			for i, r := range reqs {
				if q.Pick(PickInfo{Request: r}) != home[i] {
					moved++
				}
			}
			frac := float64(moved) / nkeys
			if want := 1 / float64(len(tt.eps)); frac < want*0.6 || frac > want*1.5 {
				t.Fatalf("%.3f of keys moved, want about %.3f", frac, want)
			}
		})
	}
}

func TestConsistentHashBoundedLoad(t *testing.T) {
	tests := []struct {
		name     string
		factor   float64
		inFlight int
	}{
		{name: "default 1.25", inFlight: 40},
		{name: "tight 1.1", factor: 1.1, inFlight: 100},
		{name: "loose 2", factor: 2, inFlight: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := endpoints(4)
			p := ConsistentHash{Key: HeaderKey(DefaultKeyHeader), LoadFactor: tt.factor}.Build(eps)
			req := keyRequest("hot")
			f := tt.factor
			if f <= 1 {
				f = DefaultLoadFactor
			}
			for k := range tt.inFlight {
				e := p.Pick(PickInfo{Request: req, InFlight: int64(k)})
				e.inFlight.Add(1)
				limit := int64(f*float64(k+1)/4 + 0.999999)
				if e.InFlight() > limit {
					t.Fatalf("request %d: %s holds %d, bound is %d", k, e.Addr(), e.InFlight(), limit)
				}
			}
		})
	}
}

func TestConsistentHashWithoutKeyIsRandom(t *testing.T) {
	eps := endpoints(4)
	p := ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}.Build(eps)
	rnd := seqRand(5)
	seen := map[*Endpoint]bool{}
	for range 200 {
		seen[p.Pick(PickInfo{Request: keyRequest(""), Rand: rnd()})] = true
	}
	if len(seen) != 4 {
		t.Fatalf("keyless requests reached %d of 4 endpoints", len(seen))
	}
}

func TestPolicyByName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "round robin", in: "round_robin", want: NameRoundRobin},
		{name: "dashes and case", in: "Peak-EWMA", want: NamePeakEWMA},
		{name: "hash", in: "consistent_hash", want: NameConsistentHash},
		{name: "unknown", in: "fastest", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PolicyByName(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrUnknownPolicy) {
					t.Fatalf("err = %v, want ErrUnknownPolicy", err)
				}
				return
			}
			if err != nil || p.Name() != tt.want {
				t.Fatalf("got %v, %v; want %s", p, err, tt.want)
			}
		})
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	eps := endpoints(8)
	req := keyRequest("some-key")
	for _, pol := range []Policy{RoundRobin{}, PeakEWMA{}, ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}} {
		t.Run(pol.Name(), func(t *testing.T) {
			p := pol.Build(eps)
			rnd := seqRand(1)
			if a := testing.AllocsPerRun(1000, func() { p.Pick(PickInfo{Request: req, Now: 1, Rand: rnd()}) }); a != 0 {
				t.Fatalf("%v allocations per pick", a)
			}
		})
	}
}

func FuzzConsistentHashPick(f *testing.F) {
	f.Add("user-1", uint8(3), uint16(0))
	f.Add("", uint8(1), uint16(7))
	f.Add("\x00\xff", uint8(16), uint16(1000))
	f.Fuzz(func(t *testing.T, key string, n uint8, inFlight uint16) {
		if n == 0 {
			n = 1
		}
		eps := endpoints(int(n%32) + 1)
		p := ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}.Build(eps)
		req := keyRequest("")
		req.Header[DefaultKeyHeader] = []string{key}
		e := p.Pick(PickInfo{Request: req, InFlight: int64(inFlight)})
		if e == nil {
			t.Fatal("nil endpoint")
		}
		if key != "" && p.Pick(PickInfo{Request: req, InFlight: int64(inFlight)}) != e {
			t.Fatal("same key, same state, different endpoint")
		}
	})
}

// TestPeakEWMASharesAlikeEndpoints: alike replicas, all idle, split the
// picks evenly whatever their recent latencies, and one judged slow on an
// old sample is alike again, and takes its share, within a few tenths of
// the decay time. Before, the two idle replicas of a Deployment sent every
// call to the one a little quicker, and a replica whose first answer was
// a cold cache's took none for tens of seconds.
func TestPeakEWMASharesAlikeEndpoints(t *testing.T) {
	ms := float64(time.Millisecond)
	tau := float64(DefaultDecay)
	tests := []struct {
		name string
		// samples per endpoint, each observed at its time
		samples  [][]sample
		now      time.Duration
		min, max float64 // share of endpoint 1 over 4000 picks
		load     []int64
	}{
		{name: "idle, a little slower", samples: [][]sample{{{0, 2 * ms}}, {{0, 2.5 * ms}}}, now: time.Millisecond, min: 0.45, max: 0.55},
		{name: "idle, one late answer after prompt ones", samples: [][]sample{{{0, 2 * ms}}, {{0, 2 * ms}, {time.Millisecond, 60 * ms}}}, now: 2 * time.Millisecond, min: 0.45, max: 0.55},
		{name: "four alike, one with a peak", samples: [][]sample{{{0, 2 * ms}}, {{0, 2 * ms}, {time.Millisecond, 40 * ms}}, {{0, 2 * ms}}, {{0, 2 * ms}}}, now: 2 * time.Millisecond, min: 0.20, max: 0.30},
		{name: "busy alike replica takes less", samples: [][]sample{{{0, 2 * ms}}, {{0, 2 * ms}}}, load: []int64{0, 3}, now: time.Millisecond, min: 0, max: 0},
		// A cold cache's answer, 50× its peer's, and nothing since: told
		// apart at first, alike again once its floor decayed below twice
		// the peer's (ln 25 quarters of the decay time, 8 s).
		{name: "cold first answer, told apart still", samples: [][]sample{{{0, 1 * ms}, {7 * time.Second, 1 * ms}}, {{0, 50 * ms}}}, now: 7 * time.Second, min: 0, max: 0},
		{name: "cold first answer, alike again", samples: [][]sample{{{0, 1 * ms}, {9 * time.Second, 1 * ms}}, {{0, 50 * ms}}}, now: 9 * time.Second, min: 0.45, max: 1},
		{name: "cold first answer, told apart at once", samples: [][]sample{{{0, 1 * ms}, {time.Second, 1 * ms}}, {{0, 50 * ms}}}, now: time.Second, min: 0, max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := endpoints(len(tt.samples))
			for i, ss := range tt.samples {
				for _, s := range ss {
					eps[i].observeLatency(int64(s.at), s.rtt, tau, 0)
				}
			}
			for i, l := range tt.load {
				eps[i].inFlight.Store(l)
			}
			p := PeakEWMA{}.Build(eps)
			rnd := seqRand(17)
			const n = 4000
			got := 0
			for range n {
				if p.Pick(PickInfo{Now: int64(tt.now), Rand: rnd()}) == eps[1] {
					got++
				}
			}
			if s := float64(got) / n; s < tt.min || s > tt.max {
				t.Fatalf("endpoint 1 share %.3f, want in [%v, %v]", s, tt.min, tt.max)
			}
		})
	}
}

type sample struct {
	at  time.Duration
	rtt float64
}

// TestPeakEWMASlowStartShare: an endpoint in slow start, among idle alike
// ones, takes a share that grows with its weight.
func TestPeakEWMASlowStartShare(t *testing.T) {
	win := int64(10 * time.Second)
	tau := float64(DefaultDecay)
	tests := []struct {
		name     string
		now      time.Duration
		min, max float64 // share of the new endpoint among three
	}{
		// Drawn first in a third of the picks, it wins the tie there
		// and keeps it with probability w: w/3 of the picks.
		{name: "cold", now: 0, min: 0.02, max: 0.05},
		{name: "half way", now: 5 * time.Second, min: 0.14, max: 0.20},
		{name: "warm", now: 20 * time.Second, min: 0.31, max: 0.36},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := endpoints(3)
			eps[2] = newEndpoint("10.0.0.9:80", 0, win, 1)
			for _, e := range eps {
				e.observeLatency(int64(tt.now), float64(2*time.Millisecond), tau, 0)
			}
			p := PeakEWMA{}.Build(eps)
			rnd := seqRand(23)
			const n = 30000
			got := 0
			for range n {
				if p.Pick(PickInfo{Now: int64(tt.now), Rand: rnd()}) == eps[2] {
					got++
				}
			}
			if s := float64(got) / n; s < tt.min || s > tt.max {
				t.Fatalf("new endpoint share %.3f, want in [%v, %v]", s, tt.min, tt.max)
			}
		})
	}
}
