package grpcclient

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	gbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/balancer"
)

// Names of the balancing policies this package registers with grpc-go,
// for a service config's loadBalancingConfig.
const (
	// PeakEWMA is package balancer's PeakEWMA: of two random ready
	// replicas, the one with the lower latency × (calls in flight + 1),
	// a call in flight counting less on a replica more than twice as
	// fast that serves several at once.
	PeakEWMA = "shoal_peak_ewma"
	// ConsistentHash is package balancer's ConsistentHash over the key
	// in the call's [BalanceKey] metadata, with bounded loads.
	ConsistentHash = "shoal_consistent_hash"
)

// BalanceKey is the outgoing metadata key whose first value
// [ConsistentHash] hashes: balancer.DefaultKeyHeader as gRPC spells
// metadata keys, in lower case.
const BalanceKey = "x-balance-key"

func init() {
	// grpc-go's balancer registry is grpc's: a policy is registered by
	// the package that defines it, once, at init.
	gbalancer.Register(builder{name: PeakEWMA})
	gbalancer.Register(builder{name: ConsistentHash})
}

// balanceKeyCtx carries the key WithBalanceKey set, so a pick reads it
// without copying the outgoing metadata.
type balanceKeyCtx struct{}

// WithBalanceKey returns ctx whose calls carry key as [BalanceKey]
// metadata: calls with the same key reach the same replica under
// [ConsistentHash]. Setting the metadata by other means works too, at
// the cost of a copy of the metadata on each pick.
func WithBalanceKey(ctx context.Context, key string) context.Context {
	ctx = metadata.AppendToOutgoingContext(ctx, BalanceKey, key)
	return context.WithValue(ctx, balanceKeyCtx{}, key)
}

// balanceKey returns the call's balancing key, or "".
func balanceKey(ctx context.Context) string {
	if k, ok := ctx.Value(balanceKeyCtx{}).(string); ok {
		return k
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		if v := md[BalanceKey]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("10s", "1.5s", "250ms").
type Duration time.Duration

// MarshalJSON writes d as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("grpcclient: duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("grpcclient: duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// PolicyConfig is the loadBalancingConfig of both policies, as JSON in a
// service config: {"shoal_peak_ewma": {"slowStart": "10s"}}. Zero or
// missing fields mean package balancer's defaults; a negative value is
// invalid.
type PolicyConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// SlowStart is the ramp of a replica that appears after the first
	// resolution. Zero means none.
	SlowStart Duration `json:"slowStart,omitempty"`
	// Decay of [PeakEWMA]'s moving average; zero means
	// balancer.DefaultDecay (10s).
	Decay Duration `json:"decay,omitempty"`
	// InitialLatency assumed of a replica not measured yet; zero means
	// balancer.DefaultInitialLatency (10ms).
	InitialLatency Duration `json:"initialLatency,omitempty"`
	// LoadFactor and Replicas of [ConsistentHash]; zero means
	// balancer.DefaultLoadFactor (1.25) and balancer.DefaultRingReplicas
	// (160).
	LoadFactor float64 `json:"loadFactor,omitempty"`
	Replicas   int     `json:"replicas,omitempty"`
	// Ejection is passive outlier detection, as balancer.Ejection.
	Ejection EjectionConfig `json:"ejection,omitzero"`
}

// EjectionConfig is balancer.Ejection in JSON.
type EjectionConfig struct {
	Disabled            bool     `json:"disabled,omitempty"`
	ConsecutiveFailures int      `json:"consecutiveFailures,omitempty"`
	Timeouts            int      `json:"timeouts,omitempty"`
	BaseTime            Duration `json:"baseTime,omitempty"`
	MaxTime             Duration `json:"maxTime,omitempty"`
	MaxPercent          int      `json:"maxPercent,omitempty"`
}

// validate reports the first invalid field of c, whichever policy it
// is for.
func (c *PolicyConfig) validate(name string) error {
	if err := c.tracker(ConsistentHash).Validate(); err != nil {
		return err
	}
	return c.tracker(name).Validate()
}

// tracker returns the balancer.TrackerConfig of c for policy name.
func (c *PolicyConfig) tracker(name string) balancer.TrackerConfig {
	var p balancer.Policy = balancer.PeakEWMA{Decay: time.Duration(c.Decay)}
	if name == ConsistentHash {
		p = balancer.ConsistentHash{LoadFactor: c.LoadFactor, Replicas: c.Replicas}
	}
	ej := c.Ejection
	return balancer.TrackerConfig{
		Policy: p,
		Ejection: balancer.Ejection{
			Disabled: ej.Disabled, ConsecutiveFailures: ej.ConsecutiveFailures, Timeouts: ej.Timeouts,
			BaseTime: time.Duration(ej.BaseTime), MaxTime: time.Duration(ej.MaxTime), MaxPercent: ej.MaxPercent,
		},
		SlowStart:      time.Duration(c.SlowStart),
		InitialLatency: time.Duration(c.InitialLatency),
	}
}

// builder builds one of this package's policies for each ClientConn:
// grpc-go's base balancer keeps a SubConn per address (connecting them
// all, reconnecting idle ones, watching their health), and this package's
// picker chooses among the ready ones with package balancer's picker over
// a balancer.Tracker of the ClientConn's own.
type builder struct{ name string }

var (
	_ gbalancer.Builder      = builder{}
	_ gbalancer.ConfigParser = builder{}
)

func (b builder) Name() string { return b.name }

func (b builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	c := &PolicyConfig{}
	if len(js) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(js)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("grpcclient: %s config: %w", b.name, err)
		}
	}
	if err := c.validate(b.name); err != nil {
		return nil, fmt.Errorf("grpcclient: %s config: %w", b.name, err)
	}
	return c, nil
}

