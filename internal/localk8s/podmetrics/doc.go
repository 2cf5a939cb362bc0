// Package podmetrics is the metrics pipeline of shoal up: it scrapes pods'
// /metrics into request rates and latencies, turns cumulative CPU time into
// usage as metrics-server does, and serves pods' custom metrics to the
// autoscalers the way prometheus-adapter does.
//
// Custom metrics come from one of two sources behind the same methods,
// PodsMetric (an HPA's Pods metric, found through the adapter rules, such
// as http_requests_per_second from http_requests_total) and Query (a KEDA
// prometheus trigger's query):
//
//   - [Prometheus] renders the rule's metricsQuery exactly as the adapter
//     does and runs it on a Prometheus server, which scrapes the pods
//     listed by [WriteTargets] in a file_sd file.
//   - [Direct] evaluates the same query over the scrapes its caller
//     records, with Prometheus' semantics for rate (extrapolation, counter
//     resets), the *_over_time functions, aggregation and staleness.
//
// Direct understands the subset of PromQL that adapter rules and KEDA
// triggers use (see [Query]); anything else is rejected with
// [ErrUnsupportedQuery] rather than approximated.
package podmetrics
