package lint

// Rule describes one check.
type Rule struct {
	// ID is stable and used in annotations, SARIF and --disable: "SH001".
	ID string `json:"id"`
	// Name is a short kebab-case title.
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	// Why says in one line what goes wrong in production.
	Why string `json:"why"`
	// Fix says in one line what to change.
	Fix string `json:"fix"`

	check func(*set) []Finding
}

// The rule IDs, for callers that run or match particular rules (see
// [Linter.Only]) without spelling an ID in a second place.
const (
	IDInvalidDocument            = "SH000"
	IDNoReadinessProbe           = "SH001"
	IDLivenessChecksDependencies = "SH002"
	IDProbeTimeoutBelowBudget    = "SH003"
	IDNoPreStop                  = "SH004"
	IDGracePeriodTooShort        = "SH005"
	IDUtilizationWithoutRequest  = "SH006"
	IDAutoscalerTargetMissing    = "SH007"
	IDMultipleAutoscalers        = "SH008"
	IDReplicasWithAutoscaler     = "SH009"
	IDServiceSelectsNothing      = "SH010"
	IDServiceTargetPortUnknown   = "SH011"
	IDHardcodedIP                = "SH012"
	IDPDBBlocksEviction          = "SH013"
	IDMaxUnavailableAll          = "SH014"
	IDUnknownKind                = "SH015"
	IDInvalidSpec                = "SH016"
	IDDuplicateObject            = "SH017"
	IDIngressBackendMissing      = "SH018"
	IDNoNetworkPolicy            = "SH019"
	IDAdminPortPublished         = "SH020"
	IDPprofInProduction          = "SH021"
	IDGRPCThroughClusterIP       = "SH022"
	IDGRPCHeadlessNotReady       = "SH023"
	IDHTTPProbeOnGRPC            = "SH024"
	IDRouteBackendMissing        = "SH025"
	IDRouteWeightsZero           = "SH026"
	IDRouteParentMissing         = "SH027"
	IDListenerUnused             = "SH028"
	IDRouteHostnameMismatch      = "SH029"
	IDAffinityBehindProxy        = "SH030"
	IDAffinityLongLived          = "SH031"
	IDAffinityHeadless           = "SH032"
	IDTrafficNoEffect            = "SH033"
	IDTrafficHotSpots            = "SH034"
	IDFieldNeedsFeatureGate      = "SH035"
)

