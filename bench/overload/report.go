package main

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The goals for Shoal's shedder.
// lateFrom is where the "p99 after 1 s" starts: past the settling the
// goals allow.
const lateFrom = time.Second

const (
	goalGoodputShare = 0.9         // of the capacity, at every level
	goalP99Ratio     = 2.0         // p99 of the 200s over the unloaded p99
	goalSettle       = time.Second // after the step
)

// row is one cell's figures.
type row struct {
	*cell
	stepSummary
	goodputShare float64 // of the capacity
	p99Ratio     float64 // over the unloaded p99
	settle       time.Duration
	settled      bool
	warmP99      time.Duration // of this cell's warm-up
	lateP99      time.Duration // of the 200s sent after the step's first second
	// Windows after the step's first second whose p99 exceeded the
	// settling limit, of those judged.
	lateOver, lateJudged int
}

// report holds a run's figures, derived once.
type report struct {
	res          *results
	unloadedP99  time.Duration
	unloadedFrom string // the variant(s) it was measured on
	rows         []row
}

func newReport(res *results) *report {
	r := &report{res: res}
	cfg := res.cfg
	warm := func(keep func(*cell) bool) []time.Duration {
		var all []time.Duration
		for _, c := range res.cells {
			if keep(c) {
				all = append(all, answeredLatencies(c.samples, warmSkip, c.onset)...)
			}
		}
		return sortedCopy(all)
	}
	if w := warm(func(c *cell) bool { return c.variant == variantNone }); len(w) > 0 {
		r.unloadedP99, r.unloadedFrom = quantile(w, 0.99), variantNone
	} else {
		r.unloadedP99, r.unloadedFrom = quantile(warm(func(*cell) bool { return true }), 0.99), "all variants"
	}
	limit := time.Duration(goalP99Ratio * float64(r.unloadedP99))
	cells := slices.Clone(res.cells)
	slices.SortStableFunc(cells, func(a, b *cell) int {
		return cmp.Or(cmp.Compare(slices.Index(allVariants, a.variant), slices.Index(allVariants, b.variant)), cmp.Compare(a.level, b.level))
	})
	for _, c := range cells {
		s := summarize(c.samples, c.onset, cfg.step)
		settle, settled := settleTime(c.samples, c.onset, cfg.step, cfg.window, limit)
		over, judged := windowsOver(c.samples, c.onset, lateFrom, cfg.step, cfg.window, limit)
		r.rows = append(r.rows, row{
			cell: c, stepSummary: s,
			goodputShare: s.goodput / res.capacity,
			p99Ratio:     ratio(s.p99, r.unloadedP99),
			settle:       settle, settled: settled,
			warmP99:  quantile(answeredLatencies(c.samples, warmSkip, c.onset), 0.99),
			lateP99:  quantile(answeredLatencies(c.samples, c.onset+lateFrom, c.onset+cfg.step), 0.99),
			lateOver: over, lateJudged: judged,
		})
	}
	return r
}

func sortedCopy(d []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), d...)
	sortDurations(out)
	return out
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func (r row) settleText(step time.Duration) string {
	s := fmt.Sprintf("%.1f s", r.settle.Seconds())
	if !r.settled {
		s = fmt.Sprintf("never (> %v)", step)
	}
	if r.settle > lateFrom || !r.settled {
		s += fmt.Sprintf("; %d of %d windows over after 1 s", r.lateOver, r.lateJudged)
	}
	return s
}

// criticalText is the share of the critical requests answered 200.
func (r row) criticalText() string {
	if r.critical == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*share(r.criticalAnswered, r.critical))
}

func (r row) serverCPUText() string {
	if r.statsOnset == nil || r.statsEnd == nil {
		return "n/a" // the server did not answer /stats in time
	}
	return fmt.Sprintf("%.2f", r.serverCPU)
}

// peerView is what the variant's shedder saw at the end of the step.
func (r row) peerView() string {
	s := r.statsEnd
	if s == nil {
		return ""
	}
	switch r.variant {
	case variantShoal:
		return fmt.Sprintf("limit %.0f, utilization %.2f over the step", s["shoal_limit"], r.utilization)
	case variantGoZero:
		return fmt.Sprintf("CPU %.0f‰", s["gozero_cpu_permille"])
	case variantKratos:
		return fmt.Sprintf("CPU %.0f‰, max in flight %.0f", s["kratos_cpu_permille"], s["kratos_max_in_flight"])
	}
	return ""
}

