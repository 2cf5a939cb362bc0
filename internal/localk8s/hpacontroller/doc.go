// Package hpacontroller reconciles HorizontalPodAutoscalers (autoscaling/v2)
// and KEDA ScaledObjects on one machine, as kube-controller-manager's HPA
// controller and the KEDA operator do in a cluster.
//
// Each reconciliation reads a Deployment's pods from a [Target], turns
// their cumulative CPU time into usage over a window (as metrics-server
// does), reads Pods metrics and trigger queries from a [Metrics] source
// (package podmetrics: prometheus-adapter's rules over Prometheus or over
// direct scrapes), decides with package autoscale, keeping the
// recommendation and scale-event histories between reconciliations, and
// scales the Deployment, emitting the events Kubernetes emits
// (SuccessfulRescale with "New size: N; reason: ...").
//
// A ScaledObject is its KEDA HPA (autoscale.ScaledObject.HPA) plus KEDA's
// activation: at every polling interval its prometheus triggers decide
// between zero and one replica, with the cooldown before scaling to zero.
// Its cpu and memory triggers are Resource metrics of that HPA, read from
// the pods' CPU usage as an HPA's are, and take no part in activation.
//
// Time comes from Config.Now, so SyncOnce is deterministic given the
// target, the metrics and the clock; Run calls it every SyncPeriod and,
// as Kubernetes v1.37's controller does, reconciles at once an
// autoscaler that Set adds, or whose spec it changes while the
// HPAGeneration gate (autoscale.Config.FeatureGates) is on.
package hpacontroller
