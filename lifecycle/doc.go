// Package lifecycle runs a service's servers and background actors and
// stops them in a fixed order when the process is told to stop.
//
// A [Lifecycle] owns what it is given: HTTP servers with their listeners
// ([Lifecycle.Serve]), other servers behind the small [Server] interface
// ([Lifecycle.Own]; package grpcserver's gRPC server is one, and this
// package does not import gRPC), background actors ([Lifecycle.Go]), resources to
// close ([Lifecycle.OnClose]) and the health checker. [Lifecycle.Run]
// starts them, waits for a stop trigger (SIGTERM or SIGINT, the end of
// Run's context, a server failing, or an actor returning an error), then
// stops everything in this order:
//
//  1. Readiness turns 503 (health.Checker.SetDraining), so the platform
//     takes the pod out of its Service endpoints; then each owned
//     [Server]'s Drain, which turns its own health (grpc.health.v1)
//     NOT_SERVING for the same reason and asks its clients to move
//     early (GOAWAY on a gRPC server's connections) while it keeps
//     serving, for the reason step 2 gives.
//  2. Drain: for DrainDelay (default 5s) the servers keep serving, because
//     endpoint removal reaches kube-proxy and load balancers only after a
//     delay and traffic keeps arriving meanwhile. Every response to a
//     request that arrives now asks the client to move: it carries
//     "Connection: close", so net/http closes an HTTP/1.1 connection after
//     writing it, and on HTTP/2 sends GOAWAY on that connection (streams in
//     flight finish; a request that raced the GOAWAY is retried by the
//     client). Idle connections stay open: closing one would race the
//     request its client may be sending on it, and a POST that loses that
//     race is not retried. A connection with no request during the drain
//     closes at Shutdown in step 3, with GOAWAY on HTTP/2.
//  3. http.Server.Shutdown, and Server.Shutdown for the owned servers
//     (GracefulStop on gRPC), on every server at once: listeners close,
//     idle connections close (GOAWAY), requests in flight finish.
//     ShutdownTimeout (default 20s) bounds this step and all after it;
//     servers still busy at the deadline are closed hard (Close; Stop on
//     gRPC), so one hung request cannot hold the process.
//  4. Actors' context is cancelled and Run waits for them.
//  5. The health checker stops.
//  6. Resources close in the reverse order of their OnClose calls.
//
// A second stop signal forces the exit: servers are closed at once and Run
// returns an error wrapping [ErrForced] without waiting. Signals are
// counted, not the triggers, so a stop begun by a context that main
// cancels on SIGTERM is forced only by the second SIGTERM. Run returns
// nil after a clean stop caused by a signal or by its context; otherwise an
// error saying what failed, so main can log it and exit non-zero.
package lifecycle
