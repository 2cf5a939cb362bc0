package up

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
)

// DefaultOverlay is what `shoal up` runs without -k or -f.
const DefaultOverlay = "deploy/overlays/local"

// NewCommand returns the `shoal up` command.
func NewCommand() *cobra.Command {
	var (
		o          localk8s.Config
		kustomize  string
		files      []string
		podNet     string
		serviceNet string
		dnsPort    uint16
		logLevel   string
	)
	cmd := &cobra.Command{
		Use:   "up [-k OVERLAY | -f FILE...]",
		Short: "Run Kubernetes manifests on this machine with Kubernetes' semantics",
		Long: `Run the Deployments, Services, Ingresses, Gateway API HTTPRoutes (with
their Gateways), HorizontalPodAutoscalers and ScaledObjects of a kustomization or of manifest files on this machine:
each pod is a set of processes on its own loopback address (127.0.1.x),
each ClusterIP Service a front door on 127.0.2.x that picks a ready pod
per connection, as kube-proxy does; Service names resolve through a
cluster DNS server on 127.0.2.10; the front door of the Ingresses and
HTTPRoutes (every Gateway listener) listens on 127.0.0.1:8080.
ko:// images are built with go build; map other images to local programs
with --image NAME=PATH. The dashboard and the API of 'shoal get' and
'shoal rollout' listen on 127.0.0.1:8090.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case kustomize != "" && len(files) > 0:
				return fmt.Errorf("up: -k and -f exclude each other")
			case len(files) > 0:
				o.Paths = files
			case kustomize != "":
				o.Paths = []string{kustomize}
			default:
				o.Paths = []string{DefaultOverlay}
			}
			var err error
			if o.PodNet, err = parsePrefix("--pod-net", podNet); err != nil {
				return err
			}
			if o.ServiceNet, err = parsePrefix("--service-net", serviceNet); err != nil {
				return err
			}
			o.DNSPort = dnsPort
			if o.MaxPods < 1 {
				return fmt.Errorf("up: --max-pods %d: want at least 1", o.MaxPods)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("up: --log-level %q: want debug, info, warn or error", logLevel)
			}
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			if err := Run(cmd.Context(), o, cmd.OutOrStdout()); err != nil {
				return fmt.Errorf("up: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&kustomize, "kustomize", "k", "", "kustomization directory to build and run (default "+DefaultOverlay+")")
	f.StringArrayVarP(&files, "filename", "f", nil, "manifest file or folder to run (repeatable)")
	f.StringArrayVar(&o.Images, "image", nil, "map an image to a local program, NAME=PATH; NAME is the image reference, without tag, or its last path element (repeatable; "+localk8s.DefaultImages+" unless NAME is given)")
	f.StringVar(&o.Addr, "addr", api.DefaultAddr, "address of the dashboard and the API")
	f.StringVar(&o.IngressAddr, "ingress-addr", cluster.DefaultIngressAddr, "address of the front door of Ingresses and HTTPRoutes (- for none)")
	f.StringVar(&o.Prometheus, "prometheus", "", "URL of a Prometheus that scrapes the pods; Pods metrics are then queried there with the prometheus-adapter rules")
	f.StringVar(&o.AdapterRules, "adapter-rules", "", "prometheus-adapter rules file (default: the deploy kit's)")
	f.DurationVar(&o.SyncPeriod, "hpa-sync-period", 15*time.Second, "how often autoscalers reconcile")
	f.DurationVar(&o.BackOff, "restart-backoff", 10*time.Second, "first restart back-off of a crashing container (doubles up to 5m)")
	f.StringVar(&o.RunDir, "run-dir", "", "folder for logs, binaries and generated files (default: a temporary folder, removed at exit)")
	f.BoolVar(&o.Keep, "keep", false, "keep the temporary run folder at exit")
	f.StringVar(&podNet, "pod-net", cluster.DefaultPodNet.String(), "loopback prefix of pod addresses")
	f.StringVar(&serviceNet, "service-net", cluster.DefaultServiceNet.String(), "loopback prefix of Service addresses; the DNS server takes its .10")
	f.IntVar(&o.MaxPods, "max-pods", cluster.DefaultMaxPods, "most pods run at once, as the kubelet's --max-pods; past it a pod is not created (a FailedCreate warning)")
	f.Uint16Var(&dnsPort, "dns-port", 53, "port of the cluster DNS server (only 53 reaches the pods' resolver)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func parsePrefix(flag, v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("up: %s %q: %w", flag, v, err)
	}
	if !p.Addr().Is4() || !p.Addr().IsLoopback() || p.Bits() > 28 {
		return netip.Prefix{}, fmt.Errorf("up: %s %s: want an IPv4 loopback prefix of at least 16 addresses, such as 127.0.1.0/24", flag, v)
	}
	return p.Masked(), nil
}
