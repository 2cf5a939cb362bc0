package hpa

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/autoscale"
)

// parseTolerances reads --tolerances: pairs up/down, such as 0.1/0.1.
func parseTolerances(list []string) ([][2]float64, error) {
	var out [][2]float64
	for i, s := range list {
		up, down, ok := strings.Cut(s, "/")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(up), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(down), 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: --tolerances[%d] %q: want up/down, such as 0.1/0.1", ErrInput, i, s)
		}
		out = append(out, [2]float64{a, b})
	}
	return out, nil
}

func policiesText(ps []autoscalingv2.HPAScalingPolicy) string {
	if ps == nil {
		return "spec's"
	}
	var b []string
	for _, p := range ps {
		unit := ""
		if p.Type == autoscalingv2.PercentScalingPolicy {
			unit = "%"
		}
		b = append(b, fmt.Sprintf("%d%s/%ds", p.Value, unit, p.PeriodSeconds))
	}
	return strings.Join(b, "+")
}

func optText[T any](p *T, format string) string {
	if p == nil {
		return "spec's"
	}
	return fmt.Sprintf(format, *p)
}

// writeFrontier prints the baseline and the frontier, one row each; a
// COOLDOWN column when cooldown periods were searched.
func writeFrontier(w io.Writer, t autoscale.Tuning, cooldown bool) {
	fmt.Fprintf(w, "%-9s %6s %6s %8s %-14s %-10s %-9s ", "CANDIDATE", "TARGET", "UP-WIN", "DOWN-WIN", "UP-POLICIES", "DOWN-POL.", "TOL(U/D)")
	if cooldown {
		fmt.Fprintf(w, "%8s ", "COOLDOWN")
	}
	fmt.Fprintf(w, "%11s %8s %10s %8s %6s\n", "POD-SECONDS", "UNDER(S)", "SHORTFALL", "OVERLOAD", "EVENTS")
	row := func(label string, c autoscale.Candidate) {
		st := c.Setting
		tol := "spec's"
		if st.Tolerance != nil {
			tol = fmt.Sprintf("%g/%g", st.Tolerance[0], st.Tolerance[1])
		}
		fmt.Fprintf(w, "%-9s %6s %6s %8s %-14s %-10s %-9s ", label, optText(st.Target, "%.2f"),
			optText(st.ScaleUpWindowSeconds, "%ds"), optText(st.ScaleDownWindowSeconds, "%ds"), policiesText(st.ScaleUpPolicies),
			policiesText(st.ScaleDownPolicies), tol)
		if cooldown {
			fmt.Fprintf(w, "%8s ", optText(st.CooldownSeconds, "%ds"))
		}
		r := c.Report
		fmt.Fprintf(w, "%11.0f %8.0f %10.0f %8s %6d\n", r.PodSeconds, r.UnderSeconds, r.Shortfall, overloadText(r.PeakOverload), r.ScaleEvents)
	}
	given := "as given"
	if t.Recommended.Index < 0 {
		given += " *"
	}
	row(given, t.Baseline)
	for _, c := range t.Frontier {
		if c.Index < 0 {
			continue // printed first
		}
		label := "#" + strconv.Itoa(c.Index)
		if c.Index == t.Recommended.Index {
			label += " *"
		}
		row(label, c)
	}
}

// appliedSpec is the part of the recommended HPA a user applies.
type appliedSpec struct {
	Spec struct {
		Metrics  []autoscalingv2.MetricSpec                     `json:"metrics"`
		Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
	} `json:"spec"`
}

// recommendedYAML is what a user applies: for an HPA the metrics and
// behavior to put under its spec; for a ScaledObject the whole object, the
// user's own with only the tuned fields changed, since KEDA reads them
// from three places (a trigger's metadata, advanced, cooldownPeriod).
func recommendedYAML(c autoscale.Candidate) (string, []byte, error) {
	if so := c.ScaledObject; so != nil {
		b, err := scaledObjectYAML(so)
		return "apply as the ScaledObject (yours, with only the tuned fields changed)", b, err
	}
	var a appliedSpec
	a.Spec.Metrics, a.Spec.Behavior = c.HPA.Spec.Metrics, c.HPA.Spec.Behavior
	b, err := yaml.Marshal(a)
	return "apply under the HorizontalPodAutoscaler", b, err
}

// scaledObjectYAML encodes so as a manifest, without the empty
// creationTimestamp and the status a typed encoding would carry.
func scaledObjectYAML(so *autoscale.ScaledObject) ([]byte, error) {
	out := *so
	out.Status = nil
	if out.APIVersion == "" {
		out.APIVersion = "keda.sh/v1alpha1"
	}
	if out.Kind == "" {
		out.Kind = "ScaledObject"
	}
	j, err := json.Marshal(&out)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	if meta, ok := m["metadata"].(map[string]any); ok {
		if meta["creationTimestamp"] == nil {
			delete(meta, "creationTimestamp")
		}
		if len(meta) == 0 {
			delete(m, "metadata")
		}
	}
	return yaml.Marshal(m)
}

