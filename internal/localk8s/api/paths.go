package api

import "net/url"

// DefaultAddr is where `shoal up` serves the API and the dashboard unless
// its --addr says otherwise, and where the clients look by default.
const DefaultAddr = "127.0.0.1:8090"

// The API's paths. Prefix is where a server mounts [Handler]; what is not
// under it is the dashboard's.
const (
	Prefix = "/api/"
	// SnapshotPath serves the cluster's [Snapshot] (GET).
	SnapshotPath = "/api/v1/snapshot"
	// RestartPattern restarts a Deployment's pods (POST), as `kubectl
	// rollout restart`; in net/http's pattern syntax. [RestartPath] fills
	// it in.
	RestartPattern = "/api/v1/namespaces/{ns}/deployments/{name}/restart"
)

// RestartPath is RestartPattern for one Deployment, its segments escaped.
func RestartPath(namespace, name string) string {
	return "/api/v1/namespaces/" + url.PathEscape(namespace) + "/deployments/" + url.PathEscape(name) + "/restart"
}
