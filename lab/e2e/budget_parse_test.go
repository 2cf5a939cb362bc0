//go:build e2e

package e2e

import (
	"maps"
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
	tests := []struct {
		name, ns, svc string
		want          []string
	}{
		{"the service chain's targets, not a stale endpoint chain", "ns1", "web", []string{"10.244.0.7", "10.244.0.9"}},
		{"an unnamed port", "ns1", "web-headless2", []string{"10.244.0.5"}},
		{"a vmap over two lines, another namespace", "ns2", "web", []string{"10.244.0.6"}},
		{"a direct dnat map (v1.37)", "ns3", "echo", []string{"10.244.0.48", "10.244.0.50"}},
		{"no such service", "ns1", "db", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(budgetParseNFT(rules, tc.ns, tc.svc)))
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