// The rules. Decoding and unknown kinds are rules too, so they can be
// listed, documented and reported in SARIF like the others.
var (
	ruleDecode = Rule{ID: IDInvalidDocument, Name: "invalid-document", Severity: Error,
		Why: "a field Kubernetes does not know is silently dropped or rejected at apply time, so the setting never takes effect",
		Fix: "correct the YAML syntax, the field's spelling or its type against the API reference for the kind"}
	ruleNoReadiness = Rule{ID: IDNoReadinessProbe, Name: "no-readiness-probe", Severity: Error,
		Why: "without a readiness probe a pod gets traffic before it can serve and keeps it while it drains",
		Fix: "add a readinessProbe, e.g. httpGet /readyz on the admin port"}
	ruleLivenessDeps = Rule{ID: IDLivenessChecksDependencies, Name: "liveness-checks-dependencies", Severity: Error,
		Why: "a liveness probe that fails when a dependency is down restarts every replica at once and turns an outage into a crash loop",
		Fix: "point livenessProbe at a check of the process only (/livez) and keep dependency checks in readiness"}
	ruleProbeTimeout = Rule{ID: IDProbeTimeoutBelowBudget, Name: "probe-timeout-below-budget", Severity: Warning,
		Why: "a probe that times out before its handler answers marks healthy pods failed under load, which removes capacity when it is most needed",
		Fix: "set timeoutSeconds to at least the handler's budget (annotation shoal.dev/probe-budget), not the 1s default"}
	ruleNoPreStop = Rule{ID: IDNoPreStop, Name: "no-prestop", Severity: Warning,
		Why: "a pod that stops accepting requests before every client has stopped sending them fails those requests during rollouts: in the lab (make -C lab budgets, " + drainBudgetMeasured + ") a deleted pod still got new connections through a ClusterIP for up to " + DrainBudgetClusterIP.String() + ", and calls from a client balancing over a headless Service's DNS answer for up to " + DrainBudgetHeadless.String() + " (the DNS cache, 30s, and the client's next resolution)",
		Fix: "add lifecycle.preStop.sleep.seconds (equal to the service's DRAIN_DELAY) so that preStop + DRAIN_DELAY covers the drain budget measured in the lab: " + DrainBudgetClusterIP.String() + " behind a ClusterIP Service, " + DrainBudgetHeadless.String() + " behind a headless one; more in a larger cluster (docs/rollout-budgets.md)"}
	ruleGraceShort = Rule{ID: IDGracePeriodTooShort, Name: "grace-period-too-short", Severity: Error,
		Why: "the kubelet kills the container with SIGKILL when the grace period ends, cutting off the drain and in-flight requests",
		Fix: "set terminationGracePeriodSeconds above preStop + DRAIN_DELAY + SHUTDOWN_TIMEOUT, with a few seconds of margin"}
	ruleHPANoRequest = Rule{ID: IDUtilizationWithoutRequest, Name: "utilization-without-request", Severity: Error,
		Why: "utilization is usage divided by the request; with no request the autoscaler cannot compute it and never scales",
		Fix: "set resources.requests for the metric's resource on every container of the target"}
	ruleTargetMissing = Rule{ID: IDAutoscalerTargetMissing, Name: "autoscaler-target-missing", Severity: Error,
		Why: "an autoscaler whose scaleTargetRef names no workload scales nothing",
		Fix: "make scaleTargetRef's kind and name match a Deployment or StatefulSet in the same namespace"}
	ruleTwoAutoscalers = Rule{ID: IDMultipleAutoscalers, Name: "multiple-autoscalers", Severity: Error,
		Why: "two autoscalers on one workload overwrite each other's replica count and the workload flaps",
		Fix: "keep one HorizontalPodAutoscaler or one ScaledObject per workload (KEDA creates its own HPA)"}
	ruleReplicasOwned = Rule{ID: IDReplicasWithAutoscaler, Name: "replicas-with-autoscaler", Severity: Warning,
		Why: "every apply resets spec.replicas and undoes the autoscaler's decision, briefly scaling the workload down",
		Fix: "remove spec.replicas from workloads an autoscaler owns; set minReplicas on the autoscaler instead"}
	ruleSelectorEmpty = Rule{ID: IDServiceSelectsNothing, Name: "service-selects-nothing", Severity: Error,
		Why: "a Service whose selector matches no pod template has no endpoints and every connection fails",
		Fix: "make spec.selector a subset of the pod template's labels"}
	ruleTargetPort = Rule{ID: IDServiceTargetPortUnknown, Name: "service-target-port-unknown", Severity: Error,
		Why: "a selected pod whose containers do not declare the named targetPort is no endpoint of the Service for that port",
		Fix: "name the container port as the Service's targetPort does in every pod template the Service selects, or use the port number"}
	ruleHardcodedIP = Rule{ID: IDHardcodedIP, Name: "hardcoded-ip", Severity: Warning,
		Why: "pod and cluster IPs change on every reschedule or re-create, so a literal address breaks silently",
		Fix: "use a Service DNS name, or the downward API (status.podIP) for the pod's own address"}
	rulePDBBlocks = Rule{ID: IDPDBBlocksEviction, Name: "pdb-blocks-eviction", Severity: Error,
		Why: "a disruption budget that allows no eviction blocks node drains and cluster upgrades indefinitely",
		Fix: "run at least two replicas and allow one to be evicted (maxUnavailable: 1)"}
	ruleAllUnavailable = Rule{ID: IDMaxUnavailableAll, Name: "max-unavailable-all", Severity: Error,
		Why: "a rollout or drain allowed to stop every pod at once leaves the service with no replica serving",
		Fix: "set maxUnavailable below the replica count (0 or 1 with maxSurge for rollouts; 1 for budgets)"}
	ruleUnknownKind = Rule{ID: IDUnknownKind, Name: "unknown-kind", Severity: Note,
		Why: "kinds outside k8s.io/api, the Gateway API and KEDA's ScaledObject are not decoded, so their fields are not checked",
		Fix: "nothing to do if the kind comes from a CRD you trust; check it with that CRD's own schema"}
	ruleInvalidSpec = Rule{ID: IDInvalidSpec, Name: "invalid-spec", Severity: Error,
		Why: "the API server refuses the object, or the controller cannot create its pods, so the apply fails or the workload never runs",
		Fix: "set the field named in the message to a value the kind's API reference allows"}
	ruleDuplicate = Rule{ID: IDDuplicateObject, Name: "duplicate-object", Severity: Error,
		Why: "apply keeps only the last of two objects of one kind, namespace and name, so the other's settings silently never take effect",
		Fix: "remove or rename one of them; in a kustomization, patch the base instead of declaring the object again"}
	ruleIngressBackend = Rule{ID: IDIngressBackendMissing, Name: "ingress-backend-missing", Severity: Error,
		Why: "an Ingress backend naming no Service has no endpoints, so every request routed there fails with 503",
		Fix: "make the backend's service.name match a Service in the Ingress's namespace"}
	ruleNoNetworkPolicy = Rule{ID: IDNoNetworkPolicy, Name: "no-network-policy", Severity: Warning,
		Why: "pods no NetworkPolicy selects accept connections from every pod in the cluster, on every port, admin and metrics ports included",
		Fix: "add a NetworkPolicy in the pods' namespace whose podSelector matches them and whose ingress rules allow only their clients, per port"}
	ruleAdminPortPublished = Rule{ID: IDAdminPortPublished, Name: "admin-port-published", Severity: Warning,
		Why: "a Service that routes to an admin or metrics port beside the application's ports hands probes, metrics and profiles to every client of the application",
		Fix: "remove the port from the Service; let the monitoring system scrape pods directly, or give it a ClusterIP Service of admin ports only"}
	rulePprofInProduction = Rule{ID: IDPprofInProduction, Name: "pprof-in-production", Severity: Warning,
		Why: "profiling endpoints in production let whoever reaches the admin port slow the process with CPU profiles and traces and read its code and memory layout",
		Fix: "remove PPROF (or set it to false) in the production overlay; turn it on for one pod while investigating, then off again"}
	ruleGRPCClusterIP = Rule{ID: IDGRPCThroughClusterIP, Name: "grpc-clusterip-without-max-conn-age", Severity: Warning,
		Why: "kube-proxy balances connections, not calls, and a gRPC client keeps its one HTTP/2 connection for ever, so pods added by a scale-up or a rollout get no calls unless the server closes connections at some age",
		Fix: "set MAX_CONN_AGE to a positive duration (or annotate the pods with shoal.dev/max-conn-age for a server that sets its own), or send gRPC clients to a headless Service and balance on the client"}
	ruleGRPCNotReady = Rule{ID: IDGRPCHeadlessNotReady, Name: "grpc-headless-publishes-not-ready", Severity: Warning,
		Why: "a headless Service with publishNotReadyAddresses puts starting and draining pods in DNS, so gRPC clients balancing over its addresses dial pods that refuse or drop their calls",
		Fix: "set publishNotReadyAddresses to false on the Service gRPC clients resolve; keep a separate headless Service for peer discovery if the pods need one"}
	ruleHTTPProbeOnGRPC = Rule{ID: IDHTTPProbeOnGRPC, Name: "http-probe-on-grpc-port", Severity: Error,
		Why: "a gRPC server answers only HTTP/2, so an httpGet probe on its port always fails: the pod is never ready, or its liveness probe restarts it in a loop",
		Fix: "use a grpc probe (grpc.port, optional grpc.service) on the gRPC port, or point the httpGet probe at the container's HTTP admin port"}
	ruleRouteBackend = Rule{ID: IDRouteBackendMissing, Name: "route-backend-missing", Severity: Error,
		Why: "a backendRef to a Service or port that does not exist is invalid, so the requests its rule would send there fail with 500",
		Fix: "make the backendRef's name and port match a Service and one of its spec.ports[].port in the namespace it names"}
	ruleRouteWeightsZero = Rule{ID: IDRouteWeightsZero, Name: "route-weights-zero", Severity: Error,
		Why: "a rule whose backendRefs all weigh 0 has nowhere to send a request, so Gateway API implementations answer each one with 500",
		Fix: "give at least one backendRef of the rule a positive weight (the default is 1)"}
	ruleRouteParentMissing = Rule{ID: IDRouteParentMissing, Name: "route-parent-missing", Severity: Error,
		Why: "a route whose parentRefs name no Gateway, or no listener of it that takes the route, is attached nowhere and serves no request",
		Fix: "name a Gateway of the route's namespace in parentRefs, with a sectionName and port of one of its HTTP or HTTPS listeners whose allowedRoutes admit the route"}
	ruleListenerUnused = Rule{ID: IDListenerUnused, Name: "gateway-listener-unused", Severity: Note,
		Why: "a listener no route attaches to answers every request with 404, which is often a route's typo rather than intent",
		Fix: "attach an HTTPRoute to the listener (parentRefs with its sectionName), or remove the listener"}
	ruleRouteHostnameMismatch = Rule{ID: IDRouteHostnameMismatch, Name: "route-hostname-mismatch", Severity: Error,
		Why: "a Gateway accepts a route only where the route's hostnames intersect a listener's hostname, so a route with none in common serves no request",
		Fix: "make one of spec.hostnames equal to, or covered by, the hostname of a listener the route attaches to"}

	ruleAffinityBehindProxy = Rule{ID: IDAffinityBehindProxy, Name: "session-affinity-behind-proxy", Severity: Warning,
		Why: "clients that come through an Ingress controller or a Gateway all share the proxy's few pod addresses, so ClientIP affinity sends each proxy pod's whole share of the traffic to one backend pod while the others idle",
		Fix: "remove sessionAffinity from the Service; if the application needs sticky sessions, use the proxy's cookie or header affinity, which sees the real client"}
	ruleAffinityLongLived = Rule{ID: IDAffinityLongLived, Name: "session-affinity-long-lived", Severity: Warning,
		Why: "a long-lived connection already stays on one pod, and ClientIP affinity sends every reconnect back to that pod for the affinity timeout (3h by default), so the reconnects meant to spread load onto new pods never do",
		Fix: "remove sessionAffinity and let connection-age reconnects rebalance, or send the clients to a headless Service and balance per call on the client"}
	ruleAffinityHeadless = Rule{ID: IDAffinityHeadless, Name: "session-affinity-ignored", Severity: Warning,
		Why: "kube-proxy programs no rules for a headless Service, so its sessionAffinity and timeout do nothing and clients that need stickiness do not get it",
		Fix: "remove sessionAffinity from the headless Service; give clients that need stickiness a ClusterIP Service, or make them choose pods consistently (e.g. hash on a key)"}
	ruleTrafficNoEffect = Rule{ID: IDTrafficNoEffect, Name: "traffic-distribution-no-effect", Severity: Note,
		Why: "trafficDistribution changes nothing where no proxy applies it (a headless Service), where internalTrafficPolicy Local already keeps traffic on the node, or where all the pods are in one zone or on one node (as on a single-zone or single-node cluster)",
		Fix: "remove trafficDistribution, or spread the pods over zones (topologySpreadConstraints on topology.kubernetes.io/zone) so that the preference has a choice"}
	ruleTrafficHotSpots = Rule{ID: IDTrafficHotSpots, Name: "traffic-distribution-hot-spots", Severity: Warning,
		Why: "a same-zone or same-node preference sends all of a zone's or node's clients to the few pods there, so with few replicas per zone (or PreferSameNode on a workload that is not on every node) some pods overload while others idle, and the autoscaler, seeing the average, does not react",
		Fix: "keep PreferSameZone for workloads with at least 3 replicas spread over the zones (topologySpreadConstraints) and PreferSameNode for DaemonSets; otherwise leave trafficDistribution unset"}

	ruleFeatureGate = Rule{ID: IDFieldNeedsFeatureGate, Name: "field-needs-feature-gate", Severity: Warning,
		Why: "an API server whose feature gate for a field is off, as alpha gates are by default, drops the field on apply without an error, so the setting never takes effect",
		Fix: "remove the field, or enable the feature gate named in the message on the API server and the kubelets (then mark the object with shoal.dev/lint-ignore: SH035)"}
)

