package api

import "time"

// Snapshot is the state of a running cluster at one moment, as served at
// GET [SnapshotPath] and shown by the dashboard and `shoal get`.
type Snapshot struct {
	Time        time.Time        `json:"time"`
	Deployments []DeploymentInfo `json:"deployments"`
	Pods        []PodInfo        `json:"pods"`
	Services    []ServiceInfo    `json:"services"`
	Ingresses   []IngressInfo    `json:"ingresses"`
	HTTPRoutes  []HTTPRouteInfo  `json:"httpRoutes,omitempty"`
	Autoscalers []AutoscalerInfo `json:"autoscalers"`
	// Events are the most recent events, oldest first.
	Events []Event `json:"events"`
	// History holds one point per deployment per sample (every few
	// seconds), oldest first, for the replicas-over-time chart.
	History []HistoryPoint `json:"history"`
}

// DeploymentInfo is one Deployment's status.
type DeploymentInfo struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Replicas is spec.replicas: what the Deployment (or its autoscaler) asks for.
	Replicas int32 `json:"replicas"`
	// Current counts the pods that exist and are not terminating; Ready,
	// Updated and Available as in DeploymentStatus.
	Current   int32 `json:"current"`
	Ready     int32 `json:"ready"`
	Updated   int32 `json:"updated"`
	Available int32 `json:"available"`
	// Revision is the pod-template-hash of the newest pod template.
	Revision string `json:"revision"`
}

// PodInfo is one pod's status and its recent load.
type PodInfo struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Deployment string `json:"deployment"`
	Revision   string `json:"revision"`
	IP         string `json:"ip"`
	// Phase is Pending, Running, Succeeded or Failed; Status is what
	// kubectl prints in STATUS (Running, ContainerCreating, CrashLoopBackOff,
	// Terminating, Error, ...).
	Phase       string    `json:"phase"`
	Status      string    `json:"status"`
	Ready       bool      `json:"ready"`
	Terminating bool      `json:"terminating"`
	Restarts    int32     `json:"restarts"`
	Created     time.Time `json:"created"`
	// PIDs are the container processes' PIDs, in container order (0 when
	// a container is not running).
	PIDs []int `json:"pids"`
	// CPU is the CPU usage in cores over the last metrics window and
	// CPURequest the sum of the containers' requests, in cores.
	CPU        float64 `json:"cpu"`
	CPURequest float64 `json:"cpuRequest"`
	// RPS, LatencyP50 and LatencyP99 (seconds) come from the pod's
	// /metrics over the last window; zero when unknown.
	RPS        float64 `json:"rps"`
	LatencyP50 float64 `json:"latencyP50"`
	LatencyP99 float64 `json:"latencyP99"`
}

// ServiceInfo is one Service and its ready endpoints.
type ServiceInfo struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Type is ClusterIP, or Headless for clusterIP: None.
	Type      string   `json:"type"`
	ClusterIP string   `json:"clusterIP"`
	Ports     []string `json:"ports"` // "80->8080/TCP"
	Endpoints []string `json:"endpoints"`
}

// IngressInfo is one Ingress rule path and where it sends requests.
type IngressInfo struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Host      string `json:"host"`
	Path      string `json:"path"`
	Backend   string `json:"backend"` // "service:port"
	// URL is where to reach the rule on this machine.
	URL string `json:"url"`
}

// HTTPRouteInfo is one match of one rule of a Gateway API HTTPRoute, for
// one hostname it serves, and where it sends requests.
type HTTPRouteInfo struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Rule      int    `json:"rule"` // index in spec.rules
	// Hostname is the route's hostname as intersected with its listener's,
	// "" for every host.
	Hostname string `json:"hostname"`
	// Match reads "PathPrefix /v1 GET headers=1 query=0".
	Match string `json:"match"`
	// Backends read "service:port weight=N".
	Backends []string `json:"backends"`
	// URL is where to reach the route on this machine, when its path is
	// not a regular expression.
	URL string `json:"url,omitempty"`
}

// Kinds of autoscaler in [AutoscalerInfo].
const (
	KindHPA          = "HorizontalPodAutoscaler"
	KindScaledObject = "ScaledObject"
)

// AutoscalerInfo is one HorizontalPodAutoscaler or ScaledObject and its
// state after its latest reconciliation, as the autoscalers' controller
// reports it.
type AutoscalerInfo struct {
	Kind      string `json:"kind"` // KindHPA or KindScaledObject
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Target is "deployment/NAME".
	Target  string `json:"target"`
	Min     int32  `json:"min"`
	Max     int32  `json:"max"`
	Current int32  `json:"current"`
	Desired int32  `json:"desired"`
	// Metrics reads as kubectl's TARGETS column, per metric
	// "NAME: CURRENT/TARGET", such as "cpu: 35%/70%".
	Metrics     string    `json:"metrics"`
	Reason      string    `json:"reason"`
	LastScale   time.Time `json:"lastScale,omitzero"`
	LastSync    time.Time `json:"lastSync,omitzero"`
	MetricError string    `json:"metricError,omitempty"`
}

// Event is a Kubernetes-style event.
type Event struct {
	Time time.Time `json:"time"`
	// Namespace is the namespace of the object the event is about;
	// events about no one namespaced object are in "default", where
	// Kubernetes records a cluster-scoped object's events.
	Namespace string `json:"namespace"`
	Type      string `json:"type"` // Normal or Warning
	Reason    string `json:"reason"`
	Object    string `json:"object"` // "pod/NAME", "deployment/NAME", "hpa/NAME"
	Message   string `json:"message"`
	Count     int    `json:"count"`
}

// HistoryPoint is one deployment's replica counts at one time.
type HistoryPoint struct {
	Time       time.Time `json:"time"`
	Namespace  string    `json:"namespace"`
	Deployment string    `json:"deployment"`
	Replicas   int32     `json:"replicas"`
	Ready      int32     `json:"ready"`
	// Desired is the autoscaler's latest desired count (0 without one).
	Desired int32 `json:"desired"`
}
