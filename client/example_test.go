package client_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
)

// A client that retries a request a shedding replica refused.
func Example() {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "resized %s", body)
	}))
	defer srv.Close()

	c, err := client.New(client.Config{MaxIdleConnsPerHost: 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := c.Post(srv.URL+"/v1/thumbnails", "image/png", strings.NewReader("cat.png"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", calls.Load(), "attempts")
	// Output: 200 resized cat.png after 2 attempts
}

// The full stack for calling a headless Service: retries over a
// peak-EWMA balancer over a tuned transport.
func Example_balanced() {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Served-By", "thumbnailer-0")
	}))
	defer replica.Close()

	// In a cluster: balancer.NewDNS(balancer.DNSConfig{Host:
	// "thumbnailer-headless.default.svc.cluster.local", Port: 8080}).
	resolver, err := balancer.NewStatic(replica.Listener.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	transport := client.NewTransport(client.Config{MaxIdleConnsPerHost: 32})
	defer transport.CloseIdleConnections()
	lb, err := balancer.New(balancer.Config{
		Resolver:  resolver,
		Policy:    balancer.PeakEWMA{},
		Transport: transport,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lb.Close()
	c, err := client.New(client.Config{Transport: lb})
	if err != nil {
		fmt.Println(err)
		return
	}

	resp, err := c.Get("http://thumbnailer/readyz")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("X-Served-By"))
	// Output: 200 thumbnailer-0
}