// ruleList returns every rule, checks attached, in ID order. It builds the
// list on each call so no caller can change another's rules.
func ruleList() []Rule {
	rs := []Rule{
		ruleDecode, ruleNoReadiness, ruleLivenessDeps, ruleProbeTimeout,
		ruleNoPreStop, ruleGraceShort, ruleHPANoRequest, ruleTargetMissing,
		ruleTwoAutoscalers, ruleReplicasOwned, ruleSelectorEmpty, ruleTargetPort,
		ruleHardcodedIP, rulePDBBlocks, ruleAllUnavailable, ruleUnknownKind,
		ruleInvalidSpec, ruleDuplicate, ruleIngressBackend, ruleNoNetworkPolicy,
		ruleAdminPortPublished, rulePprofInProduction, ruleGRPCClusterIP,
		ruleGRPCNotReady, ruleHTTPProbeOnGRPC,
		ruleRouteBackend, ruleRouteWeightsZero, ruleRouteParentMissing,
		ruleListenerUnused, ruleRouteHostnameMismatch,
		ruleAffinityBehindProxy, ruleAffinityLongLived, ruleAffinityHeadless,
		ruleTrafficNoEffect, ruleTrafficHotSpots,
		ruleFeatureGate,
	}
	checks := map[string]func(*set) []Finding{
		ruleNoReadiness.ID:        checkReadiness,
		ruleLivenessDeps.ID:       checkLiveness,
		ruleProbeTimeout.ID:       checkProbeTimeouts,
		ruleNoPreStop.ID:          checkPreStop,
		ruleGraceShort.ID:         checkGracePeriod,
		ruleHPANoRequest.ID:       checkUtilizationRequests,
		ruleTargetMissing.ID:      checkAutoscalerTargets,
		ruleTwoAutoscalers.ID:     checkAutoscalerCount,
		ruleReplicasOwned.ID:      checkOwnedReplicas,
		ruleSelectorEmpty.ID:      checkServiceSelectors,
		ruleTargetPort.ID:         checkServiceTargetPorts,
		ruleHardcodedIP.ID:        checkHardcodedIPs,
		rulePDBBlocks.ID:          checkPDBBlocks,
		ruleAllUnavailable.ID:     checkMaxUnavailable,
		ruleInvalidSpec.ID:        checkSpecs,
		ruleDuplicate.ID:          checkDuplicates,
		ruleIngressBackend.ID:     checkIngressBackends,
		ruleNoNetworkPolicy.ID:    checkNetworkPolicies,
		ruleAdminPortPublished.ID: checkAdminPortsPublished,
		rulePprofInProduction.ID:  checkPprofInProduction,
		ruleGRPCClusterIP.ID:      checkGRPCThroughClusterIP,
		ruleGRPCNotReady.ID:       checkGRPCHeadlessNotReady,
		ruleHTTPProbeOnGRPC.ID:    checkHTTPProbeOnGRPC,

		ruleRouteBackend.ID:          checkRouteBackends,
		ruleRouteWeightsZero.ID:      checkRouteWeights,
		ruleRouteParentMissing.ID:    checkRouteParents,
		ruleListenerUnused.ID:        checkUnusedListeners,
		ruleRouteHostnameMismatch.ID: checkRouteHostnames,

		ruleAffinityBehindProxy.ID: checkAffinityBehindProxy,
		ruleAffinityLongLived.ID:   checkAffinityLongLived,
		ruleAffinityHeadless.ID:    checkAffinityHeadless,
		ruleTrafficNoEffect.ID:     checkTrafficDistributionNoEffect,
		ruleTrafficHotSpots.ID:     checkTrafficDistributionHotSpots,

		ruleFeatureGate.ID: checkFeatureGates,
	}
	for i := range rs {
		rs[i].check = checks[rs[i].ID]
	}
	return rs
}

// Rules lists every rule in ID order.
func Rules() []Rule {
	rs := ruleList()
	for i := range rs {
		rs[i].check = nil
	}
	return rs
}
