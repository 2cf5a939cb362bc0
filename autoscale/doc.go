// Package autoscale computes the replica count a Kubernetes
// HorizontalPodAutoscaler (autoscaling/v2) would choose, as the
// kube-controller-manager of Kubernetes v1.37 does, as a pure function of
// its inputs.
//
// Recommend takes the HPA object, the pods with their requests and
// metrics, the object and external metric values, the current replica
// count, the recommendation and scale-event history and the time, and
// returns the Decision the controller would take: the desired replica
// count, the reason, the status conditions (AbleToScale, ScalingActive,
// ScalingLimited, ScaledToZero) and the history to pass to the next call. Nothing reads
// a clock or sleeps; the same inputs always give the same Decision.
//
// The calculation follows upstream's replica_calculator.go and
// horizontal.go: the usage ratio against the target with the tolerance
// (0.1, or the behavior's per-direction tolerance), pods that are not yet
// ready or still in the CPU initialization period ignored on scale-up,
// pods without metrics counted at 0% on scale-up and 100% on scale-down,
// the re-check that keeps the current count when that would flip the
// direction, the largest proposal over several metrics, minReplicas and
// maxReplicas, the scale-up limit of max(2*current, 4) without a
// behavior, and with one the Pods/Percent policies, selectPolicy and the
// stabilization windows.
//
// Scaling to zero follows v1.37's HPAScaleToZero (beta, on by default):
// with minReplicas 0 and an Object or External metric the controller
// scales the target to zero and records the ScaledToZero condition; at
// zero replicas it decides only while that condition, passed back in the
// HPA's status, is True, and a target at zero without it (scaled there by
// hand) disables the HPA. Config.FeatureGates turns the gates off as
// kube-controller-manager's --feature-gates does.
//
// ScaledObject adds KEDA's semantics on top: activation decides between
// zero and one replica, and above that the HPA KEDA builds decides, with
// an External metric per prometheus trigger (an AverageValue target of
// its threshold) and a Resource metric per cpu or memory trigger.
//
// Simulate runs either over a load curve and returns a timeline.
//
// Replay runs a recorded demand curve through a spec with a model of its
// pods (capacity, start-up, metric delay and resolution) on Simulate's
// machinery and reports cost (pod-seconds) and under-provisioning
// (seconds and demand short of ready capacity, peak overload). Tune
// replays a bounded grid of behavior settings and returns the cost /
// under-provisioning frontier and the cheapest spec within a budget.
package autoscale
