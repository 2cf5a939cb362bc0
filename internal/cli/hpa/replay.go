package hpa

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/autoscale"
)

// spec is one autoscaler a replay runs, with its name.
type spec struct {
	name         string
	hpa          *autoscalingv2.HorizontalPodAutoscaler
	scaledObject *autoscale.ScaledObject
	config       autoscale.Config
}

// DecodeSpec parses a spec file for replay and tune: a
// HorizontalPodAutoscaler or KEDA ScaledObject manifest, or a `shoal hpa
// simulate` scenario, whose hpa or scaledObject, name and config are
// used (its load and model are replaced by the replay's). It returns the
// name (the scenario's, else metadata.name), the spec and the config.
func DecodeSpec(data []byte) (string, *autoscalingv2.HorizontalPodAutoscaler, *autoscale.ScaledObject, autoscale.Config, error) {
	var kind struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &kind); err != nil {
		return "", nil, nil, autoscale.Config{}, fmt.Errorf("%w: %v", ErrInput, err)
	}
	switch kind.Kind {
	case "HorizontalPodAutoscaler":
		var h autoscalingv2.HorizontalPodAutoscaler
		if err := unmarshal(data, &h); err != nil {
			return "", nil, nil, autoscale.Config{}, err
		}
		return h.Name, &h, nil, autoscale.Config{}, nil
	case "ScaledObject":
		var so autoscale.ScaledObject
		if err := unmarshal(data, &so); err != nil {
			return "", nil, nil, autoscale.Config{}, err
		}
		return so.Name, nil, &so, autoscale.Config{}, nil
	case "":
	default:
		return "", nil, nil, autoscale.Config{}, fmt.Errorf("%w: kind %q is neither HorizontalPodAutoscaler nor ScaledObject", ErrInput, kind.Kind)
	}
	var f scenarioFile
	if err := unmarshal(data, &f); err != nil {
		return "", nil, nil, autoscale.Config{}, err
	}
	if (f.HPA == nil) == (f.ScaledObject == nil) {
		return "", nil, nil, autoscale.Config{}, fmt.Errorf("%w: a spec file is an HPA or ScaledObject manifest, or a scenario with exactly one of hpa and scaledObject", ErrInput)
	}
	cfg, err := f.Config.config("config")
	if err != nil {
		return "", nil, nil, cfg, err
	}
	name := f.Name
	if name == "" && f.HPA != nil {
		name = f.HPA.Name
	} else if name == "" {
		name = f.ScaledObject.Name
	}
	return name, f.HPA, f.ScaledObject, cfg, nil
}

func loadSpec(path string) (spec, error) {
	data, err := readFile(path)
	if err != nil {
		return spec{}, err
	}
	name, h, so, cfg, err := DecodeSpec(data)
	if err != nil {
		return spec{}, fmt.Errorf("%s: %w", path, err)
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return spec{name: name, hpa: h, scaledObject: so, config: cfg}, nil
}

// replayFlags are the flags replay and tune share: the curve's source and
// the pods' model.
type replayFlags struct {
	files                         []string
	csvFile                       string
	prom                          PromSource
	start, end                    string
	podCapacity                   float64
	podStartup, syncPeriod        time.Duration
	metricDelay, metricResolution time.Duration
	initialReplicas               int32
	cpuRequest                    string
	output, chart                 string
}

func (f *replayFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&f.files, "file", "f", nil, "spec file: an HPA or ScaledObject manifest or a simulate scenario (repeat for several)")
	fs.StringVar(&f.csvFile, "csv", "", "demand curve as CSV with a header time,value (time RFC 3339 or seconds); - for stdin")
	fs.StringVar(&f.prom.URL, "prometheus", "", "Prometheus base URL to take the curve from a range query")
	fs.StringVar(&f.prom.Query, "query", "", "PromQL giving one series of demand, with --prometheus")
	fs.StringVar(&f.start, "start", "", "range start, RFC 3339 or Unix seconds, with --prometheus")
	fs.StringVar(&f.end, "end", "", "range end, RFC 3339 or Unix seconds, with --prometheus")
	fs.DurationVar(&f.prom.Step, "step", time.Minute, "range step, with --prometheus")
	fs.StringVar(&f.prom.BearerTokenFile, "bearer-token-file", "", "file holding a bearer token for --prometheus")
	fs.Float64Var(&f.podCapacity, "pod-capacity", 1, "demand one ready pod serves at 100% of its CPU request (or at the per-pod metric value it saturates at)")
	fs.DurationVar(&f.podStartup, "pod-startup", 30*time.Second, "time from a pod's creation to its readiness")
	fs.DurationVar(&f.syncPeriod, "sync-period", 15*time.Second, "the HPA controller's sync period")
	fs.DurationVar(&f.metricDelay, "metric-delay", 0, "how late the autoscaler sees the demand (scrape and pipeline lag)")
	fs.DurationVar(&f.metricResolution, "metric-resolution", 0, "period at which the metric is sampled; 0 = the curve's own")
	fs.Int32Var(&f.initialReplicas, "initial-replicas", 0, "replicas at the start, all ready; 0 = the spec's minimum")
	fs.StringVar(&f.cpuRequest, "cpu-request", "1", "each pod's CPU request")
	fs.StringVarP(&f.output, "output", "o", "table", "output: table or json")
	fs.StringVar(&f.chart, "chart", "", "write an SVG chart of demand and replicas to this file")
}

