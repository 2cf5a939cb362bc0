package shed

import (
	"math"
	"time"
)

// usage is the work in flight and the limit integrated over time, in
// request-seconds: their rates' ratio over any range is the utilisation
// averaged over it, which a scrape of the instantaneous ratio cannot
// give (see Metrics in the package documentation).
type usage struct {
	at       time.Time // accounted up to
	inFlight float64
	limit    float64
}

// accountLocked brings l.used up to now with the values in flight and
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
	l.used.limit += math.Floor(l.limit) * s
	l.used.at = now
}

// usage returns the integrals up to now: request-seconds admitted, and
// limit-seconds.
func (l *Limiter) usage() (inFlight, limit float64) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accountLocked(now)
	return l.used.inFlight, l.used.limit
}
