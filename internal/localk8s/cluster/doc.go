// Package cluster runs Kubernetes objects on one machine: it keeps the
// objects' state, runs the deployment controller (replica sets, rolling
// updates), turns ready pods into Service endpoints for the front doors and
// the DNS server, and serves that state as the API of `shoal up`.
package cluster
