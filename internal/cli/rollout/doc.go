// Package rollout implements `shoal rollout`: restart a Deployment of a
// running `shoal up` (a new pod template, rolled out like `kubectl rollout
// restart`), and follow a Deployment's rollout until it is complete.
//
// Without -n, the namespace is the one the API reports for the Deployment
// when exactly one Deployment has that name, else "default".
//
// A rollout is complete when every replica runs the newest pod template
// (updated == replicas), no pod of an older template is left that is not
// already terminating, and all replicas are ready and available. As with
// kubectl, old pods that are terminating do not hold the rollout up.
package rollout
