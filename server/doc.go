// Package server builds the http.Server of a Shoal service: safe timeouts
// and size limits, HTTP/1.1 and unencrypted HTTP/2 (h2c) on one port, and
// keep-alive rebalancing so that long-lived client connections spread over
// new replicas.
//
// # Keep-alive rebalancing
//
// kube-proxy balances connections, not requests: a client holding a
// keep-alive connection keeps talking to the replica it first reached, so a
// scaled-out Deployment leaves its new pods idle. [Config.MaxConnAge] and
// [Config.MaxConnRequests] bound a connection's life; the response that
// crosses a limit tells the client to reconnect, and the new connection is
// balanced afresh.
//
// Both protocols get the signal through the same header: the handler chain
// sets "Connection: close" on that response. net/http's HTTP/1.1 server
// then closes the connection after writing it. Its HTTP/2 server removes
// the header (connection-specific headers are forbidden in HTTP/2) and
// starts a graceful shutdown of that one connection: it sends GOAWAY with
// the last stream it accepted, finishes the streams in flight and closes
// the connection when they are done. Clients open a new connection for
// their next request, and a request that raced the GOAWAY on a stream
// above the last accepted one is safe to retry, which Go's transport does.
// This is the same mechanism gRPC's MaxConnectionAge uses, and it needs
// nothing beyond the standard library.
//
// The limits are checked when a request arrives, so an idle connection
// past its age stays open until the next request or until IdleTimeout
// closes it; closing it from the server side at an arbitrary moment would
// race a request the client is sending.
//
// # Connection cap
//
// [Config.MaxConns] bounds the connections open at once, since each costs
// memory whether or not it carries a request. A connection beyond the cap
// closes the one that has waited longest without a request in progress
// (idle between requests, or silent since it opened). When every other is
// serving a request, it closes the HTTP/1.1 connection whose handler is
// blocked reading the slowest request body (read for a second at under
// 128 KiB/s), so clients trickling bodies cannot hold every place, or
// else itself. Closing an idle connection can race a
// request its client is sending, which is why age limits never do it; the
// cap does it only under a flood of connections, where the alternative is
// running out of memory, and Go's transport retries such a request when it
// is idempotent.
//
// [Config.OnClose] hears of every connection closed to keep a limit, with
// the reason ([CloseEvicted], [CloseRefused], [CloseSlowBody], [CloseResets] for an
// HTTP/2 client cancelling most of its streams, or [CloseStreams] for one
// most of whose streams came past [Config.MaxStreams]); package service counts
// them in http_server_connections_closed_total.
//
// # Admin endpoints
//
// [AdminMux] serves the health probes and /metrics on a private mux meant
// for the admin port, and /debug/pprof/ only when asked ([WithPprof]); it
// never serves /debug/pprof/cmdline. Importing net/http/pprof also
// registers its handlers on http.DefaultServeMux; Shoal never serves that
// mux, so they stay unreachable.
package server
