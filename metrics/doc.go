// Package metrics instruments HTTP servers with Prometheus metrics and serves
// them, using the metric names shared by every Shoal service.
//
// [HTTP.Middleware] records three series for each request:
//
//	http_requests_total{method,route,code}        counter
//	http_request_duration_seconds{method,route}   histogram
//	http_requests_in_flight                       gauge
//
// The route label is the [net/http.ServeMux] pattern that matched the request,
// with the method prefix removed: a handler registered as
// "GET /v1/items/{id}" is recorded as route="/v1/items/{id}", so the label
// stays bounded however many distinct paths clients send. The method is
// already a label of its own. A pattern that names a host keeps it
// ("example.com/v1/"). Requests that matched no pattern (404s, 405s and the
// mux's trailing-slash redirects) get route="unmatched". Methods outside the
// nine standard ones are recorded as method="OTHER".
//
// The middleware reads the pattern from the request it hands to the next
// handler once that handler returns; ServeMux sets it there. When another
// middleware between this one and the mux replaces the request (for example
// with [net/http.Request.WithContext]), wrap the mux itself in [Route] so the
// pattern is still seen. Route finds the middleware through the
// ResponseWriter's Unwrap chain, so a middleware in between that wraps the
// ResponseWriter must implement Unwrap, as [net/http.ResponseController]
// already asks of it. A middleware that answers without calling the mux at
// all (a load shedder's 503) would leave the request unmatched; wrap that
// middleware in [RouteOf] so it is counted under the route it asked for.
//
// A request costs the middleware one allocation, its writer; the series
// of each method, route and code are looked up once and kept. Middleware
// directly inside it reads what that writer saw (status, size, start)
// with [ResponseOf] rather than wrapping the writer again; package
// requestlog's line does.
//
// [NewRegistry] returns a registry with the Go runtime, process and build
// information collectors, and [Handler] serves any gatherer in the Prometheus
// text format. No code in this package registers on the global default
// registry.
package metrics