func newTuneCommand() *cobra.Command {
	var (
		f                     replayFlags
		budget                time.Duration
		targets               []float64
		upWindows, downWindow []time.Duration
		tolerances            []string
		cooldowns             []time.Duration
	)
	def := autoscale.DefaultTuneSpace()
	cmd := &cobra.Command{
		Use:   "tune -f hpa-or-scaledobject.yaml (--csv load.csv | --prometheus URL --query PROMQL --start T --end T --step D) [--budget 30s]",
		Short: "Search HPA or KEDA ScaledObject settings over a replayed curve; print the cost / under-provisioning frontier and the spec to apply",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.files) > 1 {
				return fmt.Errorf("%w: tune takes one -f spec", ErrInput)
			}
			if budget < 0 {
				return fmt.Errorf("%w: --budget must not be negative", ErrInput)
			}
			tols, err := parseTolerances(tolerances)
			if err != nil {
				return err
			}
			space := autoscale.TuneSpace{Targets: targets, ScaleUpWindows: upWindows, ScaleDownWindows: downWindow,
				ScaleUpPolicies: def.ScaleUpPolicies, ScaleDownPolicies: def.ScaleDownPolicies, Tolerances: tols, CooldownPeriods: cooldowns}
			if err := space.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrInput, err)
			}
			specs, replays, source, err := f.replays(cmd)
			if err != nil {
				return err
			}
			t, err := autoscale.Tune(cmd.Context(), replays[0], space, budget, progressLine(cmd.ErrOrStderr(), time.Now()))
			if err != nil {
				return fmt.Errorf("%s: %w", f.files[0], err)
			}
			if f.chart != "" {
				best := replays[0]
				best.HPA, best.ScaledObject = t.Recommended.HPA, t.Recommended.ScaledObject
				rep, err := best.Run(cmd.Context())
				if err != nil {
					return err
				}
				rows := []replayed{{Name: specs[0].name + " (as given)", Report: t.Baseline.Report}}
				if t.Recommended.Index >= 0 {
					rows = append(rows, replayed{Name: fmt.Sprintf("recommended #%d", t.Recommended.Index), Report: rep})
				}
				title := "HPA tune: the spec as given and the recommended one"
				if t.Recommended.ScaledObject != nil {
					title = "ScaledObject tune: the object as given and the recommended one"
				}
				if err := writeChartFile(f.chart, title, f.podCapacity, rows); err != nil {
					return err
				}
			}
			where, applied, err := recommendedYAML(t.Recommended)
			if err != nil {
				return fmt.Errorf("hpa: encode the recommended spec: %w", err)
			}
			w := cmd.OutOrStdout()
			if f.output == "json" {
				t.Baseline.Report.Series = nil
				return writeJSON(w, struct {
					Curve  curveSummary     `json:"curve"`
					Budget float64          `json:"budgetSeconds"`
					Tuning autoscale.Tuning `json:"tuning"`
					Apply  string           `json:"apply"`
				}{summarize(source, replays[0], &f), budget.Seconds(), t, string(applied)})
			}
			summarize(source, replays[0], &f).write(w)
			fmt.Fprintf(w, "%d candidates replayed; the spec as given, then the frontier (cheapest first); * = recommended:\n", t.Tried)
			writeFrontier(w, t, len(cooldowns) > 0)
			fmt.Fprintln(w)
			if t.Recommended.Index < 0 && t.WithinBudget {
				fmt.Fprintf(w, "recommended: keep the spec as given; no candidate is cheaper with at most %s under-provisioned (--budget)\n", budget)
			} else if t.Recommended.Index < 0 {
				fmt.Fprintf(w, "recommended: keep the spec as given; no candidate stays within %s under-provisioned (--budget), and none is shorter (%.0fs)\n",
					budget, t.Recommended.Report.UnderSeconds)
			} else if t.WithinBudget {
				fmt.Fprintf(w, "recommended: #%d, the cheapest with at most %s under-provisioned (--budget)\n", t.Recommended.Index, budget)
			} else {
				fmt.Fprintf(w, "recommended: #%d; no candidate stays within %s under-provisioned (--budget), this one is shortest (%.0fs)\n",
					t.Recommended.Index, budget, t.Recommended.Report.UnderSeconds)
			}
			fmt.Fprintf(w, "%s:\n\n%s", where, applied)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().DurationVar(&budget, "budget", 0, "under-provisioned time allowed; the cheapest spec within it is recommended")
	cmd.Flags().Float64SliceVar(&targets, "targets", def.Targets, "target utilisations tried, in (0, 1]")
	cmd.Flags().DurationSliceVar(&upWindows, "scale-up-windows", def.ScaleUpWindows, "scale-up stabilization windows tried")
	cmd.Flags().DurationSliceVar(&downWindow, "scale-down-windows", def.ScaleDownWindows, "scale-down stabilization windows tried")
	cmd.Flags().StringSliceVar(&tolerances, "tolerances", []string{"0.1/0.1", "0.05/0.2"}, "per-direction tolerances tried, up/down")
	cmd.Flags().DurationSliceVar(&cooldowns, "cooldown-periods", nil, "a ScaledObject's cooldownPeriod values tried (only with minReplicaCount 0); none keeps the spec's")
	return cmd
}

// progressAfter is how long a search runs before it reports its
// progress, and then how often: a quick one prints nothing.
const progressAfter = 3 * time.Second

// progressLine returns Tune's progress callback: a line on w once the
// search started at start has run progressAfter, then at most every
// progressAfter, and one at the end of a search that reported before.
func progressLine(w io.Writer, start time.Time) func(done, total int) {
	var last time.Time
	return func(done, total int) {
		now := time.Now()
		if last.IsZero() && (done == total || now.Sub(start) < progressAfter) {
			return // quick so far, or over without a line
		}
		if done < total && now.Sub(last) < progressAfter {
			return
		}
		last = now
		fmt.Fprintf(w, "tune: %d of %d specs replayed, %s\n", done, total, now.Sub(start).Round(time.Second))
	}
}
