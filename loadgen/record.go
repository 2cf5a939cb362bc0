package loadgen

import (
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1µs to MaxTimeout, three significant digits.
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(MaxTimeout + time.Minute)
	histDigits  = 3
)

// result is the outcome of one scheduled request.
type result struct {
	offset   time.Duration // intended send time, from the start of the run
	latency  time.Duration // from the intended send time to the end of the body
	answered bool          // a response (HTTP) or a status from the server (gRPC) arrived
	status   int           // HTTP status; 0 for gRPC or when no response arrived
	code     string        // gRPC status code name of every sent call, "" for HTTP
	kind     string        // error kind, "" for a 1xx-3xx response or an OK call
	msg      string        // what went wrong, for the kind's sample; "" without a kind
	servedBy string        // value of the served-by header, "" if absent
}

// windowAcc accumulates one time window.
type windowAcc struct {
	scheduled, completed, errors int64
	maxLatency                   time.Duration
	replicas                     map[string]int64
}

// recorder aggregates results. It is shared by the workers and the
// progress line, hence the lock; a record is a handful of map and
// histogram updates, far cheaper than the request it records.
type recorder struct {
	mu           sync.Mutex
	window       time.Duration
	hist         *hdrhistogram.Histogram
	scheduled    int64
	completed    int64 // responses, any status
	ok           int64 // 1xx-3xx responses, OK calls
	codes        map[string]int64
	unattributed int64 // responses without the served-by header
	errors       map[string]int64
	samples      map[string]string // first message of each error kind
	replicas     map[string]int64
	windows      []windowAcc
	lastOffset   time.Duration
}

func newRecorder(window time.Duration) *recorder {
	return &recorder{
		window:   window,
		hist:     hdrhistogram.New(histLowest, histHighest, histDigits),
		errors:   map[string]int64{},
		samples:  map[string]string{},
		replicas: map[string]int64{},
		codes:    map[string]int64{},
	}
}

func (r *recorder) record(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scheduled++
	r.lastOffset = max(r.lastOffset, res.offset)
	var w *windowAcc
	if r.window > 0 {
		i := int(res.offset / r.window)
		for len(r.windows) <= i {
			r.windows = append(r.windows, windowAcc{replicas: map[string]int64{}})
		}
		w = &r.windows[i]
		w.scheduled++
	}
	if res.kind != "" {
		r.errors[res.kind]++
		if _, ok := r.samples[res.kind]; !ok && res.msg != "" {
			r.samples[res.kind] = res.msg
		}
		if w != nil {
			w.errors++
		}
	}
	if res.code != "" {
		r.codes[res.code]++
	}
	if !res.answered {
		return
	}
	r.completed++
	if res.kind == "" {
		r.ok++
	}
	_ = r.hist.RecordValue(max(int64(res.latency), histLowest))
	if w != nil {
		w.completed++
		w.maxLatency = max(w.maxLatency, res.latency)
	}
	if res.servedBy == "" {
		r.unattributed++
		return
	}
	name := replicaName(res.servedBy)
	if _, seen := r.replicas[name]; !seen && len(r.replicas) >= MaxReplicas {
		name = OtherReplicas
	}
	r.replicas[name]++
	if w != nil {
		w.replicas[name]++
	}
}

// OtherReplicas names, in a report, the replicas past the first
// MaxReplicas.
const OtherReplicas = "(other replicas)"

// replicaName is how a report names the replica a served-by value names.
// The value is the server's to choose: it is cut at 253 bytes (a DNS
// name's length) and what is not printable becomes "?", so that a server
// can neither grow the report without bound nor write control sequences
// to the terminal that shows it.
func replicaName(v string) string {
	if len(v) > maxReplicaName {
		v = v[:maxReplicaName]
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, v)
}

const maxReplicaName = 253

// progress is a snapshot for the progress line.
type progress struct {
	scheduled, completed, errors int64
	p99                          time.Duration
}

func (r *recorder) progress() progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs int64
	for _, n := range r.errors {
		errs += n
	}
	return progress{
		scheduled: r.scheduled,
		completed: r.completed,
		errors:    errs,
		p99:       time.Duration(r.hist.ValueAtQuantile(99)),
	}
}

// report builds the Report; elapsed is the wall time of the run.
func (r *recorder) report(elapsed time.Duration) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{
		Elapsed:      elapsed,
		Scheduled:    r.scheduled,
		Completed:    r.completed,
		OK:           r.ok,
		Unattributed: r.unattributed,
		Errors:       cloneCounts(r.errors),
		ErrorSamples: cloneSamples(r.samples),
		Replicas:     cloneCounts(r.replicas),
		Codes:        cloneCounts(r.codes),
		Window:       r.window,
		hist:         r.hist.Export(),
	}
	rep.Dropped = rep.Errors[KindDropped]
	rep.Sent = rep.Scheduled - rep.Dropped
	if elapsed > 0 {
		rep.Throughput = float64(r.completed) / elapsed.Seconds()
	}
	if r.completed > 0 {
		rep.Latency = Latency{
			P50:  time.Duration(r.hist.ValueAtQuantile(50)),
			P90:  time.Duration(r.hist.ValueAtQuantile(90)),
			P99:  time.Duration(r.hist.ValueAtQuantile(99)),
			P999: time.Duration(r.hist.ValueAtQuantile(99.9)),
			Max:  time.Duration(r.hist.Max()),
			Mean: time.Duration(r.hist.Mean()),
		}
	}
	for i, w := range r.windows {
		rep.Windows = append(rep.Windows, Window{
			Start:      time.Duration(i) * r.window,
			Scheduled:  w.scheduled,
			Completed:  w.completed,
			Errors:     w.errors,
			MaxLatency: w.maxLatency,
			Replicas:   cloneCounts(w.replicas),
		})
	}
	return rep
}

func cloneSamples(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func cloneCounts(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
