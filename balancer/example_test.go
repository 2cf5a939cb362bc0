package balancer_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shoal-dev/shoal/balancer"
)

// A plain http.Client whose requests are spread over two replicas.
func Example() {
	var addrs []string
	for _, name := range []string{"a", "b"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Served-By", name)
		}))
		defer s.Close()
		addrs = append(addrs, s.Listener.Addr().String())
	}

	resolver, err := balancer.NewStatic(addrs...)
	if err != nil {
		fmt.Println(err)
		return
	}
	// No Transport: the balancer sends over a tuned one of its own
	// (client.NewTransport) and closes its idle connections on Close.
	lb, err := balancer.New(balancer.Config{
		Resolver: resolver,
		Policy:   balancer.RoundRobin{},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lb.Close()
	client := &http.Client{Transport: lb, Timeout: 10 * time.Second}

	served := map[string]int{}
	for range 4 {
		// The host name is kept as the Host header; the balancer dials
		// the chosen endpoint.
		resp, err := client.Get("http://thumbnailer/healthz")
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		served[resp.Header.Get("X-Served-By")]++
	}
	fmt.Println("a:", served["a"], "b:", served["b"])
	// Output: a: 2 b: 2
}

// Choosing a policy by name, as from a flag; consistent_hash hashes the
// X-Balance-Key header.
func ExamplePolicyByName() {
	for _, name := range []string{"round_robin", "peak_ewma", "consistent_hash", "fastest"} {
		p, err := balancer.PolicyByName(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(p.Name())
	}
	// Output:
	// round_robin
	// peak_ewma
	// consistent_hash
	// balancer: unknown policy "fastest" (want round_robin, peak_ewma or consistent_hash)
}

// A DNS resolver over a headless Service's records, and a policy that
// keeps each user on one replica. (Not run: it needs cluster DNS.)
func ExampleNewDNS() {
	resolver, err := balancer.NewDNS(balancer.DNSConfig{
		Host: "thumbnailer-headless.default.svc.cluster.local",
		Port: 8080,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	lb, err := balancer.New(balancer.Config{
		Resolver: resolver,
		Policy:   balancer.ConsistentHash{Key: balancer.HeaderKey("X-User")},
		// Pod readiness on the admin port, checked every 5s.
		HealthCheck: balancer.HealthCheck{Path: "/readyz", Port: 9090},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lb.Close()
	client := &http.Client{Transport: lb, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://thumbnailer/v1/status", nil)
	req.Header.Set("X-User", "alice")
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
}
