package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	gbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	// Shoal's policies and the peers, registered with grpc-go's
	// balancer registry.
	"github.com/shoal-dev/shoal/grpcclient"
	"google.golang.org/grpc/balancer/leastrequest"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/balancer/weightedroundrobin"
)

// The modes of a run. Healthy is the baseline: every server at the healthy
// service time, round_robin over them.
const (
	modeHealthy    = "healthy"
	modePeakEWMA   = "shoal_peak_ewma"
	modeRoundRobin = "round_robin"
	modeLeastReq   = "least_request"
	modeWRR        = "weighted_round_robin"
)

var allModes = []string{modeHealthy, modePeakEWMA, modeRoundRobin, modeLeastReq, modeWRR}

// serviceConfig returns the service config that selects mode's policy.
//
// least_request keeps grpc-go's default of two choices (P2C on calls in
// flight), the same draw peak-EWMA makes. weighted_round_robin gets its
// shortest weight update period and a 1 s blackout instead of 10 s, so
// that its weights, from the servers' ORCA per-call reports, are in use
// well within the warm-up; everything else is grpc-go's default.
//
// ewma is shoal_peak_ewma's own config, "" or "{}" for its defaults.
func serviceConfig(mode, ewma string) (string, error) {
	var name, cfg string
	switch mode {
	case modeHealthy, modeRoundRobin:
		name, cfg = roundrobin.Name, `{}`
	case modePeakEWMA:
		name, cfg = grpcclient.PeakEWMA, cmp.Or(ewma, `{}`)
	case modeLeastReq:
		name, cfg = leastrequest.Name, `{"choiceCount": 2}`
	case modeWRR:
		name, cfg = weightedroundrobin.Name, `{"blackoutPeriod": "1s", "weightUpdatePeriod": "0.1s"}`
	default:
		return "", fmt.Errorf("grpcbalance: unknown mode %q (want one of %s)", mode, strings.Join(allModes, ", "))
	}
	b := gbalancer.Get(name)
	if b == nil {
		return "", fmt.Errorf("grpcbalance: balancer %q is not registered with grpc-go", name)
	}
	if p, ok := b.(gbalancer.ConfigParser); ok {
		if _, err := p.ParseConfig(json.RawMessage(cfg)); err != nil {
			return "", fmt.Errorf("grpcbalance: %s: %w", mode, err)
		}
	}
	return fmt.Sprintf(`{"loadBalancingConfig": [{%q: %s}]}`, name, cfg), nil
}

// dial returns a client of the servers at addrs using mode's policy. The
// addresses come from a manual resolver, so every policy sees the same
// four endpoints at once and nothing re-resolves during the run.
func dial(mode, ewma string, addrs []string) (*grpc.ClientConn, error) {
	sc, err := serviceConfig(mode, ewma)
	if err != nil {
		return nil, err
	}
	r := manual.NewBuilderWithScheme("grpcbalance")
	var st resolver.State
	for _, a := range addrs {
		addr := resolver.Address{Addr: a}
		st.Addresses = append(st.Addresses, addr)
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
	}
	r.InitialState(st)
	conn, err := grpc.NewClient("grpcbalance:///work",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
	)
	if err != nil {
		return nil, fmt.Errorf("grpcbalance: client for %s: %w", mode, err)
	}
	conn.Connect()
	return conn, nil
}
