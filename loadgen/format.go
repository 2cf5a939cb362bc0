package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// SchemaVersion names the layout of the JSON report (docs/load.md).
const SchemaVersion = "shoal.load/v1"

type jsonReport struct {
	Schema         string            `json:"schema"`
	Protocol       string            `json:"protocol,omitempty"`
	Target         string            `json:"target"`
	Method         string            `json:"method"`
	Start          time.Time         `json:"start"`
	ElapsedSeconds float64           `json:"elapsed_seconds"`
	Interrupted    bool              `json:"interrupted"`
	Requests       jsonRequests      `json:"requests"`
	ThroughputRPS  float64           `json:"throughput_rps"`
	LatencyMS      jsonLatency       `json:"latency_ms"`
	GRPCCodes      map[string]int64  `json:"grpc_codes,omitempty"`
	Errors         map[string]int64  `json:"errors"`
	ErrorSamples   map[string]string `json:"error_samples"`
	ServedByHeader string            `json:"served_by_header"`
	Replicas       []jsonReplica     `json:"replicas"`
	Unattributed   int64             `json:"unattributed"`
	CV             float64           `json:"cv"`
	WindowSeconds  float64           `json:"window_seconds,omitempty"`
	Windows        []jsonWindow      `json:"windows,omitempty"`
}

type jsonRequests struct {
	Scheduled int64 `json:"scheduled"`
	Sent      int64 `json:"sent"`
	Dropped   int64 `json:"dropped"`
	Completed int64 `json:"completed"`
	OK        int64 `json:"ok"`
}

type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type jsonReplica struct {
	Name     string  `json:"name"`
	Requests int64   `json:"requests"`
	Share    float64 `json:"share"`
}

