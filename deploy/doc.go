// Package deploy is the Kubernetes deploy kit of the reference system: the
// kustomize bases of the thumbnailer and the gallery (the gallery behind a
// Gateway API Gateway and HTTPRoute), the overlays lab, keda, production,
// local, grpc (local with the gallery calling the thumbnailer over gRPC),
// ingress (production with an Ingress instead of the Gateway), headroom
// (local with the thumbnailer scaled on its shedder's utilisation,
// shed_utilization_ratio) and keda-headroom (keda, the same with a KEDA
// Prometheus trigger), and the monitoring configuration (Prometheus
// scrape config and rules, prometheus-adapter rules, a Grafana dashboard).
//
// The manifests are plain files meant for `kubectl apply -k`; this package
// embeds them so that tools such as `shoal up` can build an overlay without
// a checkout. See docs/deploy.md.
package deploy

import "embed"

// FS holds base/, overlays/ and monitoring/ as they are in the repository.
//
//go:embed base overlays monitoring
var FS embed.FS

// Overlays returns the names of the overlays, each a kustomization at
// overlays/NAME in [FS] and deploy/overlays/NAME on disk.
func Overlays() []string {
	return []string{"lab", "keda", "production", "local", "grpc", "ingress", "headroom", "keda-headroom"}
}
