// Package dashboard serves the live web page of `shoal up`: deployments,
// pods with their load, services and their endpoints, ingress URLs,
// autoscaler decisions, a replicas-over-time chart per deployment and the
// latest events, refreshed every second from the snapshot API.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary; it
// loads nothing from other origins, so it works offline.
package dashboard
