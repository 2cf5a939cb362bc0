package grpcclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/shoal-dev/shoal/balancer"
)

// Resolver schemes this package's [New] handles.
const (
	SchemeDNS = "dns"
	SchemeK8s = "k8s"
)

// ErrTarget is wrapped by errors about a target this package cannot
// resolve.
var ErrTarget = errors.New("grpcclient: bad target")

// NewResolverBuilder returns a grpc-go resolver.Builder for scheme whose
// resolvers are package balancer's: for each ClientConn, newResolver makes
// a [balancer.Resolver] for the target, which runs in a goroutine of its
// own until the ClientConn closes its resolver (Close cancels it and waits
// for it). Every address set it reports becomes the ClientConn's; grpc's
// requests to resolve now (after a connection loss) reach it when it is a
// [balancer.ResolveNower].
//
// Pass the builder to one ClientConn with grpc.WithResolvers; nothing is
// registered globally.
func NewResolverBuilder(scheme string, newResolver func(resolver.Target) (balancer.Resolver, error)) resolver.Builder {
	return &resolverBuilder{scheme: scheme, newResolver: newResolver}
}

// DNS returns the builder of dns:///name:port targets: tmpl's settings
// (Interval, MinInterval, Timeout, Logger) with the target's name and port,
// and its authority, if any, as the nameserver ("dns://127.0.0.1:5353/
// name:port"). The name is looked up on tmpl.Interval and on connection
// loss, at most once per tmpl.MinInterval.
func DNS(tmpl balancer.DNSConfig) resolver.Builder {
	return NewResolverBuilder(SchemeDNS, func(t resolver.Target) (balancer.Resolver, error) {
		host, port, err := splitHostPort(t.Endpoint())
		if err != nil {
			return nil, fmt.Errorf("%w: %q: want dns://[server]/name:port: %w", ErrTarget, t.String(), err)
		}
		cfg := tmpl
		cfg.Host, cfg.Port, cfg.Nameserver = host, port, t.URL.Host
		return balancer.NewDNS(cfg)
	})
}

// EndpointSlices returns the builder of k8s:///service.namespace:port
// targets, whose resolvers newResolver makes from the Service's name, its
// namespace ("" when the target names none) and its port (a name or a
// number): package balancer/k8sresolver's Targets is one.
func EndpointSlices(newResolver func(service, namespace, port string) (balancer.Resolver, error)) resolver.Builder {
	return NewResolverBuilder(SchemeK8s, func(t resolver.Target) (balancer.Resolver, error) {
		svcNS, port, err := net.SplitHostPort(t.Endpoint())
		if t.URL.Host != "" || err != nil || svcNS == "" || port == "" {
			return nil, fmt.Errorf("%w: %q: want k8s:///service.namespace:port", ErrTarget, t.String())
		}
		svc, ns, _ := strings.Cut(svcNS, ".")
		return newResolver(svc, ns, port)
	})
}

func splitHostPort(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || host == "" || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q is not name:port", s)
	}
	return host, port, nil
}

type resolverBuilder struct {
	scheme      string
	newResolver func(resolver.Target) (balancer.Resolver, error)
	// attrs go with every address set, to the ClientConn's balancer:
	// New passes its logger this way.
	attrs *attributes.Attributes
}

// loggerKey is the resolver.State attribute holding the *slog.Logger the
// policies log with.
type loggerKey struct{}

// withLogger returns b sending log to the ClientConn's balancer.
func withLogger(b resolver.Builder, log *slog.Logger) resolver.Builder {
	rb := *b.(*resolverBuilder)
	rb.attrs = rb.attrs.WithValue(loggerKey{}, log)
	return &rb
}

// loggerOf returns the logger New passed along with st, or nil.
func loggerOf(st resolver.State) *slog.Logger {
	log, _ := st.Attributes.Value(loggerKey{}).(*slog.Logger)
	return log
}

func (b *resolverBuilder) Scheme() string { return b.scheme }

func (b *resolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	r, err := b.newResolver(t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &adapter{r: r, attrs: b.attrs, cancel: cancel, done: make(chan struct{})}
	go a.run(ctx, cc)
	return a, nil
}

// adapter runs one balancer.Resolver for one ClientConn.
type adapter struct {
	r      balancer.Resolver
	attrs  *attributes.Attributes
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (a *adapter) run(ctx context.Context, cc resolver.ClientConn) {
	defer close(a.done)
	err := a.r.Resolve(ctx, func(addrs []string) {
		st := resolver.State{Addresses: make([]resolver.Address, len(addrs)), Attributes: a.attrs}
		for i, addr := range addrs {
			st.Addresses[i] = resolver.Address{Addr: addr}
		}
		// An empty set is refused (ErrBadResolverState); the resolver
		// asks again soon on its own, so the error needs no answer.
		_ = cc.UpdateState(st)
	})
	if err != nil && ctx.Err() == nil {
		cc.ReportError(fmt.Errorf("grpcclient: resolver stopped: %w", err))
	}
}

// ResolveNow asks the resolver for a fresh resolution, if it can.
func (a *adapter) ResolveNow(resolver.ResolveNowOptions) {
	if rn, ok := a.r.(balancer.ResolveNower); ok {
		rn.ResolveNow()
	}
}

// Close stops the resolver and waits for it.
func (a *adapter) Close() {
	a.once.Do(func() {
		a.cancel()
		<-a.done
	})
}
