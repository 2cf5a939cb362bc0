// Package dashboard serves the live web page of `shoal up`: deployments,
// pods with their load, services and their endpoints, Ingress and HTTPRoute URLs,
// autoscaler decisions, a replicas-over-time chart per deployment and the
// latest events, refreshed every second from the snapshot API.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary; it
// loads nothing from other origins, so it works offline.
//
// Its elements carry stable hooks for browser tests:
//
//   - body[data-state]: loading, ok, or error while the API does not
//     answer or answers with an error; #error is the banner that says so.
//   - #deployments tr[data-deployment=NAME][data-namespace=NS] with
//     data-replicas, data-ready, data-updated, data-available, data-current.
//   - figure[data-chart="NS/NAME"] polyline[data-series=replicas|ready|desired]
//     with data-points (history points drawn) and data-last (latest value);
//     there is no desired line while the deployment has no autoscaler.
//   - #pods tr[data-pod=NAME] with data-namespace, data-deployment-name,
//     data-status, data-ready (true or false), data-ip, data-restarts.
//   - #services tr[data-service=NAME] with data-endpoints (ready count).
//   - #ingresses tr[data-ingress=NAME] with data-url.
//   - #routes tr[data-route=NAME] (one per HTTPRoute match and hostname)
//     with data-namespace, data-rule and data-url.
//   - #autoscalers tr[data-autoscaler=NAME] with data-kind, data-current,
//     data-desired.
//   - #events tr[data-reason] with data-type and data-object, newest first.
package dashboard