type jsonWindow struct {
	StartSeconds float64       `json:"start_seconds"`
	Scheduled    int64         `json:"scheduled"`
	Completed    int64         `json:"completed"`
	Errors       int64         `json:"errors"`
	MaxLatencyMS float64       `json:"max_latency_ms"`
	CV           float64       `json:"cv"`
	Replicas     []jsonReplica `json:"replicas"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func jsonReplicas(counts map[string]int64) []jsonReplica {
	sh := shares(counts)
	out := make([]jsonReplica, 0, len(counts))
	for _, name := range sortedKeys(counts) {
		out = append(out, jsonReplica{Name: name, Requests: counts[name], Share: sh[name]})
	}
	return out
}

// MarshalJSON encodes the report in the SchemaVersion layout: times in
// seconds, latencies in milliseconds, replicas sorted by name.
func (r *Report) MarshalJSON() ([]byte, error) {
	j := jsonReport{
		Schema:         SchemaVersion,
		Target:         r.Target,
		Method:         r.Method,
		Start:          r.Start,
		ElapsedSeconds: r.Elapsed.Seconds(),
		Interrupted:    r.Interrupted,
		Requests: jsonRequests{
			Scheduled: r.Scheduled, Sent: r.Sent, Dropped: r.Dropped,
			Completed: r.Completed, OK: r.OK,
		},
		ThroughputRPS: r.Throughput,
		LatencyMS: jsonLatency{
			P50: ms(r.Latency.P50), P90: ms(r.Latency.P90), P99: ms(r.Latency.P99),
			P999: ms(r.Latency.P999), Max: ms(r.Latency.Max), Mean: ms(r.Latency.Mean),
		},
		Errors:         r.Errors,
		ErrorSamples:   r.ErrorSamples,
		GRPCCodes:      r.Codes,
		ServedByHeader: r.ServedByHeader,
		Replicas:       jsonReplicas(r.Replicas),
		Unattributed:   r.Unattributed,
		CV:             r.CV(),
		WindowSeconds:  r.Window.Seconds(),
	}
	if r.GRPC {
		j.Protocol = "grpc"
	}
	if j.Errors == nil {
		j.Errors = map[string]int64{}
	}
	if j.ErrorSamples == nil {
		j.ErrorSamples = map[string]string{}
	}
	for i := range r.Windows {
		w := &r.Windows[i]
		j.Windows = append(j.Windows, jsonWindow{
			StartSeconds: w.Start.Seconds(),
			Scheduled:    w.Scheduled,
			Completed:    w.Completed,
			Errors:       w.Errors,
			MaxLatencyMS: ms(w.MaxLatency),
			CV:           w.CV(),
			Replicas:     jsonReplicas(w.Replicas),
		})
	}
	return json.Marshal(j)
}

// WriteJSON writes the report as indented JSON (see MarshalJSON).
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("loadgen: encode report: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("loadgen: write report: %w", err)
	}
	return nil
}

// fmtDur prints a latency with three significant digits in a unit that
// suits it.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", ms(d))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// WriteText writes the report as aligned tables for a terminal.
func (r *Report) WriteText(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	if r.GRPC {
		p("target\tgrpc %s %s\n", r.Target, r.Method)
	} else {
		p("target\t%s %s\n", r.Method, r.Target)
	}
	state := ""
	if r.Interrupted {
		state = " (interrupted)"
	}
	p("elapsed\t%s%s\n", r.Elapsed.Round(time.Millisecond), state)
	p("requests\tscheduled %d\tsent %d\tdropped %d\tcompleted %d\tok %d\n",
		r.Scheduled, r.Sent, r.Dropped, r.Completed, r.OK)
	p("throughput\t%.1f req/s\n", r.Throughput)
	p("\nlatency\tp50\tp90\tp99\tp99.9\tmax\tmean\n")
	l := r.Latency
	p("\t%s\t%s\t%s\t%s\t%s\t%s\n", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max), fmtDur(l.Mean))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("loadgen: write report: %w", err)
	}

	if r.GRPC && len(r.Codes) > 0 {
		p("\ngrpc code\tcalls\tshare\n")
		var total int64
		for _, n := range r.Codes {
			total += n
		}
		for _, k := range sortedCodes(r.Codes) {
			p("%s\t%d\t%s\n", k, r.Codes[k], pct(float64(r.Codes[k])/float64(total)))
		}
	}
	if len(r.Errors) > 0 {
		p("\nerrors\tcount\tfirst seen\n")
		for _, k := range sortedKeys(r.Errors) {
			p("%s\t%d\t%s\n", k, r.Errors[k], r.ErrorSamples[k])
		}
	}
	names := r.ReplicaNames()
	p("\nreplica (%s)\trequests\tshare\n", r.ServedByHeader)
	sh := r.Shares()
	for _, n := range names {
		p("%s\t%d\t%s\n", n, r.Replicas[n], pct(sh[n]))
	}
	if r.Unattributed > 0 {
		p("(no header)\t%d\n", r.Unattributed)
	}
	p("cv of shares\t%.3f\n", r.CV())
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("loadgen: write report: %w", err)
	}

	if len(r.Windows) > 0 {
		row := func(cells ...string) { p("%s\n", strings.Join(cells, "\t")) }
		row(append([]string{"\nwindow (" + r.Window.String() + ")", "scheduled", "completed", "errors", "max", "cv"}, names...)...)
		for i := range r.Windows {
			w := &r.Windows[i]
			ws := w.Shares()
			cells := []string{
				w.Start.String() + "-" + (w.Start + r.Window).String(),
				strconv.FormatInt(w.Scheduled, 10), strconv.FormatInt(w.Completed, 10), strconv.FormatInt(w.Errors, 10),
				fmtDur(w.MaxLatency), fmt.Sprintf("%.3f", w.CV()),
			}
			for _, n := range names {
				if w.Replicas[n] > 0 {
					cells = append(cells, pct(ws[n]))
				} else {
					cells = append(cells, "-")
				}
			}
			row(cells...)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("loadgen: write report: %w", err)
	}
	return nil
}
