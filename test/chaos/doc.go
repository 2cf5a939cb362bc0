// Package chaos holds Shoal's adversarial suite: the reference services run
// as real processes on loopback while a test attacks them the way a hostile
// client, a slow client or an operator's kill -9 would, and asserts what
// was lost. Every case is bounded in requests and time; scripts/test.sh runs
// the suite on its own after the unit tests.
package chaos