func (rep *report) writeMarkdown(w io.Writer) error {
	res, cfg := rep.res, rep.res.cfg
	var b strings.Builder
	how := "given"
	if res.capacityMeasured {
		how = fmt.Sprintf("closed loop, %d connections, variant none; the median of %d periods of %v: %s; the levels multiply the start's median, %.0f/s", cfg.capacityConns, len(res.capacityPeriods), cfg.capacityTime, periodList(res.capacityPeriods), res.offerBase)
	}
	boxed := "no CPU cgroup"
	if res.boxed {
		boxed = fmt.Sprintf("a %d-core CFS quota seen as the container's", cfg.serverProcs)
	}
	if cfg.inProcess {
		boxed = "in the generator's process"
	}
	minLoad, maxLoad, sumLoad := res.loadAvgStart, res.loadAvgStart, res.loadAvgStart
	var sumBusy, maxLag, maxGen float64
	for _, c := range res.cells {
		minLoad, maxLoad, sumLoad = min(minLoad, c.loadAvg), max(maxLoad, c.loadAvg), sumLoad+c.loadAvg
		sumBusy += c.machineBusy
		maxLag = max(maxLag, ms(c.maxLag))
		maxGen = max(maxGen, c.genCPU)
	}
	n := float64(len(res.cells))
	fmt.Fprintf(&b, "Capacity %.0f requests/s (%s). Unloaded p99 %.1f ms (200s at %.1f× capacity, %s). ", res.capacity, how, ms(rep.unloadedP99), cfg.warmLoad, rep.unloadedFrom)
	fmt.Fprintf(&b, "Each level: a fresh server, %v at %.1f×, then %v at the level; timeout %v; settling judged on %v windows against %.1f ms (2× unloaded p99). ",
		cfg.warm, cfg.warmLoad, cfg.step, cfg.timeout, cfg.window, goalP99Ratio*ms(rep.unloadedP99))
	fmt.Fprintf(&b, "Servers: GOMAXPROCS=%d, %s; generator GOMAXPROCS=%d. ", cfg.serverProcs, boxed, max(cfg.clientProcs, 1))
	fmt.Fprintf(&b, "Machine: 1-minute load average %.2f at the start, %.2f–%.2f (mean %.2f) after the cells; %.0f%% of its CPU busy during the steps on average; generator lag at most %.1f ms, its CPU at most %.2f cores. Run took %v.\n\n",
		res.loadAvgStart, minLoad, maxLoad, sumLoad/(n+1), 100*sumBusy/max(n, 1), maxLag, maxGen, res.ended.Sub(res.started).Round(time.Second))

	b.WriteString("| variant | offered | offered/s | offered ÷ capacity | goodput/s | goodput ÷ capacity | rejected | timed out | failed | p50 ms | p99 ms | p99 ÷ unloaded p99 | p99 after 1 s, ms | settle | critical served | server CPU | shedder's view at end |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n")
	for _, r := range rep.rows {
		fmt.Fprintf(&b, "| %s | %g× | %.0f | %.2f | %.0f | %.2f | %.1f%% | %.1f%% | %.1f%% | %.1f | %.1f | %.1f | %.1f | %s | %s | %s | %s |\n",
			r.variant, r.level, r.offered, r.offered/res.capacity, r.goodput, r.goodputShare,
			100*share(r.rejected, r.total), 100*share(r.timedOut, r.total), 100*share(r.failed, r.total),
			ms(r.p50), ms(r.p99), r.p99Ratio, ms(r.lateP99), r.settleText(cfg.step), r.criticalText(), r.serverCPUText(), r.peerView())
	}
	b.WriteString("\n")
	rep.writeGoals(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeGoals checks the goals for Shoal, when it ran.
func (rep *report) writeGoals(b *strings.Builder) {
	byVariant := map[string]map[float64]row{}
	for _, r := range rep.rows {
		if byVariant[r.variant] == nil {
			byVariant[r.variant] = map[float64]row{}
		}
		byVariant[r.variant][r.level] = r
	}
	shoal, ok := byVariant[variantShoal]
	if !ok {
		return
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	var gp, p99, late, settle []string
	allGP, allP99, allLate, allSettle := true, true, true, true
	for _, lv := range rep.res.cfg.levels {
		r := shoal[lv]
		allGP = allGP && r.goodputShare >= goalGoodputShare
		allP99 = allP99 && r.p99Ratio <= goalP99Ratio && r.answered > 0
		allLate = allLate && ratio(r.lateP99, rep.unloadedP99) <= goalP99Ratio && r.answered > 0
		allSettle = allSettle && r.settled && r.settle <= goalSettle
		gp = append(gp, fmt.Sprintf("%g×: %.2f", lv, r.goodputShare))
		p99 = append(p99, fmt.Sprintf("%g×: %.1f", lv, r.p99Ratio))
		late = append(late, fmt.Sprintf("%g×: %.1f", lv, ratio(r.lateP99, rep.unloadedP99)))
		settle = append(settle, fmt.Sprintf("%g×: %s", lv, r.settleText(rep.res.cfg.step)))
	}
	fmt.Fprintf(b, "Goals for shoal:\n\n")
	fmt.Fprintf(b, "- goodput ≥ %.1f× capacity at every level: %s (%s)\n", goalGoodputShare, mark(allGP), strings.Join(gp, ", "))
	fmt.Fprintf(b, "- p99 of the 200s ≤ %.0f× the unloaded p99: %s (%s)\n", goalP99Ratio, mark(allP99), strings.Join(p99, ", "))
	fmt.Fprintf(b, "  - the same after the step's first second (not a goal; the onset left out): %s (%s)\n", mark(allLate), strings.Join(late, ", "))
	fmt.Fprintf(b, "- settles within %v: %s (%s)\n", goalSettle, mark(allSettle), strings.Join(settle, ", "))
	var crit []string
	for _, lv := range rep.res.cfg.levels {
		if r := shoal[lv]; r.critical > 0 {
			crit = append(crit, fmt.Sprintf("%g×: %s of %d", lv, r.criticalText(), r.critical))
		}
	}
	if len(crit) > 0 {
		fmt.Fprintf(b, "- critical requests (every %d-th) served, not a goal but the measure of priority: %s\n", rep.res.cfg.criticalEvery, strings.Join(crit, ", "))
	}
	for _, peer := range []string{variantGoZero, variantKratos} {
		pr, ok := byVariant[peer]
		if !ok {
			continue
		}
		var aheadGP, aheadP99 int
		for _, lv := range rep.res.cfg.levels {
			if shoal[lv].goodput >= pr[lv].goodput {
				aheadGP++
			}
			if pr[lv].answered == 0 || (shoal[lv].answered > 0 && shoal[lv].p99 <= pr[lv].p99) {
				aheadP99++
			}
		}
		n := len(rep.res.cfg.levels)
		fmt.Fprintf(b, "- ahead of %s: goodput at %d of %d levels, p99 at %d of %d: %s\n", peer, aheadGP, n, aheadP99, n, mark(aheadGP == n && aheadP99 == n))
	}
}

// periodList lists the capacity periods by when they were measured, with
// the server's CPU over each measurement.
func periodList(ps []capacityPeriod) string {
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		var rates []float64
		for ; j < len(ps) && ps[j].when == ps[i].when; j++ {
			rates = append(rates, ps[j].rate)
		}
		part := fmt.Sprintf("%s %s/s", ps[i].when, rateList(rates))
		if ps[i].serverCPU > 0 {
			part += fmt.Sprintf(" (server CPU %.2f)", ps[i].serverCPU)
		}
		parts = append(parts, part)
		i = j
	}
	return strings.Join(parts, "; ")
}

func (rep *report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{
		"variant", "level", "offered_rps", "capacity_rps", "offered_share", "requests", "answered", "rejected", "timed_out", "failed",
		"goodput_rps", "goodput_share", "p50_ms", "p99_ms", "unloaded_p99_ms", "p99_ratio", "p99_after_1s_ms", "settle_s", "settled", "windows_over_after_1s", "windows_judged_after_1s",
		"warm_p99_ms", "server_cpu_cores", "machine_busy", "load_avg_1m", "throttled_periods", "max_lag_ms", "generator_cpu_cores",
		"shoal_limit_end", "gozero_cpu_permille_end", "kratos_cpu_permille_end", "kratos_max_in_flight_end",
		"critical", "critical_answered",
	})
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	for _, r := range rep.rows {
		st := r.statsEnd
		cw.Write([]string{
			r.variant, f(r.level, -1), f(r.offered, 1), f(rep.res.capacity, 1), f(r.offered/rep.res.capacity, 3),
			strconv.Itoa(r.total), strconv.Itoa(r.answered), strconv.Itoa(r.rejected), strconv.Itoa(r.timedOut), strconv.Itoa(r.failed),
			f(r.goodput, 1), f(r.goodputShare, 3), f(ms(r.p50), 2), f(ms(r.p99), 2), f(ms(rep.unloadedP99), 2), f(r.p99Ratio, 2),
			f(ms(r.lateP99), 2), f(r.settle.Seconds(), 1), strconv.FormatBool(r.settled),
			strconv.Itoa(r.lateOver), strconv.Itoa(r.lateJudged),
			f(ms(r.warmP99), 2), f(r.serverCPU, 2), f(r.machineBusy, 2), f(r.loadAvg, 2), strconv.FormatInt(r.throttled, 10), f(ms(r.maxLag), 1), f(r.genCPU, 2),
			f(st["shoal_limit"], 0), f(st["gozero_cpu_permille"], 0), f(st["kratos_cpu_permille"], 0), f(st["kratos_max_in_flight"], 0),
			strconv.Itoa(r.critical), strconv.Itoa(r.criticalAnswered),
		})
	}
	cw.Flush()
	return cw.Error()
}
