// Package service assembles the toolkit into a runnable reference service:
// JSON logs, the metrics registry, health checks, the public and admin
// servers, and the lifecycle that drains and stops them.
//
// Both reference services (gallery and thumbnailer) are a [Service] plus
// their own routes, checks and closers. A main binds [Options] and the
// service's own settings to flags and the environment, parses them, and
// hands them to [RunGallery] or [RunThumbnailer].
package service
