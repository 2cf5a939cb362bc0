// Package lifecycle runs a service's servers and background actors and
// stops them in a fixed order when the process is told to stop.
//
// A [Lifecycle] owns what it is given: HTTP servers with their listeners
// ([Lifecycle.Serve]), background actors ([Lifecycle.Go]), resources to
// close ([Lifecycle.OnClose]) and the health checker. [Lifecycle.Run]
// starts them, waits for a stop trigger (SIGTERM or SIGINT, the end of
// Run's context, a server failing, or an actor returning an error), then
// stops everything in this order:
//
//  1. Readiness turns 503 (health.Checker.SetDraining), so the platform
//     takes the pod out of its Service endpoints.
//  2. Drain: for DrainDelay (default 5s) the servers keep serving, because
//     endpoint removal reaches kube-proxy and load balancers only after a
//     delay and traffic keeps arriving meanwhile. Every response asks the
//     client to move: HTTP/1.1 responses carry "Connection: close" and idle
//     keep-alive connections are closed (http.Server.SetKeepAlivesEnabled
//     (false)); on HTTP/2 the same header makes net/http send GOAWAY on that
//     connection, and with keep-alives disabled it also sends GOAWAY on every
//     connection whose last stream finishes. An HTTP/2 connection with no
//     request during the drain gets its GOAWAY from Shutdown in step 3.
//  3. http.Server.Shutdown on every server at once: listeners close, idle
//     connections close, requests in flight finish. ShutdownTimeout
//     (default 20s) bounds this step and all after it; servers still busy
//     at the deadline are closed hard.
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
