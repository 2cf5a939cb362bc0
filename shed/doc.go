// Package shed sheds load adaptively: it caps the requests a server works on
// at once with a limit that follows measured latency, and turns away the
// excess at once with 503 and Retry-After instead of letting it queue.
//
// # Algorithm
//
// The limit is adapted with a variant of the gradient method of Netflix's
// concurrency-limits library (Gradient2), evaluated over windows of
// samples:
//
//   - Each admitted request's latency is a sample. A window closes once it
//     is at least [Config.Window] long and holds at least
//     [Config.MinWindowSamples] samples, or as soon as MinWindowSamples of
//     its samples and their mean are over twice the tolerated latency
//     (Tolerance × long RTT), or three of them when the middleware yields
//     for handlers (see below): at the onset of an overload every request
//     admitted meanwhile joins the queue. Its mean latency is the short
//     RTT. A request admitted before the
//     limit was last lowered is no sample: it measures the queue of the
//     old limit, which has been answered.
//   - The long RTT is an exponentially weighted mean of short RTTs over
//     [Config.LongWindow] windows: the latency the service has when it is
//     not queueing. Until that many windows have closed, a short RTT below
//     it pulls it down as into a plain mean of the windows so far, so a
//     cold start's slow first window does not set it. When the long RTT
//     exceeds twice the short RTT, it decays by 5% per window so it can follow a service that got faster. Unlike
//     Gradient2, each short RTT enters the mean capped at Tolerance × long
//     RTT: under a sustained overload the mean would otherwise learn the
//     queueing latency as normal and let the limit creep up; capped, a
//     service that really got slower is still learned, over a few
//     LongWindows.
//   - gradient = Tolerance × long / short, and on one core (GOMAXPROCS
//     1) while the middleware yields, at most 1 / (1 + wait) when the
//     requests admitted waited for the CPU after their yield more than a
//     fifth of their work on average (wait is that share): more were
//     admitted than the core runs at once. On more cores such a wait may
//     be work the limit does not admit, which fewer slots would not
//     relieve. Below 1 (queueing) the limit drops at once to limit ×
//     gradient, but at most by half per window, a latency being possibly
//     an outlier; the CPU wait takes it to limit / (1 + wait) however far
//     that is, the wait counting the requests that queued for the core. Otherwise it probes
//     upward by Smoothing × min(Headroom, √limit): a fixed step would be
//     a deep queue for a service that needs few slots, such as a core of
//     CPU-bound work, which needs one. The limit stays within [MinLimit,
//     MaxLimit]. Down fast, up slowly: a limit above capacity costs every
//     request its queueing now, one below it costs a few windows of
//     probing.
//   - A probe that fails (a window that reached a new whole slot, then a
//     drop below it in the next) holds that slot off: the limit stays
//     just under it for a second, doubled each time a probe of the same
//     slot fails again, up to 16 s. On a core of CPU-bound work the
//     second slot queues a whole request's work behind the first, and
//     probing it again at once kept the limit there a third of the
//     time; the answered requests' p99 followed. A window within the
//     tolerance at the slot ends the hold's doubling, and one at least a
//     quarter faster than when the hold began ends the hold at once:
//     the work got cheaper, and may need the slot.
//   - While fewer than half the limit were in flight during the window, the
//     limit is left alone: an idle service has not shown what it can carry.
//     On one core, while the middleware yields and the process spent at
//     least half the handlers' time on the CPU (CPU-bound work, read from
//     the process's CPU time), it drifts down instead, by Smoothing a
//     window towards twice what was in flight (at least two): there each
//     slot a light load leaves unused is one more request queued for the
//     core when an overload begins, admitted before a window can measure
//     the queue. Handlers that wait on other services keep their limit
//     for the bursts they can take.
//   - A window in which a request reported [ErrDropped] (a timeout or an
//     overloaded dependency) multiplies the limit by [Config.Backoff]
//     instead, as AIMD limiters do.
//
// [Limiter.Middleware] yields the CPU once after admitting a request and
// before running the handler, when handlers take a millisecond or more of
// their own (timed from the yield to their end). A handler that computes
// without blocking runs to its end once scheduled, so on a saturated CPU
// the requests waiting for it would queue in the Go scheduler, never in
// flight: the limiter would see one request at a time at unloaded latency
// while the queue grew without bound. Yielding lets them reach the limiter
// while the admitted work is counted, so it turns them away at once, and
// the admitted request's latency includes the queue it waited in. Cheaper
// handlers are not yielded for: their work costs about what serving any
// request costs, a rejection included, so turning requests away would not
// relieve the CPU, and the scheduler's delay would only read as overload.
//
// The quick steps above (windows of Window, closed early after three slow
// samples, the drop at once, the √limit probing, the cold start's plain
// mean) apply while the middleware yields, where latency counts the queue
// for the CPU. For cheaper handlers the limit follows Gradient2 as
// published: windows of at least a second after the first (which is of
// Window, to learn the handlers' work soon), never closed early, gradient
// clamped to [0.5, 1], and new = limit × gradient + Headroom smoothed by
// Smoothing both ways. Their latency is mostly the Go scheduler's and the
// OS's delay, noisy on a busy machine, and a quick limit would read that
// noise as overload and turn away requests that cost no more to serve
// than to refuse.
//
// [Limiter.Acquire] either admits at once or reports failure. A request
// the Middleware finds at the full limit may wait a little for a slot
// instead, once the long RTT is known: at most half the limit of them
// (at least one) wait, each at most the long RTT times 1 + 1/limit (twice
// it with one slot, whose request in service may have all its work left;
// at a limit of one slot per core or less, the last window's latency in
// place of the long RTT when it is longer: the work itself is slower,
// for CPU that what the limit turns away takes), and a slot freed goes to the newest waiting critical request, else the
// newest other; a full queue turns the newcomer away, unless it is
// critical and a waiter is not (that one leaves with 503 instead). Turned
// away at once, a request leaves its slot idle from one request's end
// until the next arrives, and with the few slots CPU-bound work needs
// (about one a core) that idle time was a tenth to a third of the CPU
// under overload. Bounded so, the wait adds at most about twice the
// unloaded latency, and it is left out of the latency samples: the limit
// follows the work admitted.
// The adaptation's time comes from [Config.Now], so the algorithm is
// deterministic under a fake clock; the wait is timed by the real clock.
//
// # Priority
//
// With [Config.Critical] set, the middleware sheds the other requests
// first: they are admitted only while fewer than the limit less
// [Config.Reserve] of it (a quarter, at least one slot) are in flight,
// and not at all for a while after a critical request was turned away
// (a Window, or the long RTT once it is known and critical requests wait
// for slots ahead of the others). The reserve keeps room for critical
// requests arriving at any moment; the pause gives them the whole limit
// while they alone are more than it can take. The limit itself is shared and adapts as before.
// [Limiter.Acquire] knows no priority: it admits up to the whole limit.
//
// # Metrics
//
// The limiter exports, on the registerer it is given:
//
//   - shed_limit (gauge): the current concurrency limit.
//   - shed_in_flight (gauge): the work admitted now.
//   - shed_utilization_ratio (gauge, [0, ∞)): shed_in_flight over
//     shed_limit, read together ([Limiter.Utilization]); 1 is at the
//     limit, where the next request is turned away, and it exceeds 1
//     briefly when the limit drops below the work already admitted.
//   - shed_in_flight_seconds_total and shed_utilization_seconds_total
//     (counters): shed_in_flight and shed_utilization_ratio integrated
//     over time, so that rate(shed_utilization_seconds_total[r]) is the
//     utilisation averaged over r. Autoscale on that, not on the gauge:
//     a scrape samples the gauge at one instant, and on a saturated pod
//     with one core the scrape runs between handlers, when fewer are in
//     flight (a thumbnailer shedding 45% of its requests read 0.5 on
//     average, scraped every half second). The ratio itself is
//     integrated, not the limit apart: a ratio of the two integrals
//     would weigh each moment by its limit, and a stretch at a high
//     limit would drown the saturated stretch after it.
//   - shed_rejected_total (counter): requests turned away.
//
// The utilisation is the headroom left to a replica, measured against
// what the replica itself has learnt it can carry rather than against a
// configured CPU request or request rate; deploy/monitoring's
// prometheus-adapter rule serves its 30s average as the Pods metric
// shed_utilization_ratio, and overlays/headroom scales on it. What it
// reads depends on the regime: while the middleware yields for CPU-bound
// handlers the limit follows the work, and a saturated one-core replica,
// whose limit settles at 1, reads 0.9-1 (before the CPU wait and the
// hold above, its limit settled at 2 or 3 and it read 0.6-0.9), and
// since its limit drifts down under a light load too (to twice what is in
// flight), the ratio rises with the load before it saturates, where at
// the initial limit of 20 it read 0.05 or less (about one request in
// flight) until the overload; for
// cheap handlers and on more cores the limit stays high until an
// overload, and the ratio stays small until then. All of them are
// computed when scraped; the request path only adds a product and a
// quotient to the integrals under the lock admission takes anyway, and
// allocates nothing.
//
// A [Budget] bounds memory, not work: a request waiting in one for memory
// (a body's next block, a result's room) parks its Limiter slot as it does
// while its client sends its body, so waiting for memory never turns away
// requests that need none. [Budget.ReadAllEvictable] lets a waiting caller
// evict the body that arrives slowest, once it has been read for a second
// at under 128 KiB/s on average: bodies that send a block and stall no
// longer hold the budget until a timeout.
package shed
