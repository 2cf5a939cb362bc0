// Package cluster runs Kubernetes objects on one machine: it keeps the
// objects' state, runs the deployment controller (replica sets, rolling
// updates), turns ready pods into Service endpoints for the front doors and
// the DNS server, and reports that state as the snapshots of `shoal up`'s API
// (package api).
package cluster
