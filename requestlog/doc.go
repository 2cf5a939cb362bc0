// Package requestlog writes request logs: one structured line per request,
// and the request's identity in every log line made while serving it.
//
// Three pieces work together:
//
//   - [ID] gives every request an ID: the caller's X-Request-ID when it is
//     a sane one, a fresh random one otherwise. The ID goes on the
//     request's context and on the response, so a client quoting it in a
//     bug report points at the server's log lines.
//   - [Middleware] logs one line per request (message "request") with its
//     method, route, status, size, duration, ID and trace ID. It can
//     sample successful requests; a request answered 5xx, or whose handler
//     panicked, is always logged.
//   - [Handler] wraps a slog.Handler so that a record logged with the
//     request's context (logger.InfoContext(r.Context(), ...)) carries
//     request_id and trace_id as top-level fields, whatever groups the
//     logger has opened. Logging without the context adds nothing: the
//     context is the only place the ID lives.
//
// Put ID outside Middleware, and both outside anything that logs, so that
// every line made while serving a request can be joined on its ID:
//
//	slog.SetDefault(slog.New(requestlog.Handler(slog.NewJSONHandler(os.Stderr, nil), nil)))
//	h := requestlog.ID(requestlog.Middleware(requestlog.Config{}, mux))
//
// An incoming ID is never trusted beyond its syntax: it must be 1 to 128
// bytes of printable ASCII without spaces, and exactly one X-Request-ID
// header; anything else is replaced, and the replacement is also written
// to the request's header, so code that forwards the header forwards the
// sanitized value.
package requestlog
