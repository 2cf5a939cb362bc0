// Package localk8s runs `shoal up`'s Kubernetes in one process: [Run]
// loads the manifests, turns their images into local programs, and owns
// the parts that run them — the cluster (package cluster: pods, Services,
// DNS, Ingress), the metrics collector and the autoscalers (package
// hpacontroller), and the API (package api) with the dashboard — until
// its context ends, when it stops them in a fixed order.
//
// Its subpackages are the parts; none of them imports another's internals,
// and none imports a command: the `shoal up` command (internal/cli/up)
// only reads flags into a [Config] and prints.
package localk8s
