// Package service runs one HTTP service the way Kubernetes expects it to
// run: probes over background checks, the SIGTERM sequence, Prometheus
// metrics, load shedding, keep-alive rebalancing, request logs with a
// request ID, per-route deadlines carried to the calls below, panic
// recovery, optional TLS and tracing, and balanced, retrying clients for
// the services it calls.
//
// A main is one call, [Main]: it binds [Options] and the program's own
// settings to flags and environment variables of the same meaning
// (package config), parses them, builds the [Service], lets the program
// add its routes, checks and upstreams, and serves until SIGTERM.
//
// The middleware order is fixed by [Service.Run], outermost first, and
// each place has its reason:
//
//  1. X-Served-By, so every answer names its replica, a shed 503 too;
//  2. tracing (when [Service.Trace] gave a tracer), so the span covers
//     everything below and the trace ID is known to the log line;
//  3. the request ID (X-Request-ID, taken or made);
//  4. metrics, so every status below, a 503 from shedding and a 500 from
//     a panic included, is counted under its route;
//  5. the request log line, inside the metrics so it has the same route;
//  6. panic recovery, answering 500 and keeping the process serving;
//  7. the load shedder, which rejects before any route work;
//  8. the caller's middleware ([Service.Use]);
//  9. the route's deadline ([WithTimeout], else Options.RequestTimeout,
//     shortened by the caller's X-Request-Timeout-Ms), then the route.
//
// Outside the chain, package server bounds the connections: MAX_CONNS at
// once (an idle one makes room for a new one), and an HTTP/2 stream the
// client reset before its handler ran never enters the chain.
//
// # gRPC
//
// With GRPC_PORT set, the Service also serves gRPC on that port, through
// package grpcserver: a program registers its services on
// [Service.GRPCServer] (generated RegisterXxxServer functions take it; it
// accepts registrations without GRPC_PORT too, serving nothing). The
// server's grpc.health.v1 follows the same checker as /readyz and turns
// NOT_SERVING at SIGTERM; its drain sends GOAWAY on existing connections
// at the drain's start while it still serves new ones, and GracefulStop
// at its end, bounded by SHUTDOWN_TIMEOUT; MAX_CONN_AGE ages its
// connections as it does HTTP's; it sheds by the same limiter as HTTP
// (one concurrency limit per process); its RPCs are counted on the same
// registry (grpc_server_handled_total and friends), logged at
// REQUEST_LOG_SAMPLE, and recovered from panics; x-served-by names the
// replica. GRPC_REFLECTION, GRPC_MAX_RECV_MSG_SIZE and
// GRPC_MAX_CONCURRENT_STREAMS tune it. Its memory is bounded across
// connections from the process's memory limit (MEMORY_LIMIT: by default
// the cgroup's or GOMEMLIMIT): messages being received or handled by
// GRPC_RECV_BUDGET (an eighth of it, at least two messages; a call waits
// for its share before its message is read, GRPC_RECV_TIMEOUT bounds the
// wait and the read), the calls in flight by the same budget (one per 16
// KiB of it), connections by GRPC_MAX_CONNS (one per 512 KiB of it), and
// a call's metadata by GRPC_MAX_HEADER_LIST_SIZE (16 KiB).
//
// [Program.Run] sets the Go runtime's soft memory limit from MEMORY_LIMIT
// unless GOMEMLIMIT is set: the limit less the binary's resident code and
// a twentieth, at most nine tenths of it. At the whole limit the
// collector lets the heap grow to the container's limit itself, and what
// the runtime does not count (the binary, the kernel's share) takes the
// process over it.
//
// gRPC gets its own port rather than the public port's h2c: behind the
// HTTP server (grpc.Server.ServeHTTP) grpc-go's keepalive enforcement and
// MaxConnectionAge do not apply, the HTTP drain's "Connection: close"
// and the HTTP metrics would see every RPC as a 200 on an unmatched
// route, and the gRPC health service would not turn NOT_SERVING with
// /readyz. On its own port every one of those holds. The gRPC port is
// plaintext (h2c); the TLS settings apply to the public port only.
package service