func (b builder) Build(cc gbalancer.ClientConn, opts gbalancer.BuildOptions) gbalancer.Balancer {
	bal := &shoalBalancer{name: b.name}
	bal.Balancer = base.NewBalancerBuilder(b.name, bal, base.Config{HealthCheck: true}).Build(cc, opts)
	return bal
}

// shoalBalancer is base's balancer with a picker builder that owns the
// ClientConn's endpoint statistics. grpc-go calls it from one goroutine
// at a time.
type shoalBalancer struct {
	gbalancer.Balancer
	name    string
	cfg     *PolicyConfig
	tracker *balancer.Tracker
}

var _ base.PickerBuilder = (*shoalBalancer)(nil)

func (b *shoalBalancer) UpdateClientConnState(s gbalancer.ClientConnState) error {
	cfg, _ := s.BalancerConfig.(*PolicyConfig)
	if cfg == nil {
		cfg = &PolicyConfig{}
	}
	if b.tracker == nil || *cfg != *b.cfg {
		// A new configuration starts afresh; it comes with a new service
		// config, which is rare.
		tc := cfg.tracker(b.name)
		tc.Logger = loggerOf(s.ResolverState)
		t, err := balancer.NewTracker(tc)
		if err != nil {
			return fmt.Errorf("grpcclient: %s: %w", b.name, err)
		}
		b.tracker, b.cfg = t, cfg
	}
	addrs := make([]string, len(s.ResolverState.Addresses))
	for i, a := range s.ResolverState.Addresses {
		addrs[i] = a.Addr
	}
	b.tracker.Update(addrs)
	return b.Balancer.UpdateClientConnState(s)
}

