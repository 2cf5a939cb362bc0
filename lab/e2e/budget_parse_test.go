//go:build e2e

package e2e

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

// The budget experiments' arithmetic, without a cluster (run by every
// `make e2e`; cheap).

func TestBudgetParseNFT(t *testing.T) {
	const rules = `table ip kube-proxy {
	chain service-ULMVA6XW-ns1/web/tcp/http {
		ip daddr 10.96.0.41 tcp dport 8080 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-5OJB2KTY-ns1/web/tcp/http__10.244.0.7/8080, 1 : goto endpoint-AAAA1111-ns1/web/tcp/http__10.244.0.9/8080 }
	}

	chain endpoint-5OJB2KTY-ns1/web/tcp/http__10.244.0.7/8080 {
		ip saddr 10.244.0.7 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.0.7:8080
	}

	chain endpoint-ZZZZ9999-ns1/web/tcp/http__10.244.0.3/8080 {
		meta l4proto tcp dnat to 10.244.0.3:8080
	}

	chain service-QQQQ2222-ns1/web-headless2/tcp/ {
		numgen random mod 1 vmap { 0 : goto endpoint-BBBB2222-ns1/web-headless2/tcp/__10.244.0.5/80 }
	}

	chain service-TAQX4EVT-ns3/echo/tcp/http {
		meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.0.48 . 8080, 1 : 10.244.0.50 . 8080 }
	}

	chain service-RRRR3333-ns2/web/tcp/http {
		numgen random mod 1 vmap {
			0 : goto endpoint-CCCC3333-ns2/web/tcp/http__10.244.0.6/8080 }
	}
}
`
	// kube-proxy v1.37 (the lab's) DNATs in the service chain itself: a
	// numgen map of address . port, or one dnat for one endpoint.
	const rules137 = `table ip kube-proxy {
	comment "rules for kube-proxy"
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.8.122 . tcp . 80 : goto service-YOZ4P4VM-shoal-lab/thumbnailer/tcp/http,
			     10.96.170.142 . tcp . 6379 : goto service-D2AG5SEU-shoal-lab/redis/tcp/redis }
	}

	chain service-YOZ4P4VM-shoal-lab/thumbnailer/tcp/http {
		meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.0.41 . 8080, 1 : 10.244.0.42 . 8080 }
	}

	chain service-OKH53MTT-shoal-lab/thumbnailer/tcp/grpc {
		meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 10.244.0.41 . 8082, 1 : 10.244.0.42 . 8082,
								      2 : 10.244.0.43 . 8082 }
	}

	chain service-D2AG5SEU-shoal-lab/redis/tcp/redis {
		meta l4proto tcp dnat to 10.244.0.34:6379
	}

	chain service-2QRHZV4L-default/kubernetes/tcp/https {
		meta l4proto tcp dnat to 10.199.0.1:6443
	}
}
`
	tests := []struct {
		name, rules, ns, svc string
		want                 []string
	}{
		{"the service chain's targets, not a stale endpoint chain", rules, "ns1", "web", []string{"10.244.0.7", "10.244.0.9"}},
		{"an unnamed port", rules, "ns1", "web-headless2", []string{"10.244.0.5"}},
		{"a vmap over two lines, another namespace", rules, "ns2", "web", []string{"10.244.0.6"}},
		{"a direct dnat map among endpoint chains", rules, "ns3", "echo", []string{"10.244.0.48", "10.244.0.50"}},
		{"no such service", rules, "ns1", "db", nil},
		{"v1.37: a numgen map, both ports of a Service", rules137, "shoal-lab", "thumbnailer", []string{"10.244.0.41", "10.244.0.42", "10.244.0.43"}},
		{"v1.37: one endpoint", rules137, "shoal-lab", "redis", []string{"10.244.0.34"}},
		{"v1.37: a host endpoint", rules137, "default", "kubernetes", []string{"10.199.0.1"}},
		{"v1.37: the service-ips map is not a chain", rules137, "shoal-lab", "gallery", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(budgetParseNFT(tc.rules, tc.ns, tc.svc)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBudgetTimelineSince(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tl budgetTimeline
	tl.record(t0, map[string]bool{"a": true, "b": true})
	tl.record(t0.Add(time.Second), map[string]bool{"a": true, "b": true}) // unchanged: not kept
	tl.record(t0.Add(3*time.Second), map[string]bool{"b": true})
	tl.record(t0.Add(5*time.Second), map[string]bool{"b": true, "c": true})
	tests := []struct {
		name    string
		key     string
		present bool
		from    time.Time
		want    time.Duration
		ok      bool
	}{
		{"a leaves", "a", false, t0.Add(time.Second), 2 * time.Second, true},
		{"c joins", "c", true, t0.Add(2 * time.Second), 3 * time.Second, true},
		{"already so at from", "b", true, t0.Add(4 * time.Second), 0, true},
		{"not yet", "b", false, t0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tl.since(tc.key, tc.present, tc.from)
			if got != tc.want || ok != tc.ok {
				t.Errorf("since(%s, %v) = %v, %v; want %v, %v", tc.key, tc.present, got, ok, tc.want, tc.ok)
			}
		})
	}
	if !tl.now("c") || tl.now("a") {
		t.Errorf("now: c %v, a %v; want true, false", tl.now("c"), tl.now("a"))
	}
}

func TestBudgetPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	p50, p99, mx := budgetPercentiles(ds)
	if p50 != 10*time.Second || p99 != 20*time.Second || mx != 20*time.Second {
		t.Errorf("p50 %v p99 %v max %v; want 10s 20s 20s", p50, p99, mx)
	}
	if p50, p99, mx := budgetPercentiles(nil); p50 != 0 || p99 != 0 || mx != 0 {
		t.Errorf("empty: %v %v %v", p50, p99, mx)
	}
}

func TestBudgetShareTimes(t *testing.T) {
	w := func(a, b, n1, n2 int) map[string]int { return map[string]int{"a": a, "b": b, "n1": n1, "n2": n2} }
	tests := []struct {
		name                         string
		ws                           []map[string]int
		first, sustained, lateShares string
	}{
		{
			name: "even from the third window",
			ws:   []map[string]int{w(10, 10, 0, 0), w(8, 8, 2, 2), w(5, 5, 5, 5), w(5, 5, 5, 5), w(5, 5, 5, 5)},
			// over all five windows n1 has 17 of 100, below 0.225.
			first: "3 s", sustained: "never in 5 s", lateShares: "0.25, 0.25",
		},
		{
			name:  "one new pod never",
			ws:    []map[string]int{w(10, 5, 5, 0), w(10, 5, 5, 0)},
			first: "never in 2 s", sustained: "never in 2 s", lateShares: "0.25, 0.00",
		},
		{
			name:  "just above 90% of fair",
			ws:    []map[string]int{w(28, 28, 23, 23), w(28, 28, 23, 23), w(28, 28, 23, 23), w(28, 28, 23, 23), w(28, 28, 23, 23), w(28, 28, 23, 23)},
			first: "1 s", sustained: "5 s", lateShares: "0.23, 0.23",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, sustained, late := budgetShareTimes(tc.ws, []string{"n1", "n2"}, 0.25, 0.9, 5, 2)
			if first != tc.first || sustained != tc.sustained || late != tc.lateShares {
				t.Errorf("got %q, %q, %q; want %q, %q, %q", first, sustained, late, tc.first, tc.sustained, tc.lateShares)
			}
		})
	}
}

func TestBudgetSafeDrain(t *testing.T) {
	s := time.Second
	ms := time.Millisecond
	leave := make([][]time.Duration, len(budgetStages))
	leave[budgetStageSlice] = []time.Duration{100 * ms, 200 * ms}
	leave[budgetStageProxy] = []time.Duration{300 * ms, 1200 * ms}
	leave[budgetStageClusterIPClient] = []time.Duration{400 * ms, 2100 * ms}
	leave[budgetStageDNS] = []time.Duration{20 * s, 31 * s}
	leave[budgetStageGallery] = []time.Duration{22 * s, 34 * s}
	clusterIP, headless := budgetSafeDrain(leave)
	if clusterIP != 3*s || headless != 34*s {
		t.Errorf("ClusterIP %v, headless %v; want 3s (2.1 s rounded up), 34s (a whole second stays)", clusterIP, headless)
	}
}

func TestBudgetRedialled(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newBudgetDials(2)
	d.add(0, t0.Add(-10*time.Second))
	d.add(1, t0.Add(-9*time.Second))
	if _, ok := d.redialled(t0); ok {
		t.Errorf("redialled before any dial after t0")
	}
	d.add(0, t0.Add(40*time.Second))
	d.add(0, t0.Add(95*time.Second)) // a second redial does not count
	if _, ok := d.redialled(t0); ok {
		t.Errorf("redialled with connection 1 not dialled again")
	}
	d.add(1, t0.Add(52*time.Second))
	if got, ok := d.redialled(t0); !ok || got != 52*time.Second {
		t.Errorf("redialled = %v, %v; want 52s, true", got, ok)
	}
	if _, ok := newBudgetDials(0).redialled(t0); ok {
		t.Errorf("no connections: redialled")
	}
}

func TestBudgetHistogram(t *testing.T) {
	const before = `# TYPE kubeproxy_network_programming_duration_seconds histogram
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="0.5"} 1
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="1"} 8
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="2"} 40
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="3"} 57
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 58
kubeproxy_network_programming_duration_seconds_sum{ip_family="IPv4"} 90.5
kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"} 58
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="1"} 3
`
	// 200 more changes: 150 within 1 s, 198 within 2 s, 199 within 3 s.
	const after = `kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="0.5"} 1
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="1"} 158
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="2"} 238
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="3"} 256
kubeproxy_network_programming_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 258
`
	les, b := budgetParseHistogram(before, budgetProgrammingName)
	les2, a := budgetParseHistogram(after, budgetProgrammingName)
	if want := []float64{0.5, 1, 2, 3, math.Inf(1)}; !slices.Equal(les, want) || !slices.Equal(les2, want) {
		t.Fatalf("bounds %v, %v; want %v", les, les2, want)
	}
	if want := []float64{1, 8, 40, 57, 58}; !slices.Equal(b, want) {
		t.Errorf("counts %v, want %v", b, want)
	}
	n, p99, all := budgetHistogramSince(les, b, a)
	if n != 200 || p99 != 2 || !math.IsInf(all, 1) {
		t.Errorf("n %d, p99 %g, all %g; want 200, 2 (198 of 200), +Inf (one beyond 3 s)", n, p99, all)
	}
	if n, _, _ := budgetHistogramSince(les, b, b); n != 0 {
		t.Errorf("no change: n %d", n)
	}
}
