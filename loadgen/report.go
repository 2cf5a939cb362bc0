package loadgen

import (
	"math"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the outcome of a run. Counts satisfy
// Scheduled = Sent + Dropped and Sent = Completed + transport errors.
type Report struct {
	// Target and Method of the requests: for gRPC, the target name and
	// the full method name.
	Target, Method string
	// GRPC is true for a run of gRPC calls (Config.GRPC).
	GRPC bool
	// Start is the wall-clock time of the first scheduled request.
	Start time.Time
	// Elapsed runs from Start to the end of the last request.
	Elapsed time.Duration
	// Interrupted is true when the context ended the run before its
	// timetable did.
	Interrupted bool

	Scheduled int64 // requests the timetable asked for
	Sent      int64 // requests started
	Dropped   int64 // requests not started because MaxInFlight were in flight
	Completed int64 // responses received, any status
	OK        int64 // responses with a 1xx-3xx status; gRPC calls answered OK
	// Throughput is Completed per second of Elapsed.
	Throughput float64
	// Latency of the completed requests, each measured from its
	// intended send time to the end of its response body.
	Latency Latency
	// Codes counts gRPC calls by final status code name ("OK",
	// "Unavailable", ...), whether the server or the client set it; it
	// sums to Sent. Empty for HTTP.
	Codes map[string]int64
	// Errors counts failed requests by kind (the Kind constants,
	// HTTPKind codes and GRPCKind codes).
	Errors map[string]int64
	// ErrorSamples holds, for each kind in Errors, the message of its
	// first error: the transport's error text, or an error response's
	// status and the start of its body.
	ErrorSamples map[string]string

	// ServedByHeader is the response header (gRPC: metadata key)
	// Replicas is keyed on.
	ServedByHeader string
	// Replicas counts responses by replica.
	Replicas map[string]int64
	// Unattributed counts responses without the served-by header.
	Unattributed int64

	// Window is the length of each of Windows; zero when not asked for.
	Window  time.Duration
	Windows []Window

	hist *hdrhistogram.Snapshot
}

// Latency holds percentiles of request latency.
type Latency struct {
	P50, P90, P99, P999, Max, Mean time.Duration
}

// Window is one time window of a run, by scheduled send time.
type Window struct {
	Start      time.Duration // from the start of the run
	Scheduled  int64
	Completed  int64
	Errors     int64
	MaxLatency time.Duration
	Replicas   map[string]int64
}

// Percentile returns the latency below which q percent (0-100) of the
// completed requests fall.
func (r *Report) Percentile(q float64) time.Duration {
	if r.hist == nil {
		return 0
	}
	return time.Duration(hdrhistogram.Import(r.hist).ValueAtQuantile(q))
}

// Shares returns each replica's fraction of the attributed responses;
// the fractions sum to 1 (or the map is empty).
func (r *Report) Shares() map[string]float64 { return shares(r.Replicas) }

// CV returns the coefficient of variation (population standard
// deviation over mean) of the replicas' shares: 0 when perfectly even.
func (r *Report) CV() float64 { return cv(r.Replicas) }

// ReplicaNames returns the replicas seen in the run, sorted.
func (r *Report) ReplicaNames() []string { return sortedKeys(r.Replicas) }

// Shares returns each replica's fraction of the window's attributed
// responses.
func (w *Window) Shares() map[string]float64 { return shares(w.Replicas) }

// CV returns the coefficient of variation of the window's shares over
// the replicas that answered in it.
func (w *Window) CV() float64 { return cv(w.Replicas) }

func shares(counts map[string]int64) map[string]float64 {
	var total int64
	for _, n := range counts {
		total += n
	}
	s := make(map[string]float64, len(counts))
	for k, n := range counts {
		s[k] = float64(n) / float64(total)
	}
	return s
}

// cv is the same over counts and over shares, as shares are counts
// scaled by a constant.
func cv(counts map[string]int64) float64 {
	if len(counts) == 0 {
		return 0
	}
	var sum float64
	for _, n := range counts {
		sum += float64(n)
	}
	mean := sum / float64(len(counts))
	if mean == 0 {
		return 0
	}
	var sq float64
	for _, n := range counts {
		d := float64(n) - mean
		sq += d * d
	}
	return math.Sqrt(sq/float64(len(counts))) / mean
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
