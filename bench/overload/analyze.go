package main

import (
	"math"
	"slices"
	"time"
)

// never is the latency a timed-out or failed request counts as when
// judging whether a window settled.
const never = time.Duration(math.MaxInt64)

// quantile returns the nearest-rank q-quantile of sorted, 0 if empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// answeredLatencies returns the sorted latencies of the 200s among ss
// scheduled in [from, to).
func answeredLatencies(ss []sample, from, to time.Duration) []time.Duration {
	var l []time.Duration
	for _, s := range ss {
		if s.out == answered && s.at >= from && s.at < to {
			l = append(l, s.latency)
		}
	}
	slices.Sort(l)
	return l
}

// stepSummary is what one step of load did.
type stepSummary struct {
	total, answered, rejected, timedOut, failed int
	critical, criticalAnswered                  int     // of the total and the answered
	goodput                                     float64 // 200s per second of the step
	p50, p99                                    time.Duration
}

// summarize sums up the samples scheduled in [onset, onset+dur).
func summarize(ss []sample, onset, dur time.Duration) stepSummary {
	var s stepSummary
	for _, x := range ss {
		if x.at < onset || x.at >= onset+dur {
			continue
		}
		s.total++
		if x.critical {
			s.critical++
		}
		switch x.out {
		case answered:
			s.answered++
			if x.critical {
				s.criticalAnswered++
			}
		case rejected:
			s.rejected++
		case timedOut:
			s.timedOut++
		default: // failed, notSent
			s.failed++
		}
	}
	s.goodput = float64(s.answered) / dur.Seconds()
	l := answeredLatencies(ss, onset, onset+dur)
	s.p50, s.p99 = quantile(l, 0.50), quantile(l, 0.99)
	return s
}

// windowP99s returns, for each window w of scheduled send time from
// onset to onset+dur, the p99 of the 200s in it, with timed-out and failed
// requests counted as infinitely slow and rejections not counted; -1 for a
// window holding neither 200s nor failures (all rejected, or empty).
func windowP99s(ss []sample, onset, dur, w time.Duration) []time.Duration {
	n := int((dur + w - 1) / w)
	windows := make([][]time.Duration, n)
	for _, x := range ss {
		if x.at < onset || x.at >= onset+dur {
			continue
		}
		i := int((x.at - onset) / w)
		switch x.out {
		case answered:
			windows[i] = append(windows[i], x.latency)
		case rejected:
		default:
			windows[i] = append(windows[i], never)
		}
	}
	p99s := make([]time.Duration, n)
	for i, l := range windows {
		if len(l) == 0 {
			p99s[i] = -1
			continue
		}
		slices.Sort(l)
		p99s[i] = quantile(l, 0.99)
	}
	return p99s
}

// settleTime returns how long after onset the latency stops exceeding
// limit: from the returned time to the end of the step, the p99 of every
// window (see windowP99s) is within limit. A window without 200s or
// failures neither breaks nor proves settling. settled is false when the
// step's last window was still over the limit.
func settleTime(ss []sample, onset, dur, w, limit time.Duration) (settle time.Duration, settled bool) {
	p99s := windowP99s(ss, onset, dur, w)
	lastBad := -1
	for i, p := range p99s {
		if p > limit {
			lastBad = i
		}
	}
	if lastBad == len(p99s)-1 {
		return dur, false
	}
	return time.Duration(lastBad+1) * w, true
}

// windowsOver counts the windows from onset+from to the step's end whose
// p99 exceeds limit, and those judged (holding 200s or failures).
func windowsOver(ss []sample, onset, from, dur, w, limit time.Duration) (over, judged int) {
	for i, p := range windowP99s(ss, onset, dur, w) {
		if time.Duration(i)*w < from || p < 0 {
			continue
		}
		judged++
		if p > limit {
			over++
		}
	}
	return over, judged
}
