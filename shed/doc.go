// Package shed sheds load adaptively: it caps the requests a server works on
// at once with a limit that follows measured latency, and turns away the
// excess at once with 503 and Retry-After instead of letting it queue.
//
// # Algorithm
//
// The limit is adapted with the gradient method of Netflix's
// concurrency-limits library (Gradient2), evaluated over windows of
// samples:
//
//   - Each admitted request's latency is a sample. A window closes once it
//     is at least [Config.Window] long and holds at least
//     [Config.MinWindowSamples] samples; its mean latency is the short RTT.
//   - The long RTT is an exponentially weighted mean of short RTTs over
//     [Config.LongWindow] windows: the latency the service has when it is
//     not queueing. When the long RTT exceeds twice the short RTT, it decays
//     by 5% per window so it can follow a service that got faster. Unlike
//     Gradient2, each short RTT enters the mean capped at Tolerance × long
//     RTT: under a sustained overload the mean would otherwise learn the
//     queueing latency as normal within minutes and let the limit creep up;
//     capped, a service that really got slower is still learned, over a few
//     LongWindows.
//   - gradient = clamp(Tolerance × long / short, 0.5, 1). While latency stays
//     within the tolerance the gradient is 1; as queueing inflates the short
//     RTT it falls toward 0.5.
//   - new = limit × gradient + Headroom, smoothed:
//     limit = limit × (1 − Smoothing) + new × Smoothing, clamped to
//     [MinLimit, MaxLimit]. Headroom lets the limit probe upward when
//     latency is flat and sets the floor of the decrease.
//   - While fewer than half the limit were in flight during the window, the
//     limit is left alone: an idle service has not shown what it can carry.
//   - A window in which a request reported [ErrDropped] (a timeout or an
//     overloaded dependency) multiplies the limit by [Config.Backoff]
//     instead, as AIMD limiters do.
//
// Nothing waits in a queue: [Limiter.Acquire] either admits at once or
// reports failure, so the latency of admitted work stays that of a service
// running at the limit. Time comes from [Config.Now], so the algorithm is
// deterministic under a fake clock.
//
// The limiter exports shed_limit, shed_in_flight and shed_rejected_total
// on the registerer it is given.
package shed
