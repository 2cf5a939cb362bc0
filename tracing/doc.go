// Package tracing traces HTTP services and the calls they make with
// OpenTelemetry, exporting spans to an OTLP/HTTP collector.
//
// A [Tracer] gives a service three things: [Tracer.Handler] wraps its
// handler in a server span, continuing the trace named by an incoming W3C
// traceparent (and tracestate) header or starting a new one;
// [Tracer.Transport] wraps the RoundTripper of its clients in a client span
// and sends traceparent on, so the next service continues the same trace;
// [Tracer.TraceID] gives the trace ID for log lines. [Tracer.Shutdown]
// flushes the spans still buffered; call it once, after the servers have
// stopped.
//
// Server spans are named "METHOD pattern" after the [net/http.ServeMux]
// pattern that matched ("GET /items/{id}", with the http.route attribute
// "/items/{id}"), or "METHOD" when none did. The pattern is set by the mux
// on the request it was handed, so a middleware between [Tracer.Handler]
// and the mux that replaces the request (with
// [net/http.Request.WithContext], say) hides it; wrap the mux in
// [Tracer.Route] to name the span all the same. A 5xx answer or a panic
// marks a server span as an error. Client spans are named "METHOD" and
// marked as errors on a transport error or a 4xx or 5xx answer, as the
// OpenTelemetry HTTP conventions have it.
//
// With an empty [Config.Endpoint] (and no [Config.Exporter]) nothing is
// recorded or exported and no goroutine runs, yet traceparent is still read
// and sent on and new traces still get IDs, so the log lines of this
// service and of those that do export can be joined. That costs a request
// a few allocations and about a microsecond; a recorded span costs some
// forty allocations (BenchmarkHandler).
//
// New traces are sampled at [Config.SampleRatio]; a span with a parent
// follows the parent's decision, so a trace is kept whole or not at all.
//
// This is the only Shoal package that imports OpenTelemetry; package
// service takes a Tracer through an interface of its own. Nothing here
// touches OpenTelemetry's global tracer provider or propagator: each Tracer
// holds its own, and [Tracer.TracerProvider] hands it out for a program's
// own spans. The OpenTelemetry settings that its SDK would otherwise read
// from the environment (sampler, span limits, batching, resource) are set
// explicitly; [Bind] maps the standard variables that mean something here
// to flags.
package tracing
