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
//   - [Direct] keeps the scrapes its caller records in a bounded in-memory
//     store and runs the same query on Prometheus' own PromQL engine
//     (github.com/prometheus/prometheus/promql) over it, so any adapter
//     rule or trigger query (binary operators, histogram_quantile, offset,
//     subqueries, every function) gives Prometheus' result over the same
//     samples, staleness included.
//
// The store keeps each series' samples for a retention window in a ring
// sized for the scrape interval, and charges every series its labels and
// its full ring against a memory budget when it first appears: a scrape
// with too many series, too many or too long labels, or new series that
// do not fit is refused whole with [ErrLimit], as Prometheus refuses a
// scrape over its sample_limit, so memory stays bounded whatever the pods
// expose.
package podmetrics
