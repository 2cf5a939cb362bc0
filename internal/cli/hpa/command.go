// Package hpa implements `shoal hpa`: one HorizontalPodAutoscaler
// decision from a file (recommend), and a timeline of decisions over a
// load curve (simulate), charted as SVG; a recorded demand curve (CSV or a
// Prometheus range query) replayed through specs for cost and
// under-provisioning (replay), and a search of behavior settings over it
// (tune).
package hpa

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/autoscale"
)

// NewCommand returns the `hpa` command with its subcommands.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hpa",
		Short: "Decide, simulate, replay and tune HorizontalPodAutoscaler scaling as Kubernetes v1.37 does",
	}
	cmd.AddCommand(newRecommendCommand(), newSimulateCommand(), newReplayCommand(), newTuneCommand())
	return cmd
}

func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: -f FILE is required", ErrInput)
	}
	if path == "-" {
		return readLimited(stdin, "stdin")
	}
	return readFile(path)
}

// maxInputBytes bounds a spec or scenario file. Decoding YAML (or JSON,
// which goes the same way) holds about sixty times the file in memory;
// long recorded curves belong in a CSV (replay --csv), read as a stream.
const maxInputBytes = 4 << 20

// readFile reads the spec or scenario at path, refusing one larger than
// maxInputBytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hpa: read input: %w", err)
	}
	defer f.Close()
	return readLimited(f, path)
}

// readLimited reads r, named name in errors, up to maxInputBytes.
func readLimited(r io.Reader, name string) ([]byte, error) {
	b, whole, err := readAtMost(r, maxInputBytes)
	if err != nil {
		return nil, fmt.Errorf("hpa: read %s: %w", name, err)
	}
	if !whole {
		return nil, fmt.Errorf("%w: %s is larger than %d MiB; give a long recorded curve as CSV to replay or tune (--csv)", ErrInput, name, maxInputBytes>>20)
	}
	return b, nil
}

// readAtMost reads r to its end if that comes within limit bytes; whole
// is false, and b cut short, when r holds more.
func readAtMost(r io.Reader, limit int) (b []byte, whole bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if len(b) > limit {
		return b[:limit], false, err
	}
	return b, true, err
}

func newRecommendCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "recommend -f input.yaml",
		Short: "Print the decision one HPA reconciliation takes, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readInput(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			cfg, in, err := DecodeRecommendInput(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			d, err := autoscale.Recommend(cfg, in)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "input file (YAML or JSON; - for stdin)")
	return cmd
}

// run is one simulated spec and its timeline.
type run struct {
	name    string
	scen    Scenario
	samples []autoscale.Sample
}

func loadRun(ctx context.Context, path string) (run, error) {
	data, err := readFile(path)
	if err != nil {
		return run{}, err
	}
	s, err := DecodeScenario(data)
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", path, err)
	}
	samples, err := autoscale.Simulate(ctx, s.Scenario)
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", path, err)
	}
	name := s.Name
	if name == "" {
		name = strings.TrimSuffix(path[strings.LastIndex(path, "/")+1:], ".yaml")
	}
	return run{name: name, scen: s, samples: samples}, nil
}

