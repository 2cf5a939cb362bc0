// Package grpcserver runs a gRPC server as the service kit runs its HTTP
// server: health, drain, keepalive, connection age, metrics, shedding and
// panic recovery on by default, stopped in the lifecycle's order.
//
// A [Server] is a grpc.ServiceRegistrar: register services on it as on a
// *grpc.Server, before Serve. It is a lifecycle.Server, so
// lifecycle.Lifecycle.Own runs it and stops it with the HTTP servers.
//
// # Health
//
// grpc.health.v1 answers from the same checker as /readyz ([Config.Health],
// followed through its Changed channel, no polling): SERVING when ready,
// NOT_SERVING when not, for "" and for every service the program
// registered; from the drain on NOT_SERVING, whatever the checks say.
// Health is neither shed nor logged per call, as the admin port's probes
// are not.
//
// # Drain: two generations
//
// grpc-go has no public call that sends GOAWAY on a connection and keeps
// the server serving; GracefulStop does both GOAWAY and stop accepting.
// The Server therefore holds two *grpc.Server with the same services and
// options, fed by one accept loop. Until the drain every connection goes
// to the first. At the drain's start (Drain, step 1 of the lifecycle's
// stop) health turns NOT_SERVING, new connections go to the second, and
// the first is GracefulStopped: its connections get GOAWAY at once, their
// RPCs in flight finish, and their clients reconnect, through kube-proxy
// or a re-resolution, to pods that are staying, or, while the endpoint
// removal has not reached them yet, back here, where the second generation
// serves them. Plain "serve through the drain delay, then GracefulStop"
// would keep every existing connection on a pod that is going away for
// the whole delay and move them all at once at its end; the two
// generations move them at its start, while this pod still serves the
// stragglers. At the end of the delay (Shutdown) the listener closes and
// the second generation is GracefulStopped, bounded by the shutdown
// timeout; past it, Close stops both at once (Stop), so a hung RPC cannot
// hold the process. A connection handed to a generation just before its
// stop is taken by it before GracefulStop begins, so it is served and
// sent GOAWAY rather than closed without a word. Health Watch streams,
// which never end by themselves, end when their generation stops.
//
// # Interceptors, outermost first
//
//  1. x-served-by ([ServedByKey]) header metadata, so every answer names
//     its replica, a shed one too;
//  2. metrics (go-grpc-middleware's Prometheus provider:
//     grpc_server_started_total, grpc_server_handled_total{grpc_code},
//     grpc_server_msg_received_total, grpc_server_msg_sent_total,
//     grpc_server_handling_seconds), so the codes of everything below,
//     shedding and panics included, are counted per method;
//  3. the request line (method, code, duration, peer), sampled as HTTP's
//     are: codes that HTTP would answer 5xx always, the rest at
//     [Config.RequestLogSample];
//  4. panic recovery: Internal with a fixed message, the stack logged,
//     grpc_server_panics_total, the process keeps serving;
//  5. shedding by the process's one [shed.Limiter]: an RPC beyond the
//     limit gets Unavailable with a grpc-retry-pushback-ms trailer
//     ([PushbackKey]), so grpc-go's retry policy waits that long;
//  6. the program's own ([Config.Options]), then the handler.
//
// Shedding is an interceptor, not a grpc.InTapHandle: a tap's rejection
// is written by grpc-go as status and message only, so it cannot carry
// the pushback trailer; and a unary RPC reaches the interceptor once its
// message has been read, so a client trickling its message holds no slot
// meanwhile, as the HTTP shedder parks a request blocked reading its
// body. What a flood of large messages can hold is bounded by
// [Config.MaxRecvMsgSize] and [Config.MaxConcurrentStreams].
//
// # Connections
//
// Keepalive enforcement is on: a client pinging more often than every
// 10s gets GOAWAY ENHANCE_YOUR_CALM and its connection closed (pings
// without streams are allowed at that rate). Connections are aged out
// after MaxConnAge (1m by default, the kit's MAX_CONN_AGE; grpc-go adds
// ±10% jitter itself) with a grace for RPCs in flight, so long-lived
// clients re-resolve and spread onto new replicas.
package grpcserver