// curve reads the demand curve from --csv or --prometheus.
func (f *replayFlags) curve(cmd *cobra.Command) ([]autoscale.LoadPoint, string, error) {
	switch {
	case f.csvFile != "" && f.prom.URL != "":
		return nil, "", fmt.Errorf("%w: give one of --csv and --prometheus", ErrInput)
	case f.csvFile != "":
		var r io.Reader = cmd.InOrStdin()
		if f.csvFile != "-" {
			file, err := os.Open(f.csvFile)
			if err != nil {
				return nil, "", fmt.Errorf("hpa: read curve: %w", err)
			}
			defer file.Close()
			r = file
		}
		c, err := ParseCurve(r)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", f.csvFile, err)
		}
		return c, filepath.Base(f.csvFile), nil
	case f.prom.URL != "":
		var err error
		if f.prom.Start, err = parseFlagTime("start", f.start); err != nil {
			return nil, "", err
		}
		if f.prom.End, err = parseFlagTime("end", f.end); err != nil {
			return nil, "", err
		}
		c, err := f.prom.Curve(cmd.Context())
		if err != nil {
			return nil, "", err
		}
		return c, "prometheus query", nil
	}
	return nil, "", fmt.Errorf("%w: give the curve with --csv FILE or --prometheus URL --query PROMQL", ErrInput)
}

// replays builds one Replay per spec file over the curve.
func (f *replayFlags) replays(cmd *cobra.Command) ([]spec, []autoscale.Replay, string, error) {
	if len(f.files) == 0 {
		return nil, nil, "", fmt.Errorf("%w: -f SPEC is required", ErrInput)
	}
	if f.output != "table" && f.output != "json" {
		return nil, nil, "", fmt.Errorf("%w: -o %q: want table or json", ErrInput, f.output)
	}
	if !(f.podCapacity > 0) || math.IsInf(f.podCapacity, 0) {
		return nil, nil, "", fmt.Errorf("%w: --pod-capacity must be a number > 0", ErrInput)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"pod-startup", f.podStartup}, {"sync-period", f.syncPeriod}, {"metric-delay", f.metricDelay}, {"metric-resolution", f.metricResolution}} {
		if d.v < 0 {
			return nil, nil, "", fmt.Errorf("%w: --%s must not be negative", ErrInput, d.name)
		}
	}
	if f.syncPeriod < time.Second {
		return nil, nil, "", fmt.Errorf("%w: --sync-period must be at least 1s", ErrInput)
	}
	if f.initialReplicas < 0 {
		return nil, nil, "", fmt.Errorf("%w: --initial-replicas must not be negative", ErrInput)
	}
	cpu, err := resource.ParseQuantity(f.cpuRequest)
	if err != nil || cpu.Sign() <= 0 {
		return nil, nil, "", fmt.Errorf("%w: --cpu-request %q is not a positive quantity", ErrInput, f.cpuRequest)
	}
	var specs []spec
	for _, p := range f.files {
		s, err := loadSpec(p)
		if err != nil {
			return nil, nil, "", err
		}
		specs = append(specs, s)
	}
	c, source, err := f.curve(cmd)
	if err != nil {
		return nil, nil, "", err
	}
	if len(c) < 2 {
		return nil, nil, "", fmt.Errorf("%w: %s has one point; a curve needs two, the last one's step is the gap before it", ErrInput, source)
	}
	out := make([]autoscale.Replay, len(specs))
	for i, s := range specs {
		out[i] = autoscale.Replay{HPA: s.hpa, ScaledObject: s.scaledObject, Curve: c, PodCapacity: f.podCapacity,
			PodStartup: f.podStartup, SyncPeriod: f.syncPeriod, MetricDelay: f.metricDelay, MetricResolution: f.metricResolution,
			InitialReplicas: f.initialReplicas, CPURequest: cpu, Config: s.config}
		if err := out[i].Validate(); err != nil {
			return nil, nil, "", fmt.Errorf("%s: %w", f.files[i], err)
		}
	}
	return specs, out, source, nil
}

