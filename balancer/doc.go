// Package balancer spreads HTTP requests over the replicas of a service
// from inside the client, as an [http.RoundTripper].
//
// kube-proxy balances connections, not requests: a keep-alive or HTTP/2
// client stays on the pods it first reached. A headless Service instead
// hands the client every pod address and leaves the balancing to it. A
// [Balancer] takes that address set from a [Resolver] ([Static],
// [DNSResolver], or the EndpointSlice resolver in package
// balancer/k8sresolver), and for every request asks a [Picker] built by a
// [Policy] which endpoint to use:
//
//   - [RoundRobin] takes endpoints in turn.
//   - [PeakEWMA] picks the cheaper of two random endpoints, where cost is a
//     peak-sensitive moving average of latency times the requests in flight
//     (Finagle's and Linkerd's "peak EWMA" with power of two choices); a
//     request in flight counts for less on a replica more than twice as
//     fast as the other and seen serving several at once, and an endpoint
//     whose estimate went stale is probed one request at a time.
//   - [ConsistentHash] maps a request key (for example a header) onto a hash
//     ring, so one key keeps reaching the same replica, with bounded loads so
//     one hot key cannot overload that replica.
//
// Pickers are immutable snapshots, rebuilt when the endpoint set changes;
// a pick takes no lock and allocates nothing. Per-endpoint statistics
// (in-flight requests, latency, failures) live on the [Endpoint] and survive
// rebuilds while the address stays in the set.
//
// Independently of the policy, endpoints that fail several times in a row
// or time out a few times (a response counts when its body ends, so one
// that sends headers and then stalls is a timeout) are ejected for a
// growing interval and return
// on probation; one that refuses or resets a connection is ejected at
// once, until the resolver lists it again; one that sheds load (503 with
// Retry-After) is backed off for the time it asks, not ejected. At most a
// configured share of endpoints is ever ejected at once. Endpoints that
// appear after the first resolution ramp up their share over a slow start
// window. Optional active health checks ([HealthCheck]) take out
// endpoints whose admin port says they are not fit.
//
// Under package client's retrying transport, a retry goes to an endpoint
// the earlier attempts of the request did not use (for [ConsistentHash],
// the key's next one on the ring): the client marks the request's context
// with a client.Tries, which the balancer fills and reads.
//
// With Config.Registerer set, a balancer exports per-endpoint series
// (requests, errors, ejections, backoffs, health, requests in flight, and
// shoal_balancer_request_duration_seconds by endpoint and result, with
// result as in client.Result); the series of an endpoint that leaves the
// set are dropped with it.
//
// Without a Transport, a balancer sends over a tuned transport of its own
// (package client's NewTransport), never http.DefaultTransport, whose two
// idle connections per host make bursts dial a connection per request.
//
// A client that chooses its connection and sends the request itself
// (package grpcclient's gRPC balancers) keeps the same statistics and
// ejections with a [Tracker], and calls the same pickers; a
// [PickInfo.Key] carries a balancing key that is not in an HTTP request.
//
// Time and randomness are injected through [Config], so decisions are
// deterministic given the inputs, the clock and the random source.
package balancer
