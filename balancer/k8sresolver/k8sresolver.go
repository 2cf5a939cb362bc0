package k8sresolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/shoal-dev/shoal/balancer"
)

// Config selects the Service whose endpoints are resolved. Client,
// Namespace and Service are required; every other zero value means the
// documented default, and a negative Resync is invalid.
type Config struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Namespace of the Service. Required.
	Namespace string
	// Service name, matched through the kubernetes.io/service-name label
	// EndpointSlices carry. Required.
	Service string
	// PortName picks the port by its name in the Service. Empty means the
	// slice's only port; slices with several ports then need a name.
	PortName string
	// Resync is the informer's resync period. Zero means the default,
	// none: watch events alone keep the set current.
	Resync time.Duration
	// Logger receives slices it cannot use. Nil means slog.Default().
	Logger *slog.Logger
}

// Resolver is a [balancer.Resolver] over a Service's EndpointSlices.
type Resolver struct {
	cfg Config
}

var _ balancer.Resolver = (*Resolver)(nil)

// Validate reports the first missing or invalid field of c.
func (c Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("k8sresolver: Client is nil")
	case c.Namespace == "":
		return errors.New("k8sresolver: Namespace is empty")
	case c.Service == "":
		return errors.New("k8sresolver: Service is empty")
	case c.Resync < 0:
		return fmt.Errorf("k8sresolver: Resync %v is negative", c.Resync)
	}
	return nil
}

// withDefaults returns c with its zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// New returns a resolver, or an error naming the missing or invalid field.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Resolver{cfg: cfg.withDefaults()}, nil
}

// Resolve watches the Service's EndpointSlices and reports the eligible
// addresses each time they change, until ctx is done.
func (r *Resolver) Resolve(ctx context.Context, update func([]string)) error {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: r.cfg.Service})
	selector := sel.String()
	factory := informers.NewSharedInformerFactoryWithOptions(r.cfg.Client, r.cfg.Resync,
		informers.WithNamespace(r.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := factory.Discovery().V1().EndpointSlices()
	lister := inf.Lister().EndpointSlices(r.cfg.Namespace)

	// Handlers run on the informer's goroutine, one at a time; the mutex
	// keeps the "report only changes" state honest all the same.
	var (
		mu       sync.Mutex
		last     []string
		reported bool
	)
	recompute := func() {
		list, err := lister.List(sel)
		if err != nil {
			r.cfg.Logger.Warn("k8sresolver: listing endpoint slices", "err", err)
			return
		}
		addrs := Eligible(list, r.cfg.PortName, r.cfg.Logger)
		mu.Lock()
		defer mu.Unlock()
		if reported && slices.Equal(addrs, last) {
			return
		}
		last, reported = addrs, true
		update(addrs)
	}
	reg, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { recompute() },
		UpdateFunc: func(any, any) { recompute() },
		DeleteFunc: func(any) { recompute() },
	})
	if err != nil {
		return fmt.Errorf("k8sresolver: add event handler: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil // ctx ended first
	}
	// An empty Service fires no events: report the (empty) set once.
	recompute()
	<-ctx.Done()
	return nil
}

// Eligible returns the sorted "ip:port" addresses that should receive
// traffic, as kube-proxy decides: endpoints whose ready condition holds
// (or is unknown); only when there are none, endpoints that are
// terminating but still serving, so a Service that is rolling over
// completely keeps answering.
func Eligible(list []*discoveryv1.EndpointSlice, portName string, log *slog.Logger) []string {
	var ready, serving []string
	for _, s := range list {
		port, ok := pickPort(s, portName)
		if !ok {
			if log != nil {
				log.Warn("k8sresolver: endpoint slice has no usable port", "slice", s.Name, "port", portName)
			}
			continue
		}
		for _, ep := range s.Endpoints {
			c := ep.Conditions
			isReady := c.Ready == nil || *c.Ready
			isServing := c.Serving == nil && isReady || c.Serving != nil && *c.Serving
			isTerminating := c.Terminating != nil && *c.Terminating
			for _, a := range ep.Addresses {
				addr := net.JoinHostPort(a, strconv.Itoa(int(port)))
				switch {
				case isReady && !isTerminating:
					ready = append(ready, addr)
				case isServing && isTerminating:
					serving = append(serving, addr)
				}
			}
		}
	}
	out := ready
	if len(out) == 0 {
		out = serving
	}
	out = append([]string{}, out...)
	slices.Sort(out)
	return slices.Compact(out)
}

func pickPort(s *discoveryv1.EndpointSlice, name string) (int32, bool) {
	if name == "" {
		if len(s.Ports) == 1 && s.Ports[0].Port != nil {
			return *s.Ports[0].Port, true
		}
		return 0, false
	}
	for _, p := range s.Ports {
		if p.Name != nil && *p.Name == name && p.Port != nil {
			return *p.Port, true
		}
	}
	return 0, false
}

// Targets returns the resolver maker that package service's
// UpstreamConfig.EndpointSlices takes, for targets such as
// k8s:///thumbnailer.media:http: the Service's name, its namespace ("" means
// defaultNamespace, typically the pod's own from the downward API) and its
// port's name.
func Targets(client kubernetes.Interface, defaultNamespace string, log *slog.Logger) func(service, namespace, port string) (balancer.Resolver, error) {
	return func(service, namespace, port string) (balancer.Resolver, error) {
		if namespace == "" {
			namespace = defaultNamespace
		}
		return New(Config{Client: client, Namespace: namespace, Service: service, PortName: port, Logger: log})
	}
}
