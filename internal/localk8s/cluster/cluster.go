package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/clusterdns"
	"github.com/shoal-dev/shoal/internal/localk8s/ingress"
	"github.com/shoal-dev/shoal/internal/localk8s/kubeproxy"
)

// DefaultMaxPods is Config.MaxPods's default, the kubelet's.
const DefaultMaxPods = 110

// Defaults of Config.
var (
	DefaultPodNet      = netip.MustParsePrefix("127.0.1.0/24")
	DefaultServiceNet  = netip.MustParsePrefix("127.0.2.0/24")
	DefaultIngressAddr = "127.0.0.1:8080"
)

// DefaultDomain is the cluster domain names resolve under.
const DefaultDomain = "cluster.local"

// Config says what a Cluster runs and where.
type Config struct {
	// Objects are the objects to run; they must pass Validate.
	Objects *Objects
	// Binary resolves a container image to an executable. Required.
	Binary func(image string) (string, error)
	// RunDir holds the pods' logs and resolv.conf files. Required.
	RunDir string
	// PodNet and ServiceNet are the loopback prefixes pod IPs and Service
	// ClusterIPs come from. If zero, 127.0.1.0/24 and 127.0.2.0/24. The DNS
	// server takes the ServiceNet's .10, as kube-dns takes 10.96.0.10.
	PodNet, ServiceNet netip.Prefix
	// DNSPort is the DNS server's port. If zero, 53, the only port a
	// resolv.conf can name; binding it needs root, and without root the
	// pods get no cluster DNS (a warning says so).
	DNSPort uint16
	// IngressAddr is where the Ingress front door listens. If empty,
	// 127.0.0.1:8080; "-" turns it off.
	IngressAddr string
	// MaxPods bounds the pods run at once, terminating ones included (each
	// is a process of this machine), as the kubelet's --max-pods bounds a
	// node's: past it a pod is not created, and a FailedCreate warning on
	// its Deployment says why. If zero, 110, the kubelet's default.
	MaxPods int
	// BackOff and MaxBackOff are the restart back-off (kubelet's 10s and
	// 5m when zero).
	BackOff, MaxBackOff time.Duration
	// Autoscalers, when set, reports the autoscalers for snapshots and the
	// desired replicas in the history.
	Autoscalers func() []api.AutoscalerInfo
	Logger      *slog.Logger
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// Cluster runs a set of objects on this machine. Create it with New, bring
// it up with Start, and stop it by ending the context given to Run. It is
// the [api.Source] of `shoal up`'s API.
type Cluster struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	deploys  []*deployment
	pods     map[string]*pod // by namespace/name
	services []*service
	podIPs   *ipPool
	svcIPs   *ipPool
	events   eventLog
	history  []api.HistoryPoint
	loads    map[string]podLoad // by namespace/name
	stopping bool
	// backends are the ready endpoints of every Service port, read by the
	// Ingress on each request without the cluster's lock.
	backends atomic.Pointer[map[ingress.Backend][]netip.AddrPort]

	dns        *clusterdns.Server
	dnsAddr    netip.AddrPort
	ing        *ingress.Handler
	ingSrv     *http.Server
	ingLn      net.Listener
	proxies    []*kubeproxy.Proxy
	wake       chan struct{}
	podWG      sync.WaitGroup // pod terminations
	serveWG    sync.WaitGroup // the front doors' accept loops
	resolvConf map[string]string
}

var _ api.Source = (*Cluster)(nil)

