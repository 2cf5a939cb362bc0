// Package up is the `shoal up` command: it takes the manifests that go
// to a cluster and runs them on this machine with Kubernetes' semantics —
// pods as processes on their own loopback addresses, Services as front
// doors, cluster DNS, an Ingress and Gateway API front door, probes, rolling updates and autoscalers —
// and serves a live dashboard and the API that `shoal get` and `shoal
// rollout` talk to.
//
// The command reads its flags into a localk8s.Config and prints what
// localk8s.Run reports; package localk8s does the running.
package up
