package podmetrics

import (
	"math"
	"sort"
	"strings"
	"time"
)

// Load is a pod's request load between two scrapes.
type Load struct {
	// RPS is requests per second; ErrorRPS counts only 5xx responses.
	RPS      float64
	ErrorRPS float64
	// MeanLatency, P50 and P99 are request durations in seconds; P50 and
	// P99 interpolate inside the histogram buckets as Prometheus'
	// histogram_quantile does. They are zero when no request completed.
	MeanLatency float64
	P50         float64
	P99         float64
	// InFlight is the in-flight gauge of the later scrape.
	InFlight float64
}

// Rates computes the load between two scrapes of one pod. A counter
// lower in cur than in prev was reset (the process restarted): as
// Prometheus does, its increase is then its value in cur. A code seen
// only in cur has no earlier sample and, as in Prometheus, adds nothing.
// The result is zero, except InFlight, unless cur is later than prev.
func Rates(prev, cur Sample) Load {
	l := Load{InFlight: cur.InFlight}
	dt := cur.Time.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return l
	}
	for code, v := range cur.Requests {
		p, ok := prev.Requests[code]
		if !ok {
			continue
		}
		inc := increase(p, v)
		l.RPS += inc / dt
		if strings.HasPrefix(code, "5") {
			l.ErrorRPS += inc / dt
		}
	}
	d := histogramIncrease(prev.Duration, cur.Duration)
	if d.Count > 0 {
		l.MeanLatency = d.Sum / d.Count
		l.P50 = zeroNaN(Quantile(0.5, d.Buckets))
		l.P99 = zeroNaN(Quantile(0.99, d.Buckets))
	}
	return l
}

func increase(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// histogramIncrease is cur - prev bucket by bucket; a reset of the count
// takes cur whole, as a reset counter does.
func histogramIncrease(prev, cur Histogram) Histogram {
	if cur.Count < prev.Count {
		return cur
	}
	out := Histogram{Count: cur.Count - prev.Count, Sum: cur.Sum - prev.Sum}
	before := make(map[float64]float64, len(prev.Buckets))
	for _, b := range prev.Buckets {
		before[b.UpperBound] = b.Count
	}
	for _, b := range cur.Buckets {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: b.UpperBound, Count: increase(before[b.UpperBound], b.Count)})
	}
	return out
}

// Quantile returns the q-quantile of cumulative buckets the way
// Prometheus' histogram_quantile does for classic histograms: linear
// interpolation inside the bucket holding the rank, the lower bound of
// the first bucket taken as 0 (when its upper bound is positive), the
// upper bound of the last finite bucket when the rank falls in +Inf,
// NaN without observations, without a +Inf bucket or with fewer than two
// buckets, and -Inf/+Inf for q below 0/above 1.
func Quantile(q float64, buckets []Bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	b := append([]Bucket(nil), buckets...)
	sort.Slice(b, func(i, j int) bool { return b[i].UpperBound < b[j].UpperBound })
	if len(b) < 2 || !math.IsInf(b[len(b)-1].UpperBound, 1) {
		return math.NaN()
	}
	// Scrapes are not atomic: a later bucket can read lower than an
	// earlier one; Prometheus repairs that by carrying the maximum.
	for i := 1; i < len(b); i++ {
		if b[i].Count < b[i-1].Count {
			b[i].Count = b[i-1].Count
		}
	}
	total := b[len(b)-1].Count
	if total == 0 || math.IsNaN(total) {
		return math.NaN()
	}
	rank := q * total
	i := sort.Search(len(b)-1, func(i int) bool { return b[i].Count >= rank })
	if i == len(b)-1 {
		return b[len(b)-2].UpperBound
	}
	if i == 0 && b[0].UpperBound <= 0 {
		return b[0].UpperBound
	}
	start, end := 0.0, b[i].UpperBound
	count := b[i].Count
	if i > 0 {
		start = b[i-1].UpperBound
		count -= b[i-1].Count
		rank -= b[i-1].Count
	}
	if count == 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// CPUSample is a container's or pod's cumulative CPU time at one moment,
// as the pod runtime reports it.
type CPUSample struct {
	Time time.Time
	CPU  time.Duration
}

// CPURate is the CPU usage in cores between two samples, as metrics-server
// computes it from cAdvisor's cumulative usage. A lower cumulative time in
// cur means the process restarted: cur's time is then the whole usage
// since, as a reset counter. Zero unless cur is later than prev.
func CPURate(prev, cur CPUSample) float64 {
	dt := cur.Time.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return 0
	}
	used := cur.CPU - prev.CPU
	if used < 0 {
		used = cur.CPU
	}
	return used.Seconds() / dt
}
