package k8sresolver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/shoal-dev/shoal/balancer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type cond struct{ ready, serving, terminating *bool }

var (
	yes = new(true)
	no  = new(false)
)

func ep(ip string, c cond) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: c.ready, Serving: c.serving, Terminating: c.terminating}}
}

func slice(name, svc string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(port)}},
		Endpoints:   eps,
	}
}

func TestEligible(t *testing.T) {
	twoPorts := slice("multi", "svc", 80, ep("10.0.0.9", cond{ready: yes}))
	twoPorts.Ports = append(twoPorts.Ports, discoveryv1.EndpointPort{Name: new("metrics"), Port: new(int32(9090))})
	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		port   string
		want   []string
	}{
		{name: "ready only", slices: []*discoveryv1.EndpointSlice{slice("a", "svc", 80,
			ep("10.0.0.1", cond{ready: yes}), ep("10.0.0.2", cond{ready: no, serving: no}))},
			want: []string{"10.0.0.1:80"}},
		{name: "unknown ready counts as ready", slices: []*discoveryv1.EndpointSlice{slice("a", "svc", 80,
			ep("10.0.0.1", cond{}))}, want: []string{"10.0.0.1:80"}},
		{name: "terminating serving ignored while ready remain", slices: []*discoveryv1.EndpointSlice{slice("a", "svc", 80,
			ep("10.0.0.1", cond{ready: yes}), ep("10.0.0.2", cond{ready: no, serving: yes, terminating: yes}))},
			want: []string{"10.0.0.1:80"}},
		{name: "terminating serving used when none ready", slices: []*discoveryv1.EndpointSlice{slice("a", "svc", 80,
			ep("10.0.0.1", cond{ready: no, serving: no}), ep("10.0.0.2", cond{ready: no, serving: yes, terminating: yes}),
			ep("10.0.0.3", cond{ready: no, serving: no, terminating: yes}))},
			want: []string{"10.0.0.2:80"}},
		{name: "nothing eligible", slices: []*discoveryv1.EndpointSlice{slice("a", "svc", 80,
			ep("10.0.0.1", cond{ready: no, serving: no, terminating: yes}))}, want: []string{}},
		{name: "duplicates across slices", slices: []*discoveryv1.EndpointSlice{
			slice("a", "svc", 80, ep("10.0.0.1", cond{ready: yes})),
			slice("b", "svc", 80, ep("10.0.0.1", cond{ready: yes}), ep("10.0.0.2", cond{ready: yes}))},
			want: []string{"10.0.0.1:80", "10.0.0.2:80"}},
		{name: "ipv6", slices: []*discoveryv1.EndpointSlice{slice("a", "svc", 80, ep("fd00::1", cond{ready: yes}))},
			want: []string{"[fd00::1]:80"}},
		{name: "several ports need a name", slices: []*discoveryv1.EndpointSlice{twoPorts}, want: []string{}},
		{name: "port by name", slices: []*discoveryv1.EndpointSlice{twoPorts}, port: "metrics", want: []string{"10.0.0.9:9090"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Eligible(tt.slices, tt.port, slog.New(slog.DiscardHandler))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Eligible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	cs := fake.NewClientset()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "valid", cfg: Config{Client: cs, Namespace: "default", Service: "svc"}, ok: true},
		{name: "no client", cfg: Config{Namespace: "default", Service: "svc"}},
		{name: "no namespace", cfg: Config{Client: cs, Service: "svc"}},
		{name: "no service", cfg: Config{Client: cs, Namespace: "default"}},
		{name: "negative resync", cfg: Config{Client: cs, Namespace: "default", Service: "svc", Resync: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// startReplicas starts HTTP servers on 127.0.0.2, .3, ... sharing a port,
// as pods of one Service do, and returns the port.
func startReplicas(t *testing.T, n int) int32 {
	t.Helper()
	port := 0
	for i := range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i+2), strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		name := ln.Addr().String()
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Served-By", name)
		})}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close(); <-done })
	}
	return int32(port)
}

func TestResolverFollowsEndpointSlices(t *testing.T) {
	port := startReplicas(t, 2)
	addr := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(int(port))) }
	cs := fake.NewClientset(
		slice("thumbnailer-abc", "thumbnailer", port, ep("127.0.0.2", cond{ready: yes}), ep("127.0.0.3", cond{ready: yes})),
		slice("other-xyz", "other", port, ep("127.0.0.9", cond{ready: yes})),
	)
	r, err := New(Config{Client: cs, Namespace: "default", Service: "thumbnailer", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	lb, err := balancer.New(balancer.Config{Resolver: r, Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	c := &http.Client{Transport: lb, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	served := func(n int) map[string]int {
		t.Helper()
		out := map[string]int{}
		for range n {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://thumbnailer/", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out[resp.Header.Get("X-Served-By")]++
		}
		return out
	}
	waitEndpoints := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !slices.Equal(lb.Endpoints(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("endpoints %v, want %v", lb.Endpoints(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	steps := []struct {
		name  string
		slice *discoveryv1.EndpointSlice
		want  []string
	}{
		{name: "both ready", want: []string{addr("127.0.0.2"), addr("127.0.0.3")}},
		{name: "one terminating while one is ready",
			slice: slice("thumbnailer-abc", "thumbnailer", port, ep("127.0.0.2", cond{ready: yes}),
				ep("127.0.0.3", cond{ready: no, serving: yes, terminating: yes})),
			want: []string{addr("127.0.0.2")}},
		{name: "none ready: the terminating one still serves",
			slice: slice("thumbnailer-abc", "thumbnailer", port, ep("127.0.0.2", cond{ready: no, serving: no}),
				ep("127.0.0.3", cond{ready: no, serving: yes, terminating: yes})),
			want: []string{addr("127.0.0.3")}},
		{name: "ready again",
			slice: slice("thumbnailer-abc", "thumbnailer", port, ep("127.0.0.2", cond{ready: yes}),
				ep("127.0.0.3", cond{ready: yes})),
			want: []string{addr("127.0.0.2"), addr("127.0.0.3")}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.slice != nil {
				if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, s.slice, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			waitEndpoints(s.want...)
			got := served(20)
			for a := range got {
				if !slices.Contains(s.want, a) {
					t.Fatalf("request served by %s, not in %v", a, s.want)
				}
			}
			if len(got) != len(s.want) {
				t.Fatalf("requests reached %v, want all of %v", got, s.want)
			}
		})
	}

	t.Run("slice deleted", func(t *testing.T) {
		if err := cs.DiscoveryV1().EndpointSlices("default").Delete(ctx, "thumbnailer-abc", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitEndpoints()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://thumbnailer/", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("request with no endpoints succeeded")
		}
	})
}