// Build makes the picker over the ready SubConns.
func (b *shoalBalancer) Build(info base.PickerBuildInfo) gbalancer.Picker {
	if b.tracker == nil || len(info.ReadySCs) == 0 {
		return base.NewErrPicker(gbalancer.ErrNoSubConnAvailable)
	}
	type ready struct {
		e  *balancer.Endpoint
		sc gbalancer.SubConn
	}
	rs := make([]ready, 0, len(info.ReadySCs))
	for sc, sci := range info.ReadySCs {
		if e, ok := b.tracker.Endpoint(sci.Address.Addr); ok {
			rs = append(rs, ready{e, sc})
		}
	}
	if len(rs) == 0 {
		return base.NewErrPicker(gbalancer.ErrNoSubConnAvailable)
	}
	// Sorted, so a picker over the same set behaves the same whatever
	// the map's order.
	slices.SortFunc(rs, func(a, b ready) int { return strings.Compare(a.e.Addr(), b.e.Addr()) })
	p := &picker{t: b.tracker, hash: b.name == ConsistentHash,
		eps: make([]*balancer.Endpoint, len(rs)), scs: make([]gbalancer.SubConn, len(rs))}
	for i, r := range rs {
		p.eps[i], p.scs[i] = r.e, r.sc
	}
	if len(rs) > scanMax {
		p.index = make(map[*balancer.Endpoint]int, len(rs))
		for i, e := range p.eps {
			p.index[e] = i
		}
	}
	p.p = b.tracker.Build(p.eps)
	return p
}

// scanMax is the most endpoints over which a picker finds a picked
// endpoint's SubConn by scanning its slice, which is quicker than a map
// lookup for a few pointers.
const scanMax = 16

// picker is an immutable snapshot: package balancer's picker over the
// ready endpoints, and each endpoint's SubConn at the same index.
type picker struct {
	t     *balancer.Tracker
	p     balancer.Picker
	eps   []*balancer.Endpoint
	scs   []gbalancer.SubConn
	index map[*balancer.Endpoint]int // over scanMax endpoints
	hash  bool
}

// subConn returns the SubConn of e, one of the picker's endpoints.
func (p *picker) subConn(e *balancer.Endpoint) gbalancer.SubConn {
	if p.index != nil {
		return p.scs[p.index[e]]
	}
	for i, x := range p.eps {
		if x == e {
			return p.scs[i]
		}
	}
	return nil // unreachable: a Picker returns one of its endpoints
}

func (p *picker) Pick(info gbalancer.PickInfo) (gbalancer.PickResult, error) {
	var key string
	if p.hash {
		key = balanceKey(info.Ctx)
	}
	t := p.t
	pi := t.PickInfo(key)
	tr, _ := info.Ctx.Value(triedKey{}).(*tried)
	if tr != nil {
		pi.Tried = tr.list()
	}
	e := p.p.Pick(pi)
	if tr != nil {
		tr.add(e.Addr())
	}
	sc := p.subConn(e)
	start := pi.Now
	others := t.Start(e)
	// The one allocation of a pick: Done must know the endpoint, the
	// start and the calls in flight beside it, and grpc gives it nothing
	// else to carry them.
	return gbalancer.PickResult{SubConn: sc, Done: func(di gbalancer.DoneInfo) {
		t.Finish(e, start, others, outcomeOf(di))
	}}, nil
}

// pushbackKey is the trailer by which a server asks a client to retry
// later (or never); grpc-go honours it in its retries.
const pushbackKey = "grpc-retry-pushback-ms"

// outcomeOf judges a finished call, as package balancer does a response:
// an answer, even an application error, is a success; Unavailable,
// Internal and DataLoss are the endpoint failing; DeadlineExceeded is a
// timeout; a replica shedding (ResourceExhausted, or Unavailable with
// pushback) and the caller's cancellation count neither way; a call that
// never reached the endpoint is no evidence.
func outcomeOf(di gbalancer.DoneInfo) balancer.Outcome {
	if di.Err == nil {
		return balancer.OutcomeSuccess
	}
	if !di.BytesSent {
		return balancer.OutcomeAbandoned
	}
	switch status.Code(di.Err) {
	case codes.Unavailable:
		if len(di.Trailer[pushbackKey]) > 0 {
			return balancer.OutcomeShed
		}
		return balancer.OutcomeFailure
	case codes.Internal, codes.DataLoss:
		return balancer.OutcomeFailure
	case codes.DeadlineExceeded:
		return balancer.OutcomeTimeout
	case codes.ResourceExhausted:
		return balancer.OutcomeShed
	case codes.Canceled:
		return balancer.OutcomeAbandoned
	}
	return balancer.OutcomeSuccess
}
