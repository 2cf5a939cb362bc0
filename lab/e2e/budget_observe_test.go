//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// The observers of the budget experiments (budget_test.go). Each records
// when a set of addresses changed, as seen from one place on the path
// from an endpoint change to traffic: the API (EndpointSlices, through a
// watch; the time is when the watch delivered the event), kube-proxy's
// rules (polled), CoreDNS's answer (polled), and the traffic itself
// (budget_traffic_test.go).

// ipTimeline is a set of keys (addresses or pod names) over time: a
// snapshot is kept only when the set changed.
type budgetTimeline struct {
	mu    sync.Mutex
	snaps []budgetSnapshot
}

type budgetSnapshot struct {
	at  time.Time
	set map[string]bool
}

// record adds the set as seen at at, when it differs from the last one.
func (tl *budgetTimeline) record(at time.Time, set map[string]bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if n := len(tl.snaps); n > 0 && budgetSameSet(tl.snaps[n-1].set, set) {
		return
	}
	tl.snaps = append(tl.snaps, budgetSnapshot{at: at, set: set})
}

func budgetSameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// now reports whether key is in the latest set.
func (tl *budgetTimeline) now(key string) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if n := len(tl.snaps); n > 0 {
		return tl.snaps[n-1].set[key]
	}
	return false
}

// since returns how long after from key's presence first equalled
// present: 0 when it already did at from, false when it has not yet.
func (tl *budgetTimeline) since(key string, present bool, from time.Time) (time.Duration, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	i := sort.Search(len(tl.snaps), func(i int) bool { return tl.snaps[i].at.After(from) })
	if i > 0 && tl.snaps[i-1].set[key] == present {
		return 0, true
	}
	for ; i < len(tl.snaps); i++ {
		if tl.snaps[i].set[key] == present {
			return tl.snaps[i].at.Sub(from), true
		}
	}
	return 0, false
}

// proxyMode is kube-proxy's mode in the lab: "iptables" unless the lab
// recorded another in LAB_DIR/proxy-mode.
func budgetProxyMode() string {
	b, err := os.ReadFile(filepath.Join(envOr("LAB_DIR", "/var/lib/shoal-lab"), "proxy-mode"))
	if m := strings.TrimSpace(string(b)); err == nil && m != "" {
		return m
	}
	return "iptables"
}

// proxyEndpoints reads the endpoint addresses kube-proxy's rules send
// ns/svc's traffic to, in the given mode.
func budgetProxyEndpoints(ctx context.Context, mode, ns, svc string) (map[string]bool, error) {
	switch mode {
	case "iptables":
		return iptablesEndpoints(ctx, ns, svc)
	case "nftables":
		out, err := exec.CommandContext(ctx, "nft", "list", "table", "ip", "kube-proxy").Output()
		if err != nil {
			return nil, fmt.Errorf("read kube-proxy's rules: nft list table ip kube-proxy: %w", err)
		}
		return budgetParseNFT(string(out), ns, svc), nil
	}
	return nil, fmt.Errorf("kube-proxy mode %q: want iptables or nftables", mode)
}

// nftEndpointRE matches an endpoint chain's name as kube-proxy's nftables
// mode spells it: endpoint-HASH-NS/SVC/PROTO/PORTNAME__IP/PORT.
var budgetNFTEndpointRE = regexp.MustCompile(`endpoint-[A-Z0-9]+-([^/\s]+)/([^/\s]+)/[a-z]+/[^_\s]*__([0-9a-fA-F.:]+)/\d+`)

// budgetNFTDNATRE matches an element of the map that a service chain dnats
// through directly, "N : IP . PORT": kube-proxy v1.37 writes that instead
// of a jump to endpoint chains when no endpoint needs its own rules.
var budgetNFTDNATRE = regexp.MustCompile(`\b\d+ : ([0-9.]+) \. \d+\b`)

// budgetParseNFT picks the endpoints of ns/svc out of `nft list table ip
// kube-proxy`: the endpoint chains that a service chain of ns/svc jumps to
// (its numgen vmap) or the addresses it dnats to directly (its numgen
// map), not every endpoint chain, for
// kube-proxy keeps the chains of terminating endpoints a while after it
// stopped sending new connections to them.
func budgetParseNFT(rules, ns, svc string) map[string]bool {
	ips := map[string]bool{}
	inService := false
	for _, line := range strings.Split(rules, "\n") {
		line = strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(line, "chain "); ok {
			name = strings.TrimSuffix(strings.TrimSpace(name), "{")
			inService = strings.HasPrefix(name, "service-") && strings.Contains(name, "-"+ns+"/"+svc+"/")
			continue
		}
		if !inService {
			continue
		}
		for _, m := range budgetNFTEndpointRE.FindAllStringSubmatch(line, -1) {
			if m[1] == ns && m[2] == svc {
				ips[m[3]] = true
			}
		}
		for _, m := range budgetNFTDNATRE.FindAllStringSubmatch(line, -1) {
			ips[m[1]] = true
		}
	}
	return ips
}

