package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Chart geometry, in SVG user units: two panels side by side.
const (
	svgW, svgH        = 960, 440
	panelW, panelH    = 380, 300
	panelTop          = 50
	leftPanelX        = 70
	rightPanelX       = 550
	gridStroke        = "#e0e0e0"
	goalStroke        = "#757575"
	svgFont           = `font-family="sans-serif" font-size="12"`
	svgTitle          = "Overload: goodput and p99 of the 200s against offered load (one core, thumbnail resize)"
	goodputPanelTitle = "goodput (200s/s) ÷ capacity"
	p99PanelTitle     = "p99 of the 200s, ms (log scale)"
)

var variantColors = map[string]string{
	variantNone:   "#9e9e9e",
	variantShoal:  "#1565c0",
	variantGoZero: "#e65100",
	variantKratos: "#2e7d32",
}

func svgEsc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeSVG draws goodput and p99 against the offered load, one line per
// variant, with the goals as dashed lines.
func (rep *report) writeSVG(out io.Writer) error {
	w := bufio.NewWriter(out)
	levels := slices.Clone(rep.res.cfg.levels)
	slices.Sort(levels)
	lo, hi := math.Log2(levels[0]), math.Log2(levels[len(levels)-1])
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	x := func(px float64, level float64) float64 {
		return px + 20 + (math.Log2(level)-lo)/(hi-lo)*(panelW-40)
	}

	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(w, `<text x="%d" y="24" font-family="sans-serif" font-size="15">%s</text>`+"\n", leftPanelX, svgEsc(svgTitle))

	// Goodput panel: linear, 0 to a little over the best.
	gMax := 1.1
	for _, r := range rep.rows {
		gMax = max(gMax, r.goodputShare*1.05)
	}
	gy := func(v float64) float64 { return panelTop + panelH - v/gMax*panelH }
	var gTicks []tick
	for v := 0.0; v <= gMax+1e-9; v += 0.2 {
		gTicks = append(gTicks, tick{gy(v), fmt.Sprintf("%.1f", v)})
	}
	rep.panel(w, leftPanelX, goodputPanelTitle, gTicks, levels, x)
	goalLine(w, leftPanelX, gy(1), "capacity")
	goalLine(w, leftPanelX, gy(goalGoodputShare), fmt.Sprintf("goal %.1f", goalGoodputShare))
	rep.series(w, x, leftPanelX, func(r row) (float64, bool) { return gy(r.goodputShare), true })

	// p99 panel: log scale from a little under the unloaded p99 to the
	// timeout.
	pMin := math.Max(0.1, ms(rep.unloadedP99)/2)
	pMax := ms(rep.res.cfg.timeout)
	for _, r := range rep.rows {
		if r.answered > 0 {
			pMin, pMax = math.Min(pMin, ms(r.p99)), math.Max(pMax, ms(r.p99))
		}
	}
	lpMin, lpMax := math.Floor(math.Log10(pMin)), math.Ceil(math.Log10(pMax))
	py := func(v float64) float64 {
		return panelTop + panelH - (math.Log10(v)-lpMin)/(lpMax-lpMin)*panelH
	}
	var pTicks []tick
	for e := lpMin; e <= lpMax; e++ {
		v := math.Pow(10, e)
		pTicks = append(pTicks, tick{py(v), strings.TrimSuffix(fmt.Sprintf("%g", v), ".0")})
	}
	rep.panel(w, rightPanelX, p99PanelTitle, pTicks, levels, x)
	goalLine(w, rightPanelX, py(goalP99Ratio*ms(rep.unloadedP99)), fmt.Sprintf("goal %.0f× unloaded", goalP99Ratio))
	goalLine(w, rightPanelX, py(ms(rep.unloadedP99)), "unloaded")
	rep.series(w, x, rightPanelX, func(r row) (float64, bool) { return py(ms(r.p99)), r.answered > 0 })

	// Legend.
	lx := float64(leftPanelX)
	for _, v := range rep.variants() {
		y := float64(panelTop + panelH + 62)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"/>`+"\n", lx, y-4, lx+28, y-4, variantColors[v])
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" %s>%s</text>`+"\n", lx+34, y, svgFont, svgEsc(v))
		lx += 130
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" %s fill="#616161">%s</text>`+"\n", leftPanelX, svgH-12, svgFont, svgEsc(fmt.Sprintf(
		"capacity %.0f/s (levels × %.0f/s); unloaded p99 %.1f ms; %v steps after %v at %.1f×; timeout %v; a missing point means no 200s",
		rep.res.capacity, rep.res.offerBase, ms(rep.unloadedP99), rep.res.cfg.step, rep.res.cfg.warm, rep.res.cfg.warmLoad, rep.res.cfg.timeout)))
	fmt.Fprintln(w, "</svg>")
	return w.Flush()
}

type tick struct {
	y     float64
	label string
}

// panel draws a panel's frame, y grid and x axis (offered load).
func (rep *report) panel(w io.Writer, px int, title string, yTicks []tick, levels []float64, x func(float64, float64) float64) {
	fmt.Fprintf(w, `<text x="%d" y="%d" %s font-weight="bold">%s</text>`+"\n", px, panelTop-8, svgFont, svgEsc(title))
	for _, t := range yTicks {
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", px, t.y, px+panelW, t.y, gridStroke)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", px-6, t.y+4, svgFont, svgEsc(t.label))
	}
	bottom := panelTop + panelH
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", px, bottom, px+panelW, bottom)
	for _, lv := range levels {
		fmt.Fprintf(w, `<text x="%.1f" y="%d" %s text-anchor="middle">%g×</text>`+"\n", x(float64(px), lv), bottom+18, svgFont, lv)
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" %s text-anchor="middle">offered load (× capacity)</text>`+"\n", px+panelW/2, bottom+36, svgFont)
}

func goalLine(w io.Writer, px int, y float64, label string) {
	fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 3"/>`+"\n", px, y, px+panelW, y, goalStroke)
	fmt.Fprintf(w, `<text x="%d" y="%.1f" font-family="sans-serif" font-size="10" fill="%s" text-anchor="end">%s</text>`+"\n", px+panelW-2, y-3, goalStroke, svgEsc(label))
}

// series draws each variant's points, joined where consecutive levels
// both have one.
func (rep *report) series(w io.Writer, x func(float64, float64) float64, px int, y func(row) (float64, bool)) {
	for _, v := range rep.variants() {
		var rows []row
		for _, r := range rep.rows {
			if r.variant == v {
				rows = append(rows, r)
			}
		}
		slices.SortFunc(rows, func(a, b row) int { return int(math.Copysign(1, a.level-b.level)) })
		color := variantColors[v]
		var path []string
		flush := func() {
			if len(path) > 1 {
				fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.Join(path, " "), color)
			}
			path = path[:0]
		}
		for _, r := range rows {
			yy, ok := y(r)
			if !ok {
				flush()
				continue
			}
			xx := x(float64(px), r.level)
			path = append(path, fmt.Sprintf("%.1f,%.1f", xx, yy))
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", xx, yy, color)
		}
		flush()
	}
}

// variants returns the variants that ran, in the standard order.
func (rep *report) variants() []string {
	var out []string
	for _, v := range allVariants {
		for _, r := range rep.rows {
			if r.variant == v {
				out = append(out, v)
				break
			}
		}
	}
	return out
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
