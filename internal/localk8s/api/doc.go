// Package api is the contract of `shoal up`'s HTTP API, declared once for
// both sides: the snapshot types it serves, its paths, the [Handler] that
// serves them over a [Source], and the [Client] that `shoal get`, `shoal
// rollout`, the benchmarks and the tests read it with. The dashboard's
// script polls [SnapshotPath] from the same origin.
//
// It imports nothing of the cluster that serves it, so the cluster, the
// autoscalers that report into its snapshots and the clients all depend on
// it and never on each other.
package api