// pollSets calls read every interval until ctx ends, recording each
// answer in tl; failed reads are skipped (the next poll retries). The
// time recorded is when the answer came back.
func budgetPoll(ctx context.Context, wg *sync.WaitGroup, interval time.Duration, tl *budgetTimeline, read func(context.Context) (map[string]bool, error)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if set, err := read(ctx); err == nil {
				tl.record(time.Now(), set)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// dnsAddrs asks the lab's CoreDNS for host's addresses; a name with no
// address (every pod gone) is the empty set, not an error.
func budgetDNSAddrs(ctx context.Context, host string) (map[string]bool, error) {
	set, err := clusterDNSAddrs(ctx, host)
	var dnsErr *net.DNSError
	if err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return map[string]bool{}, nil
	}
	return set, err
}

// sliceWatch follows the EndpointSlices of a namespace and keeps, per
// Service, the ready addresses over time, timed by the watch's delivery.
type budgetSliceWatch struct {
	mu     sync.Mutex
	slices map[string]map[string]bool // slice name → ready addresses
	owner  map[string]string          // slice name → Service
	ready  map[string]*budgetTimeline // Service → ready addresses
}

func (l *lab) budgetWatchSlices(ctx context.Context, wg *sync.WaitGroup, ns string, services ...string) *budgetSliceWatch {
	sw := &budgetSliceWatch{slices: map[string]map[string]bool{}, owner: map[string]string{}, ready: map[string]*budgetTimeline{}}
	for _, s := range services {
		sw.ready[s] = &budgetTimeline{}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			list, err := l.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				_ = waitCtx(ctx, time.Second)
				continue
			}
			for i := range list.Items {
				sw.update(time.Now(), &list.Items[i], false)
			}
			w, err := l.client.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
			if err != nil {
				_ = waitCtx(ctx, time.Second)
				continue
			}
			for ev := range w.ResultChan() {
				if s, ok := ev.Object.(*discoveryv1.EndpointSlice); ok {
					sw.update(time.Now(), s, ev.Type == watch.Deleted)
				}
			}
			w.Stop()
		}
	}()
	return sw
}

func (sw *budgetSliceWatch) update(at time.Time, s *discoveryv1.EndpointSlice, deleted bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	svc := s.Labels[discoveryv1.LabelServiceName]
	tl := sw.ready[svc]
	if tl == nil {
		return
	}
	sw.owner[s.Name] = svc
	ready := map[string]bool{}
	if !deleted {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				for _, a := range e.Addresses {
					ready[a] = true
				}
			}
		}
	}
	sw.slices[s.Name] = ready
	all := map[string]bool{}
	for name, set := range sw.slices {
		if sw.owner[name] == svc {
			for a := range set {
				all[a] = true
			}
		}
	}
	tl.record(at, all)
}

// podWatch follows a namespace's pods: each pod's address and when the
// watch first delivered it Ready.
type budgetPodWatch struct {
	mu      sync.Mutex
	ip      map[string]string
	readyAt map[string]time.Time
}

func (l *lab) budgetWatchPods(ctx context.Context, wg *sync.WaitGroup, ns string) *budgetPodWatch {
	pw := &budgetPodWatch{ip: map[string]string{}, readyAt: map[string]time.Time{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			list, err := l.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				_ = waitCtx(ctx, time.Second)
				continue
			}
			for i := range list.Items {
				pw.update(time.Now(), &list.Items[i])
			}
			w, err := l.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
			if err != nil {
				_ = waitCtx(ctx, time.Second)
				continue
			}
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok {
					pw.update(time.Now(), p)
				}
			}
			w.Stop()
		}
	}()
	return pw
}

func (pw *budgetPodWatch) update(at time.Time, p *corev1.Pod) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if p.Status.PodIP != "" {
		pw.ip[p.Name] = p.Status.PodIP
	}
	if _, seen := pw.readyAt[p.Name]; !seen && podReady(p) && p.DeletionTimestamp == nil {
		pw.readyAt[p.Name] = at
	}
}

// ready returns when the pod was first seen Ready, and its address.
func (pw *budgetPodWatch) ready(name string) (time.Time, string, bool) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	at, ok := pw.readyAt[name]
	return at, pw.ip[name], ok
}

// percentiles returns the nearest-rank p50 and p99 and the maximum of ds.
func budgetPercentiles(ds []time.Duration) (p50, p99, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return rank(0.50), rank(0.99), s[len(s)-1]
}
