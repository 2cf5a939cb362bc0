// Package lint checks Kubernetes manifests for the mistakes that break even
// load balancing and elastic scaling: missing or misdirected probes, grace
// periods shorter than the drain, autoscalers that point at nothing or fight
// each other, Services that select no pods, disruption budgets that either
// block every eviction or protect nothing, and objects that never run as
// written: values the API server refuses, an object declared twice, an
// Ingress backend that names no Service; and the gRPC pitfalls: a gRPC port
// behind a per-connection balancer with no max connection age, a headless
// Service that hands gRPC clients pods that are not ready, an HTTP probe on
// a gRPC port; and Gateway API routes that lead nowhere: a backendRef to a
// missing Service or port, weights that sum to zero, parentRefs that name no
// Gateway or listener taking the route, hostnames no listener serves.
//
// Input is YAML files, folders of them, or kustomization directories, which
// are built in-process with sigs.k8s.io/kustomize/api, from local files only
// unless [Linter.AllowRemote] is set. Every document is first
// decoded strictly into its k8s.io/api type (KEDA's ScaledObject into
// [keda.ScaledObject], Gateway API kinds into sigs.k8s.io/gateway-api's
// types and then against the standard channel's schema, so experimental
// fields are refused as the API server would): an unknown, misspelled or duplicated field, or a
// value of the wrong type, is an error naming the file and line. Kinds that
// are neither built in nor known here are reported as notes and skipped.
// The types are those of [KubernetesVersion]; a field whose feature gate
// is off by default there is reported too (SH035, see [GatedFields]), as
// the API server drops such a field on create without an error.
//
// The decoded objects of one input (a file, the plain files of a folder, or
// one kustomize build) form a set, and the rules in [Rules] run over each
// set, so rules can relate objects: an autoscaler to its target, a Service to
// the pods it selects, a PodDisruptionBudget to the replicas it guards.
//
// An object opts out of rules with the annotation
//
//	shoal.dev/lint-ignore: "SH004,SH012"
//
// and declares how long its health handlers may take to answer with
//
//	shoal.dev/probe-budget: "2s"                  # every probe
//	shoal.dev/probe-budget: "/readyz=2s,/livez=1s" # per HTTP path
//
// on the workload or its pod template; a server that closes connections at
// an age it sets itself, rather than by the service kit's MAX_CONN_AGE,
// says so with
//
//	shoal.dev/max-conn-age: "5m"
package lint
