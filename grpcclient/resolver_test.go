package grpcclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/grpcclient"
)

// recordingCC is a resolver.ClientConn that keeps the address sets.
type recordingCC struct {
	resolver.ClientConn // unimplemented methods panic
	mu                  sync.Mutex
	states              [][]string
	errs                []error
	updated             chan struct{}
}

func newRecordingCC() *recordingCC { return &recordingCC{updated: make(chan struct{}, 100)} }

func (cc *recordingCC) UpdateState(s resolver.State) error {
	var addrs []string
	for _, a := range s.Addresses {
		addrs = append(addrs, a.Addr)
	}
	cc.mu.Lock()
	cc.states = append(cc.states, addrs)
	cc.mu.Unlock()
	cc.updated <- struct{}{}
	return nil
}

func (cc *recordingCC) ReportError(err error) {
	cc.mu.Lock()
	cc.errs = append(cc.errs, err)
	cc.mu.Unlock()
	cc.updated <- struct{}{}
}

func (cc *recordingCC) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

func (cc *recordingCC) last() []string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.states) == 0 {
		return nil
	}
	return cc.states[len(cc.states)-1]
}

func target(t *testing.T, s string) resolver.Target {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return resolver.Target{URL: *u}
}

func TestResolverTargets(t *testing.T) {
	var got []string
	k8s := grpcclient.EndpointSlices(func(svc, ns, port string) (balancer.Resolver, error) {
		got = []string{svc, ns, port}
		return balancer.NewStatic("10.0.0.1:8082")
	})
	dns := grpcclient.DNS(balancer.DNSConfig{Logger: discard})
	for _, tc := range []struct {
		name    string
		builder resolver.Builder
		target  string
		want    []string // k8s: service, namespace, port
		err     bool
	}{
		{name: "k8s", builder: k8s, target: "k8s:///thumbnailer.media:grpc", want: []string{"thumbnailer", "media", "grpc"}},
		{name: "k8s without namespace", builder: k8s, target: "k8s:///thumbnailer:8082", want: []string{"thumbnailer", "", "8082"}},
		{name: "k8s with authority", builder: k8s, target: "k8s://api/thumbnailer:8082", err: true},
		{name: "k8s without port", builder: k8s, target: "k8s:///thumbnailer", err: true},
		{name: "dns", builder: dns, target: "dns:///thumbnailer-headless:8082"},
		{name: "dns with server", builder: dns, target: "dns://127.0.0.1:5353/thumbnailer-headless:8082"},
		{name: "dns without port", builder: dns, target: "dns:///thumbnailer-headless", err: true},
		{name: "dns bad port", builder: dns, target: "dns:///thumbnailer-headless:http", err: true},
		{name: "dns bad server", builder: dns, target: "dns://nameserver/thumbnailer-headless:8082", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			r, err := tc.builder.Build(target(t, tc.target), newRecordingCC(), resolver.BuildOptions{})
			if tc.err {
				if err == nil {
					r.Close()
					t.Fatal("Build succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			r.Close() // twice is fine
			if tc.want != nil && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("resolver made for %q, want %q", got, tc.want)
			}
		})
	}
}

// resolveNower is a balancer.Resolver that reports a new set each time
// it is asked to resolve now.
type resolveNower struct {
	now chan struct{}
	n   int
}

func (r *resolveNower) ResolveNow() {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

func (r *resolveNower) Resolve(ctx context.Context, update func([]string)) error {
	for {
		r.n++
		update([]string{fmt.Sprintf("10.0.0.%d:80", r.n)})
		select {
		case <-ctx.Done():
			return nil
		case <-r.now:
		}
	}
}

// TestAdapter: a resolver's sets reach the ClientConn, ResolveNow reaches
// the resolver, an error ends up in ReportError, and Close waits.
func TestAdapter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wait := func(cc *recordingCC) {
		t.Helper()
		select {
		case <-cc.updated:
		case <-ctx.Done():
			t.Fatal("no update")
		}
	}
	rn := &resolveNower{now: make(chan struct{}, 1)}
	b := grpcclient.NewResolverBuilder("test", func(resolver.Target) (balancer.Resolver, error) { return rn, nil })
	cc := newRecordingCC()
	r, err := b.Build(target(t, "test:///x"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wait(cc)
	if got := cc.last(); len(got) != 1 || got[0] != "10.0.0.1:80" {
		t.Errorf("first set %v", got)
	}
	r.ResolveNow(resolver.ResolveNowOptions{})
	wait(cc)
	if got := cc.last(); len(got) != 1 || got[0] != "10.0.0.2:80" {
		t.Errorf("set after ResolveNow %v", got)
	}
	r.Close()

	failing := errors.New("resolver broke")
	b = grpcclient.NewResolverBuilder("test", func(resolver.Target) (balancer.Resolver, error) {
		return resolverFunc(func(context.Context, func([]string)) error { return failing }), nil
	})
	cc = newRecordingCC()
	r, err = b.Build(target(t, "test:///x"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wait(cc)
	r.Close()
	if len(cc.errs) != 1 || !errors.Is(cc.errs[0], failing) {
		t.Errorf("errors reported %v, want %v", cc.errs, failing)
	}
}

type resolverFunc func(context.Context, func([]string)) error

func (f resolverFunc) Resolve(ctx context.Context, update func([]string)) error {
	return f(ctx, update)
}

// TestK8sTarget: a k8s:/// target reaches servers through the resolver
// Config.EndpointSlices makes (here a static one standing in for
// balancer/k8sresolver's), and New refuses one without it.
func TestK8sTarget(t *testing.T) {
	port := freePort(t)
	b := startBackend(t, "127.0.0.1", port, backendOpts{})
	if _, err := grpcclient.New("k8s:///thumbnailer.media:grpc", grpcclient.Config{}); !errors.Is(err, grpcclient.ErrTarget) {
		t.Errorf("New without EndpointSlices = %v, want ErrTarget", err)
	}
	var asked string
	cc, err := grpcclient.New("k8s:///thumbnailer.media:grpc", grpcclient.Config{
		Logger: discard,
		EndpointSlices: func(svc, ns, p string) (balancer.Resolver, error) {
			asked = svc + "." + ns + ":" + p
			return balancer.NewStatic(b.addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := call(ctx, testClient(cc))
	if err != nil {
		t.Fatal(err)
	}
	if addr != b.addr || asked != "thumbnailer.media:grpc" {
		t.Errorf("answered by %s after asking for %s", addr, asked)
	}
}
