package hpa

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH             = 960, 460
	marginL, marginR           = 60, 20
	marginT, marginB           = 40, 90
	plotW                      = chartW - marginL - marginR
	plotH                      = chartH - marginT - marginB
	loadColor                  = "#9e9e9e"
	gridColor                  = "#e0e0e0"
	defaultFont                = "font-family=\"sans-serif\" font-size=\"12\""
	desiredWidth, readyWidth   = 2.5, 1.5
	readyDash, loadDash        = "6 3", "2 3"
	legendSwatchW              = 28
	legendColW                 = 320
	maxTicksX, maxTicksY       = 12, 10
	chartTitle                 = "HPA simulation: load (in pods' worth) and replicas over time"
	loadLegend                 = "load (pods' worth)"
	desiredLegend, readyLegend = "desired", "ready"
)

var runColors = []string{"#1565c0", "#e65100"}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// niceStep picks a 1-2-5 step giving at most max ticks over span.
func niceStep(span float64, maxTicks int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(maxTicks)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// writeSVG draws the load and, per run, the desired and ready replicas as
// step lines over time.
func writeSVG(out io.Writer, runs []run) error {
	w := bufio.NewWriter(out)
	samples := runs[0].samples
	end := samples[len(samples)-1].Time
	if end <= 0 {
		end = time.Second
	}
	yMax := 1.0
	capacity := func(r run) float64 {
		if r.scen.PodCapacity > 0 {
			return r.scen.PodCapacity
		}
		return 1
	}
	for _, r := range runs {
		for _, s := range r.samples {
			yMax = math.Max(yMax, math.Max(float64(s.Desired), float64(s.Ready)))
			yMax = math.Max(yMax, s.Load/capacity(r))
		}
	}
	yStep := niceStep(yMax, maxTicksY)
	yMax = math.Ceil(yMax/yStep)*yStep + yStep
	x := func(t time.Duration) float64 { return marginL + float64(t)/float64(end)*plotW }
	y := func(v float64) float64 { return marginT + plotH - v/yMax*plotH }

	fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(w, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", chartW, chartH)
	fmt.Fprintf(w, "<text x=\"%d\" y=\"24\" font-family=\"sans-serif\" font-size=\"15\">%s</text>\n", marginL, esc(chartTitle))
	for v := 0.0; v <= yMax+1e-9; v += yStep {
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n", marginL, y(v), marginL+plotW, y(v), gridColor)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%.1f\" %s text-anchor=\"end\">%g</text>\n", marginL-6, y(v)+4, defaultFont, v)
	}
	xStepMin := niceStep(end.Minutes(), maxTicksX)
	for m := 0.0; m <= end.Minutes()+1e-9; m += xStepMin {
		t := time.Duration(m * float64(time.Minute))
		fmt.Fprintf(w, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", x(t), marginT, x(t), marginT+plotH, gridColor)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\" %s text-anchor=\"middle\">%gm</text>\n", x(t), marginT+plotH+16, defaultFont, m)
	}
	fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s text-anchor=\"middle\">time (minutes)</text>\n", marginL+plotW/2, marginT+plotH+34, defaultFont)
	fmt.Fprintf(w, "<text transform=\"translate(16 %d) rotate(-90)\" %s text-anchor=\"middle\">replicas</text>\n", marginT+plotH/2, defaultFont)
	fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#616161\"/>\n", marginL, marginT, plotW, plotH)

	// The load is sampled at the same times; draw it as straight segments.
	var pts []string
	for _, s := range samples {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.Time), y(s.Load/capacity(runs[0]))))
	}
	fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\"/>\n", strings.Join(pts, " "), loadColor, loadDash)

	step := func(r run, value func(int) float64) string {
		var b []string
		for i, s := range r.samples {
			if i > 0 {
				b = append(b, fmt.Sprintf("%.1f,%.1f", x(s.Time), y(value(i-1))))
			}
			b = append(b, fmt.Sprintf("%.1f,%.1f", x(s.Time), y(value(i))))
		}
		return strings.Join(b, " ")
	}
	for i, r := range runs {
		color := runColors[i%len(runColors)]
		fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%g\"/>\n",
			step(r, func(j int) float64 { return float64(r.samples[j].Desired) }), color, desiredWidth)
		fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" stroke-dasharray=\"%s\" opacity=\"0.8\"/>\n",
			step(r, func(j int) float64 { return float64(r.samples[j].Ready) }), color, readyWidth, readyDash)
	}

	// Legend below the axis label.
	ly := marginT + plotH + 52
	fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\"/>\n", marginL, ly, marginL+legendSwatchW, ly, loadColor, loadDash)
	fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s>%s</text>\n", marginL+legendSwatchW+6, ly+4, defaultFont, esc(loadLegend))
	for i, r := range runs {
		color := runColors[i%len(runColors)]
		lx := marginL + 200 + legendColW*i
		lyy := ly
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%g\"/>\n", lx, lyy-6, lx+legendSwatchW, lyy-6, color, desiredWidth)
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%g\" stroke-dasharray=\"%s\"/>\n", lx, lyy+6, lx+legendSwatchW, lyy+6, color, readyWidth, readyDash)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s>%s</text>\n", lx+legendSwatchW+6, lyy-2, defaultFont, esc(r.name+": "+desiredLegend))
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s>%s</text>\n", lx+legendSwatchW+6, lyy+10, defaultFont, esc(r.name+": "+readyLegend))
	}
	fmt.Fprintln(w, "</svg>")
	return w.Flush()
}
