// Package chaos holds Shoal's adversarial suite: the reference services run
// as real processes on loopback while a test attacks them the way a hostile
// client, a slow client or an operator's kill -9 would, and asserts what
// was lost. Every case is bounded in requests and time; the suite runs in
// CI after the unit tests (scripts/chaos.sh).
package chaos
