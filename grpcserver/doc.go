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
// With a receive budget, the call's share (see below) is held while the
// handler runs, outside all of these.
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
// body. What messages hold is the receive budget's to bound.
//
// # Receive budget
//
// grpc-go reads a message whole before any interceptor runs, widening
// the stream's flow-control window to the message's declared length, so
// MaxRecvMsgSize × MaxConcurrentStreams bounds one connection, and
// nothing bounds the process: 96 streams of 10 MiB on 8 connections took
// the thumbnailer to 612 MiB of RSS. [Config.RecvBudget] bounds the
// bytes of messages being received or held, across connections:
//
//   - when a call's headers arrive (grpc.InTapHandle) it takes its
//     metadata's bytes, or is refused UNAVAILABLE if even that is not
//     left;
//   - in its own goroutine, before grpc-go reads the message (the stats
//     handler's TagRPC), it waits for a share of MaxRecvMsgSize and the
//     stream's window: one call per connection at a time (a client's
//     streams queue behind each other, not ahead of other clients), then
//     first come, first served; meanwhile the client can send no more
//     than the stream's static window (64 KiB; BDP estimation, which
//     grows windows to 16 MiB, is off);
//   - once the message is in it keeps what the message and metadata
//     hold until the call ends, and gives the rest (the window too) back
//     at once, so small calls hold a share for the moment their message
//     takes to arrive, and a long-lived stream (a health Watch, which
//     grpcclient opens on every connection) a few hundred bytes;
//   - a call that has held a share for 500ms without its message while
//     others wait is cut off (CANCELLED, grpc_server_recv_cut_total
//     {reason="evicted"}), and any call still without its message after
//     [Config.RecvTimeout] (10s) is: a client trickling its message, or
//     sending nothing, cannot hold the budget.
//
// grpc.health.v1 and reflection each have a budget of their own, two
// shares (health's has 2 KiB more per connection of MaxConns, for the
// Watch that grpcclient holds on each), so that neither a flood of the
// program's calls nor reflection ever starves the probes; a health call
// is not refused for its metadata (MaxHeaderListSize bounds it). A
// streaming call's messages after its first are read without a share.
// Decompressed messages are counted at their decompressed size once read
// only.
//
// Each budget also bounds the calls in flight, whatever they hold: one
// per 16 KiB of RecvBudget (2,048 at 32 MiB), what a stream, its
// handler's goroutine and their contexts cost. Calls that send nothing,
// or are reset as soon as they open, hold no share, and without this
// bound a flood of them from many connections grew the heap until the
// process passed its container's limit. Beyond it a call is refused
// UNAVAILABLE at its headers; on the health budget a connection's first
// four calls are admitted even then, so a probe gets through on any
// connection that is not itself the flood.
//
// # Rapid reset
//
// A connection more than 100 of whose calls, and more than half, ended
// before their first message arrived, within 10ms of their start, is
// closed (grpc_server_connections_reset_total, and a log line for the
// 1st, 2nd, 4th... so that a flood does not flood the log), and what its
// client queued in the socket is never read. Opening a stream and
// resetting it at once (CVE-2023-44487) costs the client one frame and
// the server a stream, a goroutine and its contexts; grpc-go's bound of
// MaxConcurrentStreams handlers per connection only paces one such
// connection, and a client opening connection after connection kept the
// thumbnailer busy for half a minute after a 4 s attack. A well-behaved
// client sends a unary call's message with its headers: its calls end
// before their message only when it calls a method the server lacks, or
// when they waited for the receive budget (until their deadline, or the
// budget cut them off), which the 10ms leave out.
//
// Each call's metadata is bounded by [Config.MaxHeaderListSize] (16 KiB,
// where grpc-go allows 16 MiB) and the connections open at once by
// [Config.MaxConns]; an idle one costs about 45 KiB. Beyond the bound a
// new connection takes the place of the one idle longest, which is closed
// (grpc_server_connections_evicted_total): one with no call in flight but
// a health Watch, or silent since it opened. Refusing the newcomer
// instead would let whoever holds MaxConns silent connections lock every
// later client out. Only when every connection has a call in flight is
// the new one closed as soon as it is accepted
// (grpc_server_connections_refused_total). grpc_server_connections_open
// counts them.
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
