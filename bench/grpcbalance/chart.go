package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units: two bar panels side by side.
const (
	svgW, svgH  = 960, 420
	panelW      = 380
	panelH      = 260
	panelTop    = 60
	leftPanelX  = 70
	rightPanelX = 550
	gridStroke  = "#e0e0e0"
	goalStroke  = "#757575"
	svgFont     = `font-family="sans-serif" font-size="12"`
)

var modeColors = map[string]string{
	modeHealthy:    "#9e9e9e",
	modePeakEWMA:   "#1565c0",
	modeRoundRobin: "#e65100",
	modeLeastReq:   "#2e7d32",
	modeWRR:        "#6a1b9a",
}

func svgEsc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeSVG draws each policy's p99 (log scale) and the slow server's
// share as bars at the median of the rounds, with the range as a whisker
// and the goals as dashed lines.
func (r *report) writeSVG(out io.Writer) error {
	w := bufio.NewWriter(out)
	cfg := r.res.cfg
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(w, `<text x="%d" y="24" font-family="sans-serif" font-size="15">%s</text>`+"\n", leftPanelX,
		svgEsc(fmt.Sprintf("gRPC, four servers, one %gx slower: p99 and the slow server's share per balancing policy", cfg.slowdown)))

	// p99 panel, log scale.
	lo, hi := math.Inf(1), 0.0
	for _, s := range r.summaries {
		if s.rounds > 0 && s.p99.hi > 0 {
			lo, hi = math.Min(lo, s.p99.lo), math.Max(hi, s.p99.hi)
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	llo, lhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if lhi == llo {
		lhi++
	}
	py := func(v float64) float64 {
		return panelTop + panelH - (math.Log10(math.Max(v, math.Pow(10, llo)))-llo)/(lhi-llo)*panelH
	}
	var ticks []tick
	for e := llo; e <= lhi; e++ {
		for _, m := range []float64{1, 2, 5} {
			if v := m * math.Pow(10, e); e < lhi || m == 1 {
				ticks = append(ticks, tick{py(v), strings.TrimSuffix(fmt.Sprintf("%g", v), ".0")})
			}
		}
	}
	r.panel(w, leftPanelX, "p99, ms (log scale)", ticks)
	if h, ok := r.summary(modeHealthy); ok && h.rounds > 0 {
		goalLine(w, leftPanelX, py(h.p99.med), "all healthy")
		goalLine(w, leftPanelX, py(goalP99Ratio*h.p99.med), fmt.Sprintf("goal %.1f× healthy", goalP99Ratio))
	}
	r.bars(w, leftPanelX, func(s summary) spread { return s.p99 }, py, "%.2f")

	// Slow server share panel, linear 0 to 100%.
	sy := func(v float64) float64 { return panelTop + panelH - v/100*panelH }
	ticks = ticks[:0]
	for v := 0.0; v <= 100; v += 20 {
		ticks = append(ticks, tick{sy(v), fmt.Sprintf("%.0f%%", v)})
	}
	r.panel(w, rightPanelX, "slow server's share of calls", ticks)
	goalLine(w, rightPanelX, sy(100/4.0), "even share")
	r.bars(w, rightPanelX, func(s summary) spread { return pct(s.slowShare) }, sy, "%.1f%%")

	fmt.Fprintf(w, `<text x="%d" y="%d" %s fill="#616161">%s</text>`+"\n", leftPanelX, svgH-12, svgFont, svgEsc(fmt.Sprintf(
		"%d workers per server, %v ±%.0f%% service time; open loop %.0f calls/s; %v measured per policy per round; bars: median of %d rounds, whiskers: range",
		cfg.workers, cfg.service, 100*cfg.jitter, cfg.rate, cfg.duration, cfg.rounds)))
	fmt.Fprintln(w, "</svg>")
	return w.Flush()
}

type tick struct {
	y     float64
	label string
}

func (r *report) panel(w io.Writer, px int, title string, ticks []tick) {
	fmt.Fprintf(w, `<text x="%d" y="%d" %s font-weight="bold">%s</text>`+"\n", px, panelTop-10, svgFont, svgEsc(title))
	for _, t := range ticks {
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", px, t.y, px+panelW, t.y, gridStroke)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", px-6, t.y+4, svgFont, svgEsc(t.label))
	}
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", px, panelTop+panelH, px+panelW, panelTop+panelH)
}

func goalLine(w io.Writer, px int, y float64, label string) {
	fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 3"/>`+"\n", px, y, px+panelW, y, goalStroke)
	fmt.Fprintf(w, `<text x="%d" y="%.1f" font-family="sans-serif" font-size="10" fill="%s" text-anchor="end">%s</text>`+"\n", px+panelW-2, y-3, goalStroke, svgEsc(label))
}

// bars draws one bar per mode at its median, with the range as a whisker
// and the mode's name below.
func (r *report) bars(w io.Writer, px int, val func(summary) spread, y func(float64) float64, format string) {
	var shown []summary
	for _, s := range r.summaries {
		if s.rounds > 0 {
			shown = append(shown, s)
		}
	}
	if len(shown) == 0 {
		return
	}
	slot := float64(panelW) / float64(len(shown))
	bottom := float64(panelTop + panelH)
	for i, s := range shown {
		v := val(s)
		x := float64(px) + slot*float64(i) + slot*0.2
		bw := slot * 0.6
		top := y(v.med)
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, top, bw, math.Max(0, bottom-top), modeColors[s.mode])
		cx := x + bw/2
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", cx, y(v.lo), cx, y(v.hi))
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-family="sans-serif" font-size="10" text-anchor="middle">%s</text>`+"\n", cx, math.Min(top, y(v.hi))-4, svgEsc(fmt.Sprintf(format, v.med)))
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-family="sans-serif" font-size="10" text-anchor="middle">%s</text>`+"\n", cx, bottom+16, svgEsc(shortName(s.mode)))
	}
}

func shortName(mode string) string {
	switch mode {
	case modeHealthy:
		return "healthy"
	case modePeakEWMA:
		return "shoal peak-EWMA"
	case modeLeastReq:
		return "least_request"
	case modeWRR:
		return "weighted_rr"
	}
	return mode
}
