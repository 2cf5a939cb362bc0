package deploy_test

import (
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/shoal-dev/shoal/deploy"
)

// TestAdminPortsStayPrivate checks, in the base and every overlay, that
// only the metrics Services carry the admin port and that NetworkPolicies
// give the thumbnailer's http and grpc ports to the gallery and both admin
// ports to the monitoring namespace alone.
func TestAdminPortsStayPrivate(t *testing.T) {
	for _, o := range append([]string{"base"}, deploy.Overlays()...) {
		dir := filepath.Join("overlays", o)
		if o == "base" {
			dir = "base"
		}
		t.Run(o, func(t *testing.T) {
			objs := objects(t, dir)
			for _, obj := range objs {
				svc, ok := obj.(*corev1.Service)
				if !ok {
					continue
				}
				metrics := svc.Name == "gallery-metrics" || svc.Name == "thumbnailer-metrics"
				for _, p := range svc.Spec.Ports {
					if admin := p.TargetPort.StrVal == "admin" || p.Port == 9090; admin != metrics {
						t.Errorf("Service %s: port %s (target %s): admin ports belong to the metrics Services only", svc.Name, p.Name, p.TargetPort.String())
					}
				}
			}
			policy := func(name string) *networkingv1.NetworkPolicy {
				return find(objs, func(n *networkingv1.NetworkPolicy) string { return n.Name }, name)
			}
			for _, app := range []string{"thumbnailer", "gallery"} {
				np := policy(app)
				if np == nil {
					t.Fatalf("no NetworkPolicy %s", app)
				}
				opened := map[string]bool{}
				for _, r := range np.Spec.Ingress {
					if len(r.Ports) != 1 {
						t.Fatalf("%s: rule %+v should name one port", app, r)
					}
					switch port := r.Ports[0].Port.StrVal; {
					case port == "admin":
						if len(r.From) != 1 || r.From[0].NamespaceSelector == nil || r.From[0].PodSelector != nil ||
							r.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
							t.Errorf("%s: admin port open to %+v, want the monitoring namespace only", app, r.From)
						}
					case (port == "http" || port == "grpc") && app == "thumbnailer":
						if len(r.From) != 1 || r.From[0].PodSelector == nil || r.From[0].NamespaceSelector != nil ||
							r.From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "gallery" {
							t.Errorf("thumbnailer: %s open to %+v, want the gallery's pods only", port, r.From)
						}
						opened[port] = true
					case port == "http":
					default:
						t.Errorf("%s: rule for unexpected port %q", app, port)
					}
				}
				if app == "thumbnailer" && (!opened["http"] || !opened["grpc"]) {
					t.Errorf("thumbnailer: the gallery should reach http and grpc; rules open %v", opened)
				}
			}
			if deployment(objs, "redis") != nil {
				if np := policy("redis"); np == nil || len(np.Spec.Ingress) != 1 ||
					np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "gallery" {
					t.Errorf("redis: want a NetworkPolicy letting only the gallery in: %+v", np)
				}
			}
		})
	}
}
