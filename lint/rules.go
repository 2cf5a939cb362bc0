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

// The rules. Decoding and unknown kinds are rules too, so they can be
// listed, documented and reported in SARIF like the others.
var (
	ruleDecode = Rule{ID: "SH000", Name: "invalid-document", Severity: Error,
		Why: "a field Kubernetes does not know is silently dropped or rejected at apply time, so the setting never takes effect",
		Fix: "correct the YAML syntax, the field's spelling or its type against the API reference for the kind"}
	ruleNoReadiness = Rule{ID: "SH001", Name: "no-readiness-probe", Severity: Error,
		Why: "without a readiness probe a pod gets traffic before it can serve and keeps it while it drains",
		Fix: "add a readinessProbe, e.g. httpGet /readyz on the admin port"}
	ruleLivenessDeps = Rule{ID: "SH002", Name: "liveness-checks-dependencies", Severity: Error,
		Why: "a liveness probe that fails when a dependency is down restarts every replica at once and turns an outage into a crash loop",
		Fix: "point livenessProbe at a check of the process only (/livez) and keep dependency checks in readiness"}
	ruleProbeTimeout = Rule{ID: "SH003", Name: "probe-timeout-below-budget", Severity: Warning,
		Why: "a probe that times out before its handler answers marks healthy pods failed under load, which removes capacity when it is most needed",
		Fix: "set timeoutSeconds to at least the handler's budget (annotation shoal.dev/probe-budget), not the 1s default"}
	ruleNoPreStop = Rule{ID: "SH004", Name: "no-prestop", Severity: Warning,
		Why: "without a preStop pause the pod gets SIGTERM while endpoints still route to it, so in-flight and new requests fail during rollouts",
		Fix: "add lifecycle.preStop.sleep.seconds equal to the service's DRAIN_DELAY"}
	ruleGraceShort = Rule{ID: "SH005", Name: "grace-period-too-short", Severity: Error,
		Why: "the kubelet kills the container with SIGKILL when the grace period ends, cutting off the drain and in-flight requests",
		Fix: "set terminationGracePeriodSeconds above preStop + DRAIN_DELAY + SHUTDOWN_TIMEOUT, with a few seconds of margin"}
	ruleHPANoRequest = Rule{ID: "SH006", Name: "utilization-without-request", Severity: Error,
		Why: "utilization is usage divided by the request; with no request the autoscaler cannot compute it and never scales",
		Fix: "set resources.requests for the metric's resource on every container of the target"}
	ruleTargetMissing = Rule{ID: "SH007", Name: "autoscaler-target-missing", Severity: Error,
		Why: "an autoscaler whose scaleTargetRef names no workload scales nothing",
		Fix: "make scaleTargetRef's kind and name match a Deployment or StatefulSet in the same namespace"}
	ruleTwoAutoscalers = Rule{ID: "SH008", Name: "multiple-autoscalers", Severity: Error,
		Why: "two autoscalers on one workload overwrite each other's replica count and the workload flaps",
		Fix: "keep one HorizontalPodAutoscaler or one ScaledObject per workload (KEDA creates its own HPA)"}
	ruleReplicasOwned = Rule{ID: "SH009", Name: "replicas-with-autoscaler", Severity: Warning,
		Why: "every apply resets spec.replicas and undoes the autoscaler's decision, briefly scaling the workload down",
		Fix: "remove spec.replicas from workloads an autoscaler owns; set minReplicas on the autoscaler instead"}
	ruleSelectorEmpty = Rule{ID: "SH010", Name: "service-selects-nothing", Severity: Error,
		Why: "a Service whose selector matches no pod template has no endpoints and every connection fails",
		Fix: "make spec.selector a subset of the pod template's labels"}
	ruleTargetPort = Rule{ID: "SH011", Name: "service-target-port-unknown", Severity: Error,
		Why: "a named targetPort that no selected container declares gives the Service no endpoints for that port",
		Fix: "name the container port as the Service's targetPort does, or use the port number"}
	ruleHardcodedIP = Rule{ID: "SH012", Name: "hardcoded-ip", Severity: Warning,
		Why: "pod and cluster IPs change on every reschedule or re-create, so a literal address breaks silently",
		Fix: "use a Service DNS name, or the downward API (status.podIP) for the pod's own address"}
	rulePDBBlocks = Rule{ID: "SH013", Name: "pdb-blocks-eviction", Severity: Error,
		Why: "a disruption budget that allows no eviction blocks node drains and cluster upgrades indefinitely",
		Fix: "run at least two replicas and allow one to be evicted (maxUnavailable: 1)"}
	ruleAllUnavailable = Rule{ID: "SH014", Name: "max-unavailable-all", Severity: Error,
		Why: "a rollout or drain allowed to stop every pod at once leaves the service with no replica serving",
		Fix: "set maxUnavailable below the replica count (0 or 1 with maxSurge for rollouts; 1 for budgets)"}
	ruleUnknownKind = Rule{ID: "SH015", Name: "unknown-kind", Severity: Note,
		Why: "kinds outside k8s.io/api and KEDA's ScaledObject are not decoded, so their fields are not checked",
		Fix: "nothing to do if the kind comes from a CRD you trust; check it with that CRD's own schema"}
)

// ruleList returns every rule, checks attached, in ID order. It builds the
// list on each call so no caller can change another's rules.
func ruleList() []Rule {
	rs := []Rule{
		ruleDecode, ruleNoReadiness, ruleLivenessDeps, ruleProbeTimeout,
		ruleNoPreStop, ruleGraceShort, ruleHPANoRequest, ruleTargetMissing,
		ruleTwoAutoscalers, ruleReplicasOwned, ruleSelectorEmpty, ruleTargetPort,
		ruleHardcodedIP, rulePDBBlocks, ruleAllUnavailable, ruleUnknownKind,
	}
	checks := map[string]func(*set) []Finding{
		ruleNoReadiness.ID:    checkReadiness,
		ruleLivenessDeps.ID:   checkLiveness,
		ruleProbeTimeout.ID:   checkProbeTimeouts,
		ruleNoPreStop.ID:      checkPreStop,
		ruleGraceShort.ID:     checkGracePeriod,
		ruleHPANoRequest.ID:   checkUtilizationRequests,
		ruleTargetMissing.ID:  checkAutoscalerTargets,
		ruleTwoAutoscalers.ID: checkAutoscalerCount,
		ruleReplicasOwned.ID:  checkOwnedReplicas,
		ruleSelectorEmpty.ID:  checkServiceSelectors,
		ruleTargetPort.ID:     checkServiceTargetPorts,
		ruleHardcodedIP.ID:    checkHardcodedIPs,
		rulePDBBlocks.ID:      checkPDBBlocks,
		ruleAllUnavailable.ID: checkMaxUnavailable,
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
