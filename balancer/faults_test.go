package balancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shoal-dev/shoal/internal/testkit/blackhole"

	"github.com/shoal-dev/shoal/client"
)

// A retry must not go back to the endpoint an earlier attempt used: under
// consistent hashing it goes to the key's next endpoint on the ring.
func TestPickSkipsTriedEndpoints(t *testing.T) {
	eps := endpoints(4)
	req := keyRequest("user-7")
	for _, pol := range []Policy{RoundRobin{}, PeakEWMA{}, ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}} {
		t.Run(pol.Name(), func(t *testing.T) {
			p := pol.Build(eps)
			rnd := seqRand(5)
			for range 50 {
				var tried []string
				for attempt := range len(eps) {
					e := p.Pick(PickInfo{Request: req, Now: 1, Rand: rnd(), Tried: tried})
					if slices.Contains(tried, e.addr) {
						t.Fatalf("attempt %d went to %s, tried already (%v)", attempt+1, e.addr, tried)
					}
					tried = append(slices.Clip(tried), e.addr)
				}
				// Every endpoint tried: the pick still answers.
				if e := p.Pick(PickInfo{Request: req, Now: 1, Rand: rnd(), Tried: tried}); e == nil {
					t.Fatal("nil pick with every endpoint tried")
				}
			}
		})
	}
	t.Run("consistent_hash next on the ring", func(t *testing.T) {
		p := ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}.Build(eps).(*ringHash)
		home := p.Pick(PickInfo{Request: req, Now: 1})
		start := p.search(hashString("user-7"))
		var next *Endpoint
		for k := range len(p.ring) {
			if e := p.ring[(start+k)%len(p.ring)].ep; e != home {
				next = e
				break
			}
		}
		for range 10 { // the same answer every time: affinity holds for retries too
			if got := p.Pick(PickInfo{Request: req, Now: 1, Tried: []string{home.addr}}); got != next {
				t.Fatalf("retry went to %s, want %s, the next on the ring after %s", got.addr, next.addr, home.addr)
			}
		}
	})
	t.Run("tried beats ejected", func(t *testing.T) {
		eps := endpoints(2)
		eps[1].ejectedUntil.Store(100)
		p := RoundRobin{}.Build(eps)
		if got := p.Pick(PickInfo{Now: 1, Tried: []string{eps[0].addr}}); got != eps[0] {
			t.Fatalf("picked %s; the only available endpoint, even tried, beats an ejected one", got.addr)
		}
	})
}

func TestPickWithTriedAllocatesNothing(t *testing.T) {
	eps := endpoints(8)
	req := keyRequest("some-key")
	tried := []string{eps[3].addr, eps[5].addr}
	for _, pol := range []Policy{RoundRobin{}, PeakEWMA{}, ConsistentHash{Key: HeaderKey(DefaultKeyHeader)}} {
		t.Run(pol.Name(), func(t *testing.T) {
			p := pol.Build(eps)
			rnd := seqRand(1)
			if a := testing.AllocsPerRun(1000, func() { p.Pick(PickInfo{Request: req, Now: 1, Rand: rnd(), Tried: tried}) }); a != 0 {
				t.Fatalf("%v allocations per pick", a)
			}
		})
	}
}

