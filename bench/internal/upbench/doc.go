// Package upbench runs one Deployment of real processes in an in-process
// `shoal up` for a benchmark program: it builds the thumbnailer, starts
// `shoal up` on loopback networks of its own, waits for the Deployment to
// serve through its Service, reads the API's snapshots while the load
// runs, and stops everything within a bound.
package upbench
