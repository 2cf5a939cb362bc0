// Package ingress is the L7 front door of Ingresses (networking.k8s.io/v1)
// and Gateway API HTTPRoutes (gateway.networking.k8s.io/v1): an
// [http.Handler] that routes each request to a Service backend and spreads
// requests over the backend's ready endpoints, with the semantics of
// ingress-nginx for Ingresses and of the Gateway API specification for
// HTTPRoutes. A request is matched against the HTTPRoutes first and, when
// none matches, against the Ingresses.
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
//
// HTTPRoutes ([Handler.UpdateRoutes]) attach to the HTTP and HTTPS
// listeners of Gateways of any GatewayClass through their parentRefs
// (name, namespace, sectionName, port) and the listeners' allowedRoutes
// (a namespace Selector admits every namespace). Every listener is served
// on the front door's one address, in plain HTTP; a listener's port only
// selects routes. Served from the Standard channel of Gateway API v1.6:
//
//   - Hostnames: the route's hostnames intersected with the listener's
//     ("*.example.com" covers any name below example.com). The most
//     specific hostname is tried first (exact, then wildcards from the
//     longest suffix, then routes for every host).
//   - Matches, in the specification's precedence: an Exact path, then a
//     RegularExpression path (RE2, anchored; its place is left to
//     implementations, and this is Envoy Gateway's), then the longest
//     PathPrefix (whole path elements, a trailing slash ignored); then a
//     method match, the most header matches, the most query parameter
//     matches; across routes the oldest, then namespace/name; within a
//     route the first rule and match. Headers and query parameters match
//     Exact or RegularExpression on the first value; only the first match
//     entry of a name counts.
//   - Filters: RequestHeaderModifier and ResponseHeaderModifier (on rules
//     and on backendRefs), RequestRedirect (scheme, hostname, port, path,
//     statusCode; 302 by default) and URLRewrite (hostname, path, with
//     ReplaceFullPath or ReplacePrefixMatch). RequestMirror, ExtensionRef
//     and CORS are rejected by UpdateRoutes.
//   - Weighted backendRefs: each rule sends requests to its backends in
//     proportion to their weights (default 1), exactly over every run of
//     the weights' sum; a rule whose weights sum to zero, or that has no
//     backendRefs and no redirect, answers 500 as the specification says.
//     A backend without ready endpoints answers 503.
//   - Timeouts: timeouts.request bounds the whole request, and
//     timeouts.backendRequest each attempt at a backend to its full
//     response; either answers 504.
//   - Retries (HTTPRouteRetry) and session persistence are in the
//     experimental channel in v1.6 and are rejected. Like NGINX Gateway
//     Fabric (nginx's proxy_next_upstream default), an idempotent request
//     whose endpoint cannot be reached or times out moves on to the next
//     endpoint, up to one try per endpoint. Request bodies are not limited.
package ingress
