// Package health runs a service's health checks in the background and
// answers Kubernetes probes (/livez, /readyz, /startupz, /healthz) from their
// cached results.
//
// Each [Check] runs on its own interval with its own timeout in a goroutine
// owned by [Checker.Run]. Probes never run a check themselves: they read the
// last result, so a probe answers at once however slow or broken a
// dependency is. A check that ignores its context is reported as failing once
// its timeout has passed; its goroutine is abandoned, and no second call of
// that check starts until the first returns, so hung calls cannot pile up.
//
// The probes mean different things, and only readiness looks at other
// services:
//
//   - /livez fails only when a Liveness check fails. Liveness checks must
//     test the process itself (a deadlocked loop, a wedged worker), never a
//     dependency: a failing liveness probe restarts the container, and
//     restarting every replica because a database is down makes the outage
//     worse.
//   - /readyz (and its alias /healthz) fails before [Checker.MarkStarted],
//     from [Checker.SetDraining] on, and while any Critical readiness check
//     fails or has not yet produced a result. Non-critical checks are
//     reported but never fail the probe; those failing are named in the
//     report's Degraded list.
//   - /startupz fails until [Checker.MarkStarted].
//
// A probe answers 200 with {"status":"ok"} or 503 with a JSON [Report]
// naming the failing checks. With ?verbose the report lists every check of
// that probe's kind with its last result, its age and how long it took.
package health
