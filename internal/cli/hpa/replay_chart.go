package hpa

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/autoscale"
)

// replayColors are the specs' colours, one per spec in order.
var replayColors = []string{"#1565c0", "#e65100", "#2e7d32", "#6a1b9a", "#c62828", "#00838f"}

// writeReplaySVG draws the demand (in pods' worth: demand over capacity)
// and, per spec, the replicas (solid) and ready pods (dashed) as step
// lines over the replayed time, and shades where the first spec's ready
// capacity was below demand. It uses simulate's chart geometry.
func writeReplaySVG(out io.Writer, title string, capacity float64, rows []replayed) error {
	w := bufio.NewWriter(out)
	series := rows[0].Report.Series
	end := time.Second
	yMax := 1.0
	for _, r := range rows {
		for _, p := range r.Report.Series {
			end = max(end, p.Time)
			yMax = math.Max(yMax, math.Max(float64(p.Replicas), p.Demand/capacity))
		}
	}
	if n := len(series); n > 1 {
		end = series[n-1].Time + (series[n-1].Time - series[n-2].Time)
	}
	yStep := niceStep(yMax, maxTicksY)
	yMax = math.Ceil(yMax/yStep)*yStep + yStep
	x := func(t time.Duration) float64 { return marginL + float64(t)/float64(end)*plotW }
	y := func(v float64) float64 { return marginT + plotH - v/yMax*plotH }

	// Two specs per legend row; more rows make the chart taller.
	height := chartH + 30*((len(rows)-1)/2)
	fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", chartW, height, chartW, height)
	fmt.Fprintf(w, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", chartW, height)
	fmt.Fprintf(w, "<text x=\"%d\" y=\"24\" font-family=\"sans-serif\" font-size=\"15\">%s</text>\n", marginL, esc(title))
	// Under-provisioned stretches of the first spec, shaded behind the lines.
	for i, p := range series {
		if p.Demand > float64(p.Ready)*capacity {
			next := end
			if i+1 < len(series) {
				next = series[i+1].Time
			}
			fmt.Fprintf(w, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#ffcdd2\" opacity=\"0.6\"/>\n", x(p.Time), marginT, x(next)-x(p.Time), plotH)
		}
	}
	for v := 0.0; v <= yMax+1e-9; v += yStep {
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n", marginL, y(v), marginL+plotW, y(v), gridColor)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%.1f\" %s text-anchor=\"end\">%g</text>\n", marginL-6, y(v)+4, defaultFont, v)
	}
	unit, scale := "minutes", time.Minute
	if end > 3*time.Hour {
		unit, scale = "hours", time.Hour
	}
	span := float64(end) / float64(scale)
	xStep := niceStep(span, maxTicksX)
	for m := 0.0; m <= span+1e-9; m += xStep {
		t := time.Duration(m * float64(scale))
		fmt.Fprintf(w, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", x(t), marginT, x(t), marginT+plotH, gridColor)
		fmt.Fprintf(w, "<text x=\"%.1f\" y=\"%d\" %s text-anchor=\"middle\">%g%s</text>\n", x(t), marginT+plotH+16, defaultFont, m, unit[:1])
	}
	fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s text-anchor=\"middle\">time (%s); shaded: %s short of demand</text>\n", marginL+plotW/2, marginT+plotH+34, defaultFont, unit, esc(rows[0].Name))
	fmt.Fprintf(w, "<text transform=\"translate(16 %d) rotate(-90)\" %s text-anchor=\"middle\">pods</text>\n", marginT+plotH/2, defaultFont)
	fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#616161\"/>\n", marginL, marginT, plotW, plotH)

	step := func(pts []autoscale.ReplayPoint, value func(autoscale.ReplayPoint) float64) string {
		var b []string
		for i, p := range pts {
			if i > 0 {
				b = append(b, fmt.Sprintf("%.1f,%.1f", x(p.Time), y(value(pts[i-1]))))
			}
			b = append(b, fmt.Sprintf("%.1f,%.1f", x(p.Time), y(value(p))))
		}
		if n := len(pts); n > 0 {
			b = append(b, fmt.Sprintf("%.1f,%.1f", x(end), y(value(pts[n-1]))))
		}
		return strings.Join(b, " ")
	}
	fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
		step(series, func(p autoscale.ReplayPoint) float64 { return p.Demand / capacity }), loadColor)
	for i, r := range rows {
		color := replayColors[i%len(replayColors)]
		fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%g\"/>\n",
			step(r.Report.Series, func(p autoscale.ReplayPoint) float64 { return float64(p.Replicas) }), color, desiredWidth)
		fmt.Fprintf(w, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" stroke-dasharray=\"%s\" opacity=\"0.8\"/>\n",
			step(r.Report.Series, func(p autoscale.ReplayPoint) float64 { return float64(p.Ready) }), color, readyWidth, readyDash)
	}

	ly := marginT + plotH + 52
	fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", marginL, ly, marginL+legendSwatchW, ly, loadColor)
	fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s>demand (pods' worth)</text>\n", marginL+legendSwatchW+6, ly+4, defaultFont)
	for i, r := range rows {
		color := replayColors[i%len(replayColors)]
		lx := marginL + 200 + legendColW*(i%2)
		lyy := ly + 30*(i/2)
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%g\"/>\n", lx, lyy-6, lx+legendSwatchW, lyy-6, color, desiredWidth)
		fmt.Fprintf(w, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"%g\" stroke-dasharray=\"%s\"/>\n", lx, lyy+6, lx+legendSwatchW, lyy+6, color, readyWidth, readyDash)
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s>%s</text>\n", lx+legendSwatchW+6, lyy-2, defaultFont, esc(r.Name+": replicas"))
		fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" %s>%s</text>\n", lx+legendSwatchW+6, lyy+10, defaultFont, esc(r.Name+": ready"))
	}
	fmt.Fprintln(w, "</svg>")
	return w.Flush()
}
