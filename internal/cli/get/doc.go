// Package get implements `shoal get`: kubectl-style tables of the pods,
// services, autoscalers, deployments, ingresses and events of a running
// `shoal up`, read from its snapshot API.
//
// Without -n or -A, get shows the namespace the snapshot's objects live in
// when they all share one, else "default": `shoal up` of an overlay that
// sets a namespace needs no -n. Events are listed oldest first, as the
// snapshot keeps them. It reads the API with package api's Client.
package get
