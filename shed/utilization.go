package shed

import (
	"math"
	"time"
)

// usage is the work in flight, and its ratio to the limit, integrated
// over time: the rate of either over a range is its average over the
// range, which a scrape of the instantaneous value cannot give (see
// Metrics in the package documentation). The ratio is integrated rather
// than the limit alone: the ratio of the two integrals would weigh each
// moment by its limit, so a stretch with the initial high limit would
// drown the saturated stretch after it.
type usage struct {
	at       time.Time // accounted up to
	inFlight float64   // request-seconds
	util     float64   // seconds × in flight / limit
}

// accountLocked brings l.used up to now with the work in flight and the
// limit held since it was last brought up; it is called before either
// changes. A now earlier than the last (clock reads race for l.mu) adds
// nothing. l.mu must be held.
func (l *Limiter) accountLocked(now time.Time) {
	dt := now.Sub(l.used.at)
	if dt <= 0 {
		return
	}
	s := dt.Seconds()
	l.used.inFlight += float64(l.inFlight) * s
	l.used.util += float64(l.inFlight) / math.Floor(l.limit) * s
	l.used.at = now
}

// usage returns the integrals up to now: request-seconds admitted, and
// utilisation-seconds.
func (l *Limiter) usage() (inFlight, util float64) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accountLocked(now)
	return l.used.inFlight, l.used.util
}