func newSimulateCommand() *cobra.Command {
	var file, compare, plot, output string
	cmd := &cobra.Command{
		Use:   "simulate -f scenario.yaml [--compare other.yaml] [--plot chart.svg] [-o table|json]",
		Short: "Run an HPA or KEDA ScaledObject over a load curve and print the timeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("%w: -f FILE is required", ErrInput)
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("%w: -o %q: want table or json", ErrInput, output)
			}
			runs := []run{}
			for _, p := range []string{file, compare} {
				if p == "" {
					continue
				}
				r, err := loadRun(cmd.Context(), p)
				if err != nil {
					return err
				}
				runs = append(runs, r)
			}
			if len(runs) == 2 && len(runs[0].samples) != len(runs[1].samples) {
				return fmt.Errorf("%w: %s and %s sample at different times; give both the same duration and syncPeriod", ErrInput, file, compare)
			}
			if output == "json" {
				if err := writeSimulateJSON(cmd.OutOrStdout(), runs); err != nil {
					return err
				}
			} else {
				writeTable(cmd.OutOrStdout(), runs)
			}
			if plot != "" {
				f, err := os.Create(plot)
				if err != nil {
					return fmt.Errorf("hpa: create plot: %w", err)
				}
				if err := writeSVG(f, runs); err != nil {
					f.Close()
					return fmt.Errorf("hpa: write plot: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("hpa: write plot: %w", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "scenario file (YAML or JSON)")
	cmd.Flags().StringVar(&compare, "compare", "", "second scenario run over the same load, side by side")
	cmd.Flags().StringVar(&plot, "plot", "", "write an SVG chart to this file")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output: table, or json (one object per scenario with its samples; times in seconds)")
	return cmd
}

// simulateJSON is one scenario's timeline in `simulate -o json`.
type simulateJSON struct {
	Name    string         `json:"name"`
	Samples []sampleSecond `json:"samples"`
}

// sampleSecond is an autoscale.Sample with its time in seconds, so that
// programs reading the output need not parse Go durations.
type sampleSecond struct {
	Time    float64 `json:"time"`
	Load    float64 `json:"load"`
	Metric  string  `json:"metric"`
	Desired int32   `json:"desired"`
	Ready   int32   `json:"ready"`
	Reason  string  `json:"reason"`
}

// writeSimulateJSON writes the runs as a JSON array of simulateJSON, one
// sample a line. It writes as it goes: a week of syncs a second is
// 100 MB of JSON, which encoding whole would hold in memory again.
func writeSimulateJSON(w io.Writer, runs []run) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i, r := range runs {
		name, err := json.Marshal(r.name)
		if err != nil {
			return fmt.Errorf("hpa: write json: %w", err)
		}
		if i > 0 {
			bw.WriteString(",")
		}
		fmt.Fprintf(bw, "\n  {\n    \"name\": %s,\n    \"samples\": [", name)
		for j, s := range r.samples {
			line, err := json.Marshal(sampleSecond{Time: s.Time.Seconds(), Load: s.Load, Metric: s.Metric, Desired: s.Desired, Ready: s.Ready, Reason: s.Reason})
			if err != nil {
				return fmt.Errorf("hpa: write json: %w", err)
			}
			if j > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("\n      ")
			bw.Write(line)
		}
		if len(r.samples) > 0 {
			bw.WriteString("\n    ")
		}
		bw.WriteString("]\n  }")
	}
	if len(runs) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("hpa: write json: %w", err)
	}
	return nil
}

func fmtDur(d time.Duration) string {
	m := int(d / time.Minute)
	s := int((d % time.Minute) / time.Second)
	return fmt.Sprintf("%3d:%02d", m, s)
}

// writeTable prints one row per sync: time and load, then metric, desired
// and ready replicas for each run.
func writeTable(w io.Writer, runs []run) {
	fmt.Fprintf(w, "%-6s %6s", "TIME", "LOAD")
	for _, r := range runs {
		n := r.name
		if len(n) > 23 {
			n = n[:23]
		}
		fmt.Fprintf(w, " | %-23s", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-6s %6s", "", "")
	for range runs {
		fmt.Fprintf(w, " | %8s %6s %6s", "METRIC", "DESIRED", "READY")
	}
	fmt.Fprintln(w)
	for i, s := range runs[0].samples {
		fmt.Fprintf(w, "%-6s %6.2f", fmtDur(s.Time), s.Load)
		for _, r := range runs {
			x := r.samples[i]
			fmt.Fprintf(w, " | %8s %7d %6d", x.Metric, x.Desired, x.Ready)
		}
		fmt.Fprintln(w)
	}
}
