package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// writeMarkdown writes the results as a markdown report.
func writeMarkdown(w io.Writer, o options, results []*result) {
	fmt.Fprintln(w, "## Keep-alive rebalancing after an HPA scale-up")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Command: `go run ./bench/rebalance %s`\n\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(w, "A thumbnailer Deployment under `shoal up` with an HPA (min %d, max %d) on the Pods metric %s, "+
		"AverageValue %g per pod (adapter rule rate() over %s, scrapes every 2s, sync every %s); "+
		"load %s through the Service's ClusterIP from %d keep-alive clients, one connection each; "+
		"shares in windows of %s. A window is fair when every replica's share is within %.0f%% of 1/N; "+
		"windows are judged from two connection ages (2 × %s) after all N replicas are ready.\n\n",
		o.minRep, o.maxRep, metricName, o.target, o.rateWindow, o.sync, o.rate, o.conns, o.window,
		fairTolerance*100, o.maxConnAge)

	fmt.Fprintln(w, "| run | MAX_CONN_AGE | HPA replicas, observed | autoscale.Simulate | first scale-up after the step, observed / predicted | final decision after the step, observed / predicted | all N ready (s) | fair windows | worst window | aggregate deviation | new pods' share (fair) | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		age := r.MaxConnAge.String()
		if r.MaxConnAge < 0 {
			age = "off (" + age + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s / %s | %s / %s | %s | %d/%d | %s | %s | %s (%s) | %s |\n",
			r.Name, age, pathText(r.Observed.Path), pathText(r.Predicted.Path),
			secs(r.Observed.FirstUp), secs(r.Predicted.FirstUp),
			secs(r.Observed.Reached), secs(r.Predicted.Reached),
			secs(r.AllReadyAt), r.FairWindows, r.Evaluated, pct(r.WorstDev), pct(r.AggregateMaxDev),
			pct(r.NewShare), pct(r.NewFair), errorsText(r))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		verdict := "the HPA's count matches the prediction"
		if !r.ScaleMatch {
			verdict = "the HPA's count does NOT match the prediction"
		}
		spread := "every judged window is fair"
		if !r.Spread() {
			spread = fmt.Sprintf("%d of %d judged windows are fair", r.FairWindows, r.Evaluated)
		}
		fmt.Fprintf(w, "- run %s: %s (%d -> %d); %s; load sent %d, ok %d, p99 %s.\n",
			r.Name, verdict, r.Observed.Initial, r.Observed.Final, spread, r.Sent, r.OK, r.P99.Round(100*time.Microsecond))
	}
	fmt.Fprintln(w)

	for _, r := range results {
		fmt.Fprintf(w, "### Run %s: HPA decisions from %s before the step (at %s)\n\n", r.Name, "3s", secs(r.StepAt))
		fmt.Fprintln(w, "| observed t (s) | current | desired | metric | reason | | predicted t (s) | desired | metric | reason |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		n := max(len(r.Observed.Rows), len(r.Predicted.Rows))
		for i := range n {
			var a, b string
			if i < len(r.Observed.Rows) {
				x := r.Observed.Rows[i]
				a = fmt.Sprintf("%s | %d | %d | %s | %s", secs(x.T), x.Current, x.Desired, x.Metric, x.Reason)
			} else {
				a = " | | | | "
			}
			if i < len(r.Predicted.Rows) {
				x := r.Predicted.Rows[i]
				b = fmt.Sprintf("%s | %d | %s | %s", secs(x.T), x.Desired, x.Metric, x.Reason)
			} else {
				b = " | | | "
			}
			fmt.Fprintf(w, "| %s | | %s |\n", a, b)
		}
		fmt.Fprintln(w)

		fmt.Fprintf(w, "### Run %s: shares per %s window (new pods marked *; judged from %s)\n\n", r.Name, windowLen(r), secs(r.SettleAt))
		names := r.Replicas
		head := []string{"window start (s)", "requests"}
		for _, name := range names {
			head = append(head, shortName(name, slices.Contains(r.NewReplicas, name)))
		}
		head = append(head, "max deviation", "fair")
		fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
		fmt.Fprintln(w, "|"+strings.Repeat("---|", len(head)))
		for _, win := range r.Windows {
			row := []string{secs(win.Start), fmt.Sprint(win.Requests)}
			for _, name := range names {
				row = append(row, pct(win.Shares[name]))
			}
			judged := "yes"
			if !win.Fair {
				judged = "no"
			}
			if !win.Evaluated {
				judged = "(" + judged + ", not judged)"
			}
			row = append(row, pct(win.MaxDev), judged)
			fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
		}
		if len(r.Aggregate) > 0 {
			row := []string{"judged windows", ""}
			for _, name := range names {
				row = append(row, pct(r.Aggregate[name]))
			}
			row = append(row, pct(r.AggregateMaxDev), "")
			fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
		}
		fmt.Fprintln(w)
	}
}

func windowLen(r *result) string {
	if len(r.Windows) > 1 {
		return (r.Windows[1].Start - r.Windows[0].Start).String()
	}
	return "time"
}

// shortName keeps the random suffix of a pod name.
func shortName(name string, isNew bool) string {
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		name = name[i+1:]
	}
	if isNew {
		name += "*"
	}
	return name
}

func pathText(p []int32) string {
	s := make([]string, len(p))
	for i, v := range p {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, " → ")
}

func secs(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }

func errorsText(r *result) string {
	if len(r.Errors) == 0 {
		return "0"
	}
	var parts []string
	for k, v := range r.Errors {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
