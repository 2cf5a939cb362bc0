// Package grpcclient connects to a gRPC service the way Shoal balances
// HTTP: per call, from inside the client, over every replica.
//
// A headless Service hands a gRPC client every pod address, but grpc-go's
// own DNS resolver looks the name up again only when a connection breaks,
// and HTTP/2 keeps its connections for ever: after a scale-up, new pods
// get nothing. [New] makes a grpc.ClientConn that instead
//
//   - resolves dns:///name:port (dns://server:port/name:port asks that
//     server) on an interval and again on every connection loss, and
//     k8s:///service.namespace:port from the Service's EndpointSlices
//     (through Config.EndpointSlices, so client-go stays out of programs
//     that do not use it); both are resolver.Builders given to this
//     ClientConn alone, adapted from package balancer's resolvers by
//     [NewResolverBuilder];
//   - balances each call with package balancer's pickers and per-endpoint
//     statistics, registered with grpc-go by this package as
//     "shoal_peak_ewma" (P2C over peak-EWMA latency, the default) and
//     "shoal_consistent_hash" (bounded-load consistent hashing on the
//     outgoing metadata key x-balance-key, see [WithBalanceKey]), with
//     passive outlier ejection, slow start for replicas that join later,
//     and the gRPC health service watched on every connection;
//   - retries UNAVAILABLE calls (bounded attempts and backoff, the
//     server's pushback honoured) under retry throttling, and with
//     Config.PerTryTimeout a unary call's try that runs out of it, on a
//     replica the call has not met (grpc-go has no per-attempt timeout:
//     a hung replica would cost a call its whole deadline);
//   - pings a connection with calls in flight that has been quiet for
//     30s, and drops it without an answer in 10s (keepalive);
//   - counts calls with go-grpc-middleware's Prometheus provider
//     (grpc_client_started_total, grpc_client_handled_total,
//     grpc_client_handling_seconds, ...) on Config.Registerer.
package grpcclient