// The outlier detection decisions, step by step: which outcome ejects.
func TestObserveResult(t *testing.T) {
	cfg := ejection{consecutive: 5, timeouts: 3, base: 10, max: 100}
	const (
		S = success
		F = failure
		T = timeout
		R = refused
		H = shed
		A = abandoned
	)
	tests := []struct {
		name    string
		seq     []outcome
		ejectAt int // index of the outcome that ejects; -1 for none
	}{
		{name: "five failures in a row", seq: []outcome{F, F, F, F, F}, ejectAt: 4},
		{name: "a success resets failures", seq: []outcome{F, F, F, F, S, F, F, F, F}, ejectAt: -1},
		{name: "three timeouts", seq: []outcome{T, T, T}, ejectAt: 2},
		{name: "timeouts between successes still add up", seq: []outcome{T, S, T, S, T, S, T}, ejectAt: 6},
		{name: "a rare timeout is forgiven", seq: append(append([]outcome{T, T}, slices.Repeat([]outcome{S}, 20)...), T, T), ejectAt: -1},
		{name: "refused ejects at once", seq: []outcome{R}, ejectAt: 0},
		{name: "shed counts neither way", seq: []outcome{F, F, F, F, H, H, H, F}, ejectAt: 7},
		{name: "the caller giving up counts neither way", seq: []outcome{T, T, A, A, A, T}, ejectAt: 5},
		{name: "shed alone never ejects", seq: slices.Repeat([]outcome{H}, 50), ejectAt: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEndpoint("10.0.0.1:80")
			got := -1
			for i, o := range tt.seq {
				if e.observeResult(int64(i), o, cfg, func(until int64) bool { e.ejectedUntil.Store(until); return true }) {
					got = i
					break
				}
			}
			if got != tt.ejectAt {
				t.Fatalf("ejected at %d, want %d", got, tt.ejectAt)
			}
		})
	}
}

func TestErrOutcome(t *testing.T) {
	perTry, cancel := context.WithTimeoutCause(context.Background(), -1, client.ErrPerTryTimeout)
	defer cancel()
	caller, cancel2 := context.WithCancel(context.Background())
	cancel2()
	callerDeadline, cancel3 := context.WithTimeout(context.Background(), -1)
	defer cancel3()
	live := context.Background()
	refusedErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	resetErr := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want outcome
	}{
		{name: "per-try timeout", ctx: perTry, err: context.DeadlineExceeded, want: timeout},
		{name: "caller cancelled", ctx: caller, err: context.Canceled, want: abandoned},
		{name: "caller's own deadline", ctx: callerDeadline, err: context.DeadlineExceeded, want: abandoned},
		{name: "refused", ctx: live, err: fmt.Errorf("wrapped: %w", refusedErr), want: refused},
		{name: "reset", ctx: live, err: resetErr, want: refused},
		{name: "transport timeout", ctx: live, err: &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, want: timeout},
		{name: "EOF", ctx: live, err: io.ErrUnexpectedEOF, want: failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errOutcome(tt.ctx, tt.err); got != tt.want {
				t.Fatalf("errOutcome = %v, want %v", got, tt.want)
			}
		})
	}
}

// serve runs handler on a loopback listener until the test ends.
func serve(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

func served(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Served-By", name)
	})
}

// retrying returns a retrying client over a balancer with cfg.
func retrying(t *testing.T, cfg Config, ccfg client.Config) (*Balancer, *http.Client) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ccfg.Transport = b
	ccfg.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	c, err := client.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func status(ctx context.Context, c *http.Client, key string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/work", nil)
	req.Header.Set(DefaultKeyHeader, key)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Served-By"), nil
}

