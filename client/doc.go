// Package client builds the http.Client one Go service uses to call
// another: a Transport tuned for service-to-service traffic, a per-try
// timeout inside the caller's deadline, and retries with jittered backoff
// only where they are safe, capped by a retry budget.
//
// A retry is safe when the request is idempotent (GET, HEAD, OPTIONS,
// PUT, DELETE, or a request carrying an Idempotency-Key header or marked
// with [Idempotent]) or when the server certainly did not process it: the
// connection was never established, or a shedding replica answered 503
// with a Retry-After header. A body is replayed through Request.GetBody;
// requests whose body cannot be replayed are never retried.
//
// Retries draw from a [RetryBudget] (Finagle's design): every request
// deposits a fraction of a retry, so retries add at most that fraction of
// load, plus a small reserve per second for quiet periods. When every
// replica fails, retries do not multiply the outage.
//
// To spread requests over the replicas of a headless Service, give
// [Config.Transport] a balancer.Balancer built over [NewTransport]; each
// retry then asks the balancer again, and lands on a replica the earlier
// attempts did not use: the request's context carries a [Tries] the
// balancer fills. An attempt that runs out its per-try timeout ends with
// the cause [ErrPerTryTimeout], which the balancer counts against the
// replica; the caller's own cancellation it does not.
//
// With Config.Registerer set, the client counts calls and their duration
// (shoal_client_requests_total, shoal_client_request_duration_seconds)
// and attempts (shoal_client_attempts_total), each by a result label
// whose bounded values are [Result]'s; and retries by reason
// (shoal_client_retries_total) and retries the budget refused
// (shoal_client_retry_budget_exhausted_total). A call's result and
// duration are taken when its response headers arrive or it fails: how
// fast the body then streams is paced by the caller as much as by the
// server, so the balancer, which sees the body end, judges that part.
package client
