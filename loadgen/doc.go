// Package loadgen generates open-loop HTTP or unary gRPC load and reports
// how it was served: throughput, latency percentiles, errors by kind (and
// gRPC status codes), and each replica's share of the requests.
//
// Requests follow a fixed timetable (a constant rate or a sequence of
// rate steps), and each request's latency runs from the time the
// timetable meant to send it, not from the time a worker got round to
// it. A server that stalls therefore shows the stall in the latency of
// every request scheduled during it, which closed-loop generators hide
// (coordinated omission). The number of requests in flight is capped;
// a request that is due while the cap is reached is not sent later but
// counted as dropped.
//
// Each response's replica is read from a header (X-Served-By by
// default; for gRPC, the x-served-by key of the header or trailer
// metadata, which Shoal's gRPC kit sets); the report gives each replica's share and the coefficient of
// variation of the shares, over the whole run and per time window, so
// tests and the shoal CLI can tell how evenly a service balanced the
// load.
//
// A gRPC run (Config.GRPC) sends one method with one message, already in
// protobuf wire format (package loadgen/grpcmsg makes it from JSON through
// the server's reflection), over one channel whose resolver and balancing
// policy the caller's Dial chooses. A call counts as completed when the
// server sent its status, whatever the code; calls that failed in the
// client (refused, timed out, ...) get the kinds HTTP requests get.
//
// The timetable and the report's arithmetic are pure functions of their
// inputs (rate steps, seed, recorded results); only Run touches the
// clock and the network.
package loadgen
