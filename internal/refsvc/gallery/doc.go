// Package gallery is the gallery reference service: its HTTP API (sign-in
// with stateless sessions, thumbnails made by the thumbnailer, and each
// user's history of them), and its wiring into a service.Service, [Bind]
// for its settings and [Add] for its store, upstream, routes and checks,
// which is all cmd/gallery does beyond service.Main. The thumbnailer is
// called over HTTP through a service.Upstream, or over gRPC through
// package grpcclient when THUMBNAILER_GRPC names it; either way its
// answers reach users as the same statuses.
//
// Every piece of user state lives in the session store (Redis in a
// cluster), so any gallery replica can serve any request.
package gallery