// replayed is one spec's report, as printed.
type replayed struct {
	Name   string           `json:"name"`
	Report autoscale.Report `json:"report"`
}

// curveSummary describes the replayed curve and model in the output.
type curveSummary struct {
	Source           string  `json:"source"`
	Points           int     `json:"points"`
	DurationSeconds  float64 `json:"durationSeconds"`
	PeakDemand       float64 `json:"peakDemand"`
	PodCapacity      float64 `json:"podCapacity"`
	PodStartup       string  `json:"podStartup"`
	SyncPeriod       string  `json:"syncPeriod"`
	MetricDelay      string  `json:"metricDelay"`
	MetricResolution string  `json:"metricResolution"`
}

func summarize(source string, r autoscale.Replay, f *replayFlags) curveSummary {
	s := curveSummary{Source: source, Points: len(r.Curve), PodCapacity: r.PodCapacity, PodStartup: f.podStartup.String(),
		SyncPeriod: f.syncPeriod.String(), MetricDelay: f.metricDelay.String(), MetricResolution: f.metricResolution.String()}
	for _, p := range r.Curve {
		s.PeakDemand = math.Max(s.PeakDemand, p.Value)
	}
	n := len(r.Curve)
	if n > 1 {
		s.DurationSeconds = (r.Curve[n-1].At + r.Curve[n-1].At - r.Curve[n-2].At).Seconds()
	}
	return s
}

func (s curveSummary) write(w io.Writer) {
	fmt.Fprintf(w, "curve: %s, %d points over %s, peak demand %.4g\n", s.Source, s.Points, time.Duration(s.DurationSeconds*float64(time.Second)), s.PeakDemand)
	fmt.Fprintf(w, "model: pod capacity %.4g, start-up %s, sync %s, metric delay %s, resolution %s\n\n", s.PodCapacity, s.PodStartup, s.SyncPeriod, s.MetricDelay, s.MetricResolution)
}

func overloadText(v float64) string {
	if math.IsInf(v, 1) {
		return "no pods"
	}
	return fmt.Sprintf("%.2f", v)
}

// writeReports prints one row per spec.
func writeReports(w io.Writer, rows []replayed) {
	fmt.Fprintf(w, "%-24s %12s %10s %10s %12s %9s %7s %9s\n", "SPEC", "POD-SECONDS", "POD-HOURS", "UNDER(S)", "SHORTFALL", "OVERLOAD", "EVENTS", "PEAK-PODS")
	for _, r := range rows {
		name := r.Name
		if len(name) > 24 {
			name = name[:24]
		}
		rep := r.Report
		fmt.Fprintf(w, "%-24s %12.0f %10.2f %10.0f %12.0f %9s %7d %9d\n", name, rep.PodSeconds, rep.PodSeconds/3600, rep.UnderSeconds, rep.Shortfall, overloadText(rep.PeakOverload), rep.ScaleEvents, rep.PeakReplicas)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeChartFile(path, title string, capacity float64, rows []replayed) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("hpa: create chart: %w", err)
	}
	if err := writeReplaySVG(f, title, capacity, rows); err != nil {
		f.Close()
		return fmt.Errorf("hpa: write chart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hpa: write chart: %w", err)
	}
	return nil
}

func newReplayCommand() *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay -f spec.yaml [-f other.yaml] (--csv load.csv | --prometheus URL --query PROMQL --start T --end T --step D)",
		Short: "Replay a recorded demand curve through HPA or KEDA specs: cost, under-provisioning, overload, scale events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, replays, source, err := f.replays(cmd)
			if err != nil {
				return err
			}
			rows := make([]replayed, len(specs))
			for i, r := range replays {
				rep, err := r.Run(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: %w", f.files[i], err)
				}
				rows[i] = replayed{Name: specs[i].name, Report: rep}
			}
			if f.chart != "" {
				if err := writeChartFile(f.chart, "HPA replay: demand (in pods' worth) and replicas", f.podCapacity, rows); err != nil {
					return err
				}
			}
			sum := summarize(source, replays[0], &f)
			w := cmd.OutOrStdout()
			if f.output == "json" {
				return writeJSON(w, struct {
					Curve curveSummary `json:"curve"`
					Specs []replayed   `json:"specs"`
				}{sum, rows})
			}
			sum.write(w)
			writeReports(w, rows)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}
