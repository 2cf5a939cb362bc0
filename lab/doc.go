// Package lab holds the single-node Kubernetes lab: the scripts that build
// and run it, the small programs it needs (image writer, pause, CRI reset,
// DNS probe, echo server) and its end-to-end tests under e2e.
package lab
