// Package ingress is the L7 front door of an Ingress (networking.k8s.io/v1):
// an [http.Handler] that routes each request by host and path to a
// Service backend and spreads requests over the backend's ready endpoints,
// with the semantics of ingress-nginx.
//
// Routing follows the Ingress API:
//
//   - A rule's host matches the request's Host without its port; a
//     wildcard "*.example.com" matches exactly one extra label
//     ("a.example.com", not "a.b.example.com" nor "example.com"). An
//     exact host beats a wildcard, which beats the rules without a host;
//     as with nginx server blocks, once a host is chosen only its own paths
//     are tried.
//   - Exact paths match the path exactly; Prefix paths match whole path
//     elements ("/foo" matches "/foo" and "/foo/bar", not "/foobar");
//     ImplementationSpecific is treated as Prefix. The longest matching
//     path wins and Exact beats Prefix of the same length.
//   - A request no path matches goes to the defaultBackend of the first
//     Ingress declaring its host that has one, else to the first
//     defaultBackend of any Ingress, else gets 404. Ingresses are ordered
//     by creation time, then namespace and name; the first declaration of
//     a host and path wins.
//   - A backend without ready endpoints answers 503.
//
// Every request, not every connection, picks the backend's next ready
// endpoint in round-robin order, as ingress-nginx's default balancer does;
// connections to endpoints are pooled and kept alive. The proxy sets
// X-Forwarded-For and X-Real-IP to the client address, X-Forwarded-Host and
// X-Forwarded-Proto, and passes the client's Host header on.
//
// Per-Ingress annotations honoured (prefix nginx.ingress.kubernetes.io/):
//
//   - proxy-body-size (default "1m", "0" for no limit): larger request
//     bodies get 413.
//   - proxy-next-upstream (default "error timeout"): which failures of one
//     endpoint send the request on to the next: error, timeout, http_500,
//     http_502, http_503, http_504, http_403, http_404, http_429, off, and
//     non_idempotent to allow it for POST, PATCH and LOCK, which otherwise
//     are never retried.
//   - proxy-next-upstream-tries (default 3, "0" for one try per endpoint):
//     attempts per request, the first included.
//
// Annotations that change what is sent upstream and are not implemented
// (use-regex, rewrite-target) are rejected by [Handler.Update] rather
// than ignored, as are regular-expression paths.
package ingress