// New checks cfg and returns a cluster that is not yet running.
func New(cfg Config) (*Cluster, error) {
	if cfg.Objects == nil || cfg.Binary == nil || cfg.RunDir == "" {
		return nil, errors.New("cluster: Config needs Objects, Binary and RunDir")
	}
	if err := cfg.Objects.Validate(); err != nil {
		return nil, err
	}
	if !cfg.PodNet.IsValid() {
		cfg.PodNet = DefaultPodNet
	}
	if !cfg.ServiceNet.IsValid() {
		cfg.ServiceNet = DefaultServiceNet
	}
	if cfg.DNSPort == 0 {
		cfg.DNSPort = 53
	}
	if cfg.IngressAddr == "" {
		cfg.IngressAddr = DefaultIngressAddr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxPods < 0 {
		return nil, fmt.Errorf("cluster: MaxPods %d is negative", cfg.MaxPods)
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = DefaultMaxPods
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dnsIP := nthAddr(cfg.ServiceNet, 10)
	c := &Cluster{
		cfg:        cfg,
		log:        log,
		pods:       map[string]*pod{},
		podIPs:     newIPPool(cfg.PodNet),
		svcIPs:     newIPPool(cfg.ServiceNet, dnsIP),
		loads:      map[string]podLoad{},
		wake:       make(chan struct{}, 1),
		dnsAddr:    netip.AddrPortFrom(dnsIP, cfg.DNSPort),
		resolvConf: map[string]string{},
	}
	c.events.max = 500
	for i := 0; i < 9; i++ { // keep .2 - .10 for the DNS server's neighbours
		c.svcIPs.used[nthAddr(cfg.ServiceNet, 2+i)] = true
	}
	for _, d := range cfg.Objects.Deployments {
		dep, err := newDeployment(d)
		if err != nil {
			return nil, err
		}
		c.deploys = append(c.deploys, dep)
	}
	for _, s := range cfg.Objects.Services {
		svc := &service{obj: s, namespace: nsOf(s.Namespace)}
		if s.Spec.ClusterIP != "None" {
			ip, err := c.svcIPs.get()
			if err != nil {
				return nil, err
			}
			svc.ip = ip
		}
		c.services = append(c.services, svc)
	}
	return c, nil
}

func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// DNSAddr is the address of the cluster's DNS server.
func (c *Cluster) DNSAddr() netip.AddrPort { return c.dnsAddr }

// Start binds the DNS server and the front doors and creates every
// Deployment's pods. On an error nothing it started is left running.
func (c *Cluster) Start() (err error) {
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(c.cfg.RunDir, "logs"), 0o755); err != nil {
		return fmt.Errorf("cluster: run folder: %w", err)
	}
	if err := c.startDNS(); err != nil {
		return err
	}
	for _, s := range c.services {
		if !s.ip.IsValid() {
			continue
		}
		for _, p := range s.obj.Spec.Ports {
			addr := netip.AddrPortFrom(s.ip, uint16(p.Port))
			px, err := kubeproxy.Listen(addr, kubeproxy.Config{Logger: c.log.With("service", s.namespace+"/"+s.obj.Name)})
			if err != nil {
				return fmt.Errorf("cluster: service %s/%s port %d: %w", s.namespace, s.obj.Name, p.Port, err)
			}
			c.proxies = append(c.proxies, px)
			s.proxies = append(s.proxies, px)
			c.serveWG.Go(func() {
				if err := px.Serve(); err != nil && !errors.Is(err, kubeproxy.ErrClosed) {
					c.log.Error("service front door stopped", "addr", addr, "err", err)
				}
			})
		}
	}
	if err := c.startIngress(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.deploys {
		for range d.replicas {
			if _, err := c.createPodLocked(d); err != nil {
				return err
			}
		}
		c.Event(d.namespace, "Normal", "ScalingReplicaSet", "deployment/"+d.name,
			fmt.Sprintf("Scaled up replica set %s-%s to %d", d.name, d.revision, d.replicas))
	}
	c.publishLocked()
	return nil
}

func (c *Cluster) startDNS() error {
	if os.Geteuid() != 0 && c.cfg.DNSPort == 53 {
		c.log.Warn("not root: no cluster DNS; the pods resolve Service names only if they are given addresses")
		return nil
	}
	srv, err := clusterdns.Start(clusterdns.Config{Addr: c.dnsAddr.String(), Domain: DefaultDomain, Logger: c.log.With("component", "dns")})
	if err != nil {
		return fmt.Errorf("cluster: dns: %w", err)
	}
	c.dns = srv
	namespaces := map[string]bool{}
	for _, d := range c.deploys {
		namespaces[d.namespace] = true
	}
	for ns := range namespaces {
		path := filepath.Join(c.cfg.RunDir, "resolv-"+ns+".conf")
		if err := os.WriteFile(path, clusterdns.ResolvConf(ns, c.dnsAddr.Addr(), DefaultDomain), 0o644); err != nil {
			return fmt.Errorf("cluster: resolv.conf: %w", err)
		}
		c.resolvConf[ns] = path
	}
	return nil
}

func (c *Cluster) startIngress() error {
	o := c.cfg.Objects
	if c.cfg.IngressAddr == "-" || len(o.Ingresses) == 0 && len(o.HTTPRoutes) == 0 {
		return nil
	}
	c.ing = ingress.New(ingress.Config{Logger: c.log.With("component", "ingress"), Endpoints: c.backendEndpoints})
	if err := c.ing.Update(o.Ingresses); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := c.ing.UpdateRoutes(o.Gateways, o.HTTPRoutes); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	ln, err := net.Listen("tcp", c.cfg.IngressAddr)
	if err != nil {
		return fmt.Errorf("cluster: ingress front door: %w", err)
	}
	c.ingLn = ln
	c.ingSrv = &http.Server{Handler: c.ing, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	c.serveWG.Go(func() {
		if err := c.ingSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("ingress front door stopped", "err", err)
		}
	})
	return nil
}

// IngressAddr is where the front door of the Ingresses and HTTPRoutes
// listens; empty without one.
func (c *Cluster) IngressAddr() string {
	if c.ingLn == nil {
		return ""
	}
	return c.ingLn.Addr().String()
}

func (c *Cluster) backendEndpoints(b ingress.Backend) []netip.AddrPort {
	if m := c.backends.Load(); m != nil {
		return (*m)[b]
	}
	return nil
}

// Run reconciles until ctx ends, then stops everything in order: the pods
// are terminated as the kubelet does (endpoints first), then the front
// doors and the DNS server close. Start must have succeeded.
func (c *Cluster) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	history := time.NewTicker(2 * time.Second)
	defer history.Stop()
	c.recordHistory()
	for {
		select {
		case <-ctx.Done():
			c.Stop()
			return
		case <-c.wake:
		case <-tick.C:
		case <-history.C:
			c.recordHistory()
		}
		c.mu.Lock()
		for _, d := range c.deploys {
			c.reconcileLocked(d)
		}
		c.publishLocked()
		c.mu.Unlock()
	}
}

func (c *Cluster) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Stop terminates every pod and closes what Start opened, waiting for all.
// Run calls it when its context ends; call it directly only for a cluster
// that was started but never run.
func (c *Cluster) Stop() {
	c.mu.Lock()
	c.stopping = true
	for _, p := range c.pods {
		c.terminateLocked(p, "Stopping")
	}
	c.publishLocked()
	c.mu.Unlock()
	c.podWG.Wait()
	if c.ingSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.ingSrv.Shutdown(ctx)
		cancel()
		_ = c.ingSrv.Close()
	} else if c.ingLn != nil {
		_ = c.ingLn.Close()
	}
	if c.ing != nil {
		// The pods are gone; drop the Ingress's keep-alive connections
		// to them so their goroutines end now.
		c.ing.CloseIdleConnections()
	}
	for _, px := range c.proxies {
		_ = px.Close()
	}
	c.serveWG.Wait()
	c.proxies = nil
	if c.dns != nil {
		_ = c.dns.Close()
		c.dns = nil
	}
}