// The key's home replica is gone (its port refuses connections): the
// retry reaches the next replica on the ring, the refusal ejects the home
// at once, and a fresh resolution that still lists it brings it back.
func TestRetryAfterRefusalReachesAnotherReplica(t *testing.T) {
	live := []string{serve(t, "127.0.0.2", served("b")), serve(t, "127.0.0.3", served("c"))}
	dead := closedAddr(t, "127.0.0.4")
	r, err := NewStatic(append(slices.Clone(live), dead)...)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	reg := prometheus.NewPedanticRegistry()
	b, c := retrying(t, Config{Resolver: r, Policy: ConsistentHash{Key: HeaderKey(DefaultKeyHeader)},
		Now: clock.Now, Rand: seqRand(1), Registerer: reg}, client.Config{MaxAttempts: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitFor(t, "first resolution", func() bool { return len(b.Endpoints()) == 3 })

	// A key whose home is the dead endpoint.
	p := b.snap.Load().picker
	key := ""
	for i := 0; key == ""; i++ {
		k := fmt.Sprintf("user-%d", i)
		if p.Pick(PickInfo{Request: keyRequest(k), Now: 1}).addr == dead {
			key = k
		}
	}
	code, by, err := status(ctx, c, key)
	if err != nil || code != http.StatusOK {
		t.Fatalf("request whose home is refused: %d, %v; want a 200 from the next replica", code, err)
	}
	t.Logf("served by %s after the home refused", by)
	if !slices.Equal(b.Ejected(), []string{dead}) {
		t.Fatalf("ejected %v after one refusal, want [%s]", b.Ejected(), dead)
	}
	if got := testutil.ToFloat64(b.metrics.ejections.WithLabelValues(dead)); got != 1 {
		t.Fatalf("ejections metric %v, want 1", got)
	}
	// Ejected, the dead endpoint takes no first attempt either.
	for range 20 {
		if code, _, err := status(ctx, c, key); err != nil || code != http.StatusOK {
			t.Fatalf("%d, %v", code, err)
		}
	}
	if got := testutil.ToFloat64(b.metrics.requests.WithLabelValues(dead)); got != 1 {
		t.Fatalf("the ejected endpoint got %v requests, want the 1 that ejected it", got)
	}

	// The resolver lists it again: it is back, on probation.
	if err := r.Update(append(slices.Clone(live), dead)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relisted endpoint back", func() bool { return len(b.Ejected()) == 0 })
	if code, _, err := status(ctx, c, key); err != nil || code != http.StatusOK {
		t.Fatalf("%d, %v", code, err)
	}
	if !slices.Equal(b.Ejected(), []string{dead}) {
		t.Fatalf("on probation, one more refusal did not eject: %v", b.Ejected())
	}
}

// closedAddr returns an address on ip nothing listens on.
func closedAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A replica that accepts connections and never answers is ejected after
// three per-try timeouts, though other replicas' successes come between;
// no request fails, and afterwards none waits on it.
func TestBlackHoleEjectedByPerTryTimeouts(t *testing.T) {
	hole := blackhole.Listen(t, "127.0.0.2:0")
	addrs := []string{hole, serve(t, "127.0.0.3", served("b")), serve(t, "127.0.0.4", served("c"))}
	r, err := NewStatic(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	const perTry = 100 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	b, c := retrying(t, Config{Resolver: r, Policy: RoundRobin{}, Rand: seqRand(2), Registerer: reg},
		client.Config{MaxAttempts: 3, PerTryTimeout: perTry})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; !slices.Contains(b.Ejected(), hole); i++ {
		if i == 30 {
			t.Fatalf("not ejected after %d requests", i)
		}
		if code, _, err := status(ctx, c, ""); err != nil || code != http.StatusOK {
			t.Fatalf("request %d: %d, %v", i, code, err)
		}
	}
	holeHits := func() float64 { return testutil.ToFloat64(b.metrics.requests.WithLabelValues(hole)) }
	hits := holeHits()
	if hits != 3 {
		t.Fatalf("ejected after %v tries on the black hole, want 3", hits)
	}
	for range 30 {
		start := time.Now()
		if code, _, err := status(ctx, c, ""); err != nil || code != http.StatusOK {
			t.Fatalf("%d, %v", code, err)
		}
		if d := time.Since(start); d >= perTry {
			t.Fatalf("a request after the ejection took %v: it waited on the black hole", d)
		}
	}
	if got := holeHits(); got != hits {
		t.Fatalf("the ejected black hole got %v more requests", got-hits)
	}
}

func (b *Balancer) byAddrLocked(addr string) *Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byAddr[addr]
}

// Callers that give up on a slow replica are no evidence against it.
func TestCallerCancellationDoesNotEject(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	addrs := []string{serve(t, "127.0.0.2", slow), serve(t, "127.0.0.3", slow)}
	r, err := NewStatic(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	b, c := retrying(t, Config{Resolver: r, Ejection: Ejection{ConsecutiveFailures: 1, Timeouts: 1}}, client.Config{MaxAttempts: 1})
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if _, _, err := status(ctx, c, ""); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the caller's deadline", err)
		}
		cancel()
	}
	if got := b.Ejected(); len(got) != 0 {
		t.Fatalf("ejected %v for requests their callers gave up on", got)
	}
}

// A shedding replica (503 with Retry-After) is backed off for the time it
// asks, capped, and not ejected; the retry goes to another replica.
func TestSheddingReplicaBacksOffNotEjected(t *testing.T) {
	var retryAfter atomic.Value
	retryAfter.Store("2")
	shedding := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", retryAfter.Load().(string))
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	shed := serve(t, "127.0.0.2", shedding)
	ok := serve(t, "127.0.0.3", served("ok"))
	r, err := NewStatic(shed, ok)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	reg := prometheus.NewPedanticRegistry()
	b, c := retrying(t, Config{Resolver: r, Policy: RoundRobin{}, Now: clock.Now, Rand: seqRand(3),
		Ejection: Ejection{ConsecutiveFailures: 1}, RetryAfterMax: 5 * time.Second, Registerer: reg},
		client.Config{MaxAttempts: 2})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sheds := func() float64 { return testutil.ToFloat64(b.metrics.requests.WithLabelValues(shed)) }

	tests := []struct {
		name       string
		retryAfter string
		out        time.Duration // how long the shedding replica must stay out
	}{
		{name: "seconds", retryAfter: "2", out: 2 * time.Second},
		{name: "capped", retryAfter: "3600", out: 5 * time.Second},
		{name: "date", retryAfter: clock.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat), out: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retryAfter.Store(tt.retryAfter)
			before := sheds()
			for sheds() == before { // round robin reaches the shedding replica within two
				if code, by, err := status(ctx, c, ""); err != nil || code != http.StatusOK || by != "ok" {
					t.Fatalf("%d from %q, %v; want 200 from the other replica", code, by, err)
				}
			}
			if len(b.Ejected()) != 0 {
				t.Fatalf("ejected %v for shedding", b.Ejected())
			}
			for range 10 {
				if _, _, err := status(ctx, c, ""); err != nil {
					t.Fatal(err)
				}
			}
			if got := sheds(); got != before+1 {
				t.Fatalf("backed off replica got %v requests, want none", got-before-1)
			}
			clock.Advance(tt.out - time.Millisecond)
			if b.byAddrLocked(shed).Available(b.nanotime()) {
				t.Fatalf("back in before %v", tt.out)
			}
			clock.Advance(time.Millisecond)
			if !b.byAddrLocked(shed).Available(b.nanotime()) {
				t.Fatalf("still out after %v", tt.out)
			}
		})
	}
	if got := testutil.ToFloat64(b.metrics.ejections.WithLabelValues(shed)); got != 0 {
		t.Fatalf("ejections %v, want 0", got)
	}
	if got := testutil.ToFloat64(b.metrics.backoffs.WithLabelValues(shed)); got != 3 {
		t.Fatalf("backoffs %v, want 3", got)
	}
}

// Without a Transport the balancer uses a tuned one of its own: bursts
// reuse pooled connections instead of dialling one per request (with
// http.DefaultTransport's 2 idle connections per host, 20 bursts of 16
// made about 280 connections).
func TestDefaultTransportPoolsConnections(t *testing.T) {
	var conns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	var gate atomic.Pointer[chan struct{}]
	var arrived atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := *gate.Load()
			arrived.Add(1)
			<-g
		})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); <-done }()
	r, err := NewStatic(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Resolver: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if tr, ok := b.transport.(*http.Transport); !ok || tr.MaxIdleConnsPerHost != client.DefaultMaxIdleConnsPerHost {
		t.Fatalf("default transport %T, want client.NewTransport's", b.transport)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const bursts, width = 20, 16
	for i := range bursts {
		// All 16 in flight at once, then released together: a burst.
		g := make(chan struct{})
		gate.Store(&g)
		var wg sync.WaitGroup
		errs := make(chan error, width)
		for range width {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
				resp, err := b.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		waitFor(t, "a full burst", func() bool { return arrived.Load() == int64((i+1)*width) })
		close(g)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	if got := conns.Load(); got > width {
		t.Fatalf("%d bursts of %d made %d connections, want at most %d", bursts, width, got, width)
	}
}

func TestObserveCheck(t *testing.T) {
	cfg := healthCheck{healthy: 2, unhealthy: 3}
	tests := []struct {
		name   string
		checks []bool
		want   []bool // unhealthy after each check
	}{
		{name: "three failures take it out", checks: []bool{false, false, false}, want: []bool{false, false, true}},
		{name: "a pass resets failures", checks: []bool{false, false, true, false, false}, want: []bool{false, false, false, false, false}},
		{name: "two passes bring it back", checks: []bool{false, false, false, true, false, true, true}, want: []bool{false, false, true, true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEndpoint("10.0.0.1:80")
			for i, ok := range tt.checks {
				e.observeCheck(ok, cfg)
				if got := e.unhealthy.Load(); got != tt.want[i] {
					t.Fatalf("after check %d: unhealthy %v, want %v", i, got, tt.want[i])
				}
				if got := e.Available(0); got == tt.want[i] {
					t.Fatalf("after check %d: available %v while unhealthy %v", i, got, tt.want[i])
				}
			}
		})
	}
}

// Active checks on an admin port take out a replica whose admin port says
// it is not ready, though its requests would succeed, and bring it back;
// Close stops them (goleak checks).
func TestActiveHealthChecks(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	admin := http.NewServeMux()
	admin.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	// Both on 127.0.0.2, the admin port apart from the serving one.
	adminAddr := serve(t, "127.0.0.2", admin)
	_, adminPort, _ := net.SplitHostPort(adminAddr)
	port := 0
	fmt.Sscan(adminPort, &port)
	a := serve(t, "127.0.0.2", served("a"))
	bAddr := blackhole.Listen(t, "127.0.0.3:0") // its checks time out
	r, err := NewStatic(a, bAddr)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	b, err := New(Config{Resolver: r, Registerer: reg, Logger: slog.New(slog.DiscardHandler),
		HealthCheck: HealthCheck{Path: "/readyz", Port: port, Interval: 10 * time.Millisecond,
			Timeout: 50 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, "the black hole failing checks", func() bool { return slices.Equal(b.Ejected(), []string{bAddr}) })
	ready.Store(false)
	waitFor(t, "the not-ready replica out", func() bool { return len(b.Ejected()) == 2 })
	if got := testutil.ToFloat64(b.metrics.unhealthy.WithLabelValues(a)); got != 1 {
		t.Fatalf("unhealthy gauge %v, want 1", got)
	}
	ready.Store(true)
	waitFor(t, "the replica back", func() bool { return slices.Equal(b.Ejected(), []string{bAddr}) })
}

func TestHealthCheckValidates(t *testing.T) {
	r, err := NewStatic("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		hc   HealthCheck
	}{
		{name: "relative path", hc: HealthCheck{Path: "readyz"}},
		{name: "port", hc: HealthCheck{Path: "/readyz", Port: 70000}},
		{name: "interval", hc: HealthCheck{Path: "/readyz", Interval: -1}},
		{name: "timeout", hc: HealthCheck{Path: "/readyz", Timeout: -1}},
		{name: "thresholds", hc: HealthCheck{Path: "/readyz", HealthyThreshold: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := (Config{Resolver: r, HealthCheck: tt.hc}).Validate(); err == nil {
				t.Fatal("no error")
			}
		})
	}
	for _, c := range []Config{{Resolver: r, Ejection: Ejection{Timeouts: -1}}, {Resolver: r, RetryAfterMax: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
