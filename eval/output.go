package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// metricKeys returns the union of the metric keys of rs in display order.
func metricKeys(rs []Result) []string {
	set := map[string]bool{}
	var keys []string
	for _, r := range rs {
		for k := range r.Metrics {
			if !set[k] {
				set[k] = true
				keys = append(keys, k)
			}
		}
	}
	sortMetricKeys(keys)
	return keys
}

func formatMetric(key string, v float64) string {
	if _, ok := finite(v); !ok {
		return "-"
	}
	if name, _ := splitKey(key); name == MetricPopularity {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// WriteTable writes an aligned text table with a row per result: model,
// protocol, users, then every metric any result has.
func WriteTable(w io.Writer, rs []Result) error {
	keys := metricKeys(rs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append([]string{"model", "protocol", "users"}, keys...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rs {
		row := []string{r.Model, r.Protocol, strconv.Itoa(r.Users)}
		for _, k := range keys {
			v, ok := r.Metrics[k]
			if !ok {
				row = append(row, "-")
				continue
			}
			row = append(row, formatMetric(k, v))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// jsonNumber formats a float for JSON; non-finite values become null.
func jsonNumber(v float64) string {
	if _, ok := finite(v); !ok {
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeMetrics appends `, "key": value` for each metric in display order.
func writeMetrics(b *bytes.Buffer, m map[string]float64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortMetricKeys(keys)
	for _, k := range keys {
		fmt.Fprintf(b, ", %s: %s", jsonString(k), jsonNumber(m[k]))
	}
}

// WriteJSON writes {"results": [{"model": ..., "protocol": ..., "users": ...,
// "events": ..., "hr@10": ..., "ndcg@10": ..., ..., "fit_seconds": ...,
// "eval_seconds": ...}]}, one result object per line with the metrics
// flattened into it in display order; prequential results also carry
// "windows": [{"index", "from_ts", "to_ts", "interactions", "events",
// metrics...}].
func WriteJSON(w io.Writer, rs []Result) error {
	var b bytes.Buffer
	b.WriteString(`{"results": [`)
	for n, r := range rs {
		if n > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  {\"model\": %s, \"protocol\": %s, \"users\": %d, \"events\": %d",
			jsonString(r.Model), jsonString(r.Protocol), r.Users, r.Events)
		writeMetrics(&b, r.Metrics)
		fmt.Fprintf(&b, ", \"fit_seconds\": %s, \"eval_seconds\": %s",
			jsonNumber(math.Round(r.FitSeconds*1000)/1000), jsonNumber(math.Round(r.EvalSeconds*1000)/1000))
		if len(r.Windows) > 0 {
			b.WriteString(`, "windows": [`)
			for i, wr := range r.Windows {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, `{"index": %d, "from_ts": %d, "to_ts": %d, "interactions": %d, "events": %d`,
					wr.Index, wr.FromTS, wr.ToTS, wr.Interactions, wr.Events)
				writeMetrics(&b, wr.Metrics)
				b.WriteString("}")
			}
			b.WriteString("]")
		}
		b.WriteString("}")
	}
	if len(rs) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]}\n")
	_, err := w.Write(b.Bytes())
	return err
}

// svgPalette are the line colours of WriteSVG (colour-blind safe, Okabe-Ito).
var svgPalette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"}

// WriteSVG writes a self-contained SVG line chart of metric (a family name
// such as "hr" or "ndcg", or a key such as "hr@10" whose cutoff is ignored)
// against K: one line per result, a legend, and the K values of all results
// as evenly spaced x ticks.
func WriteSVG(w io.Writer, rs []Result, metric string) error {
	name, _ := splitKey(metric)
	if name == "" {
		return fmt.Errorf("svg: empty metric name")
	}
	var ks []int
	for _, r := range rs {
		ks = append(ks, r.K...)
	}
	slices.Sort(ks)
	ks = slices.Compact(ks)
	protos := map[string]bool{}
	for _, r := range rs {
		protos[r.Protocol] = true
	}
	label := func(r Result) string {
		if len(protos) > 1 {
			return r.Model + " (" + r.Protocol + ")"
		}
		return r.Model
	}
	ymax := 0.0
	for _, r := range rs {
		for _, k := range ks {
			if v, ok := r.Metrics[MetricKey(name, k)]; ok {
				if v, ok := finite(v); ok {
					ymax = max(ymax, v)
				}
			}
		}
	}
	step, top := niceAxis(ymax)
	legendW := 40.0
	for _, r := range rs {
		legendW = max(legendW, 40+7*float64(len([]rune(label(r)))))
	}
	const (
		plotW, plotH = 480.0, 300.0
		left, topM   = 60.0, 40.0
		bottom       = 50.0
	)
	width := left + plotW + 20 + legendW
	height := topM + plotH + bottom
	x := func(i int) float64 {
		if len(ks) <= 1 {
			return left + plotW/2
		}
		return left + 20 + float64(i)*(plotW-40)/float64(len(ks)-1)
	}
	y := func(v float64) float64 { return topM + plotH - v/top*plotH }
	var b bytes.Buffer
	title := strings.ToUpper(name) + "@K"
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, "<title>%s</title>\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.1f" y="22" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n",
		left+plotW/2, html.EscapeString(title))
	// Grid and y axis.
	for v := 0.0; v <= top+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+plotW, y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
			left-6, y(v), strconv.FormatFloat(v, 'f', decimals(step), 64))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, topM, left, topM+plotH)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, topM+plotH, left+plotW, topM+plotH)
	for i, k := range ks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x(i), topM+plotH, x(i), topM+plotH+5)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x(i), topM+plotH+18, k)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">K</text>`+"\n", left+plotW/2, topM+plotH+38)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n",
		topM+plotH/2, topM+plotH/2, html.EscapeString(strings.ToUpper(name)))
	// Lines.
	for n, r := range rs {
		col := svgPalette[n%len(svgPalette)]
		var pts []string
		var dots bytes.Buffer
		for i, k := range ks {
			v, ok := r.Metrics[MetricKey(name, k)]
			if !ok {
				continue
			}
			if v, ok = finite(v); !ok {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
			fmt.Fprintf(&dots, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s@%d = %.4f</title></circle>`+"\n",
				x(i), y(v), col, html.EscapeString(label(r)), html.EscapeString(name), k, v)
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		}
		b.Write(dots.Bytes())
	}
	// Legend.
	lx := left + plotW + 20
	for n, r := range rs {
		col := svgPalette[n%len(svgPalette)]
		ly := topM + 10 + float64(n)*18
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly, lx+24, ly, col)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", lx+30, ly, html.EscapeString(label(r)))
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// niceAxis returns a tick step of 1, 2 or 5 times a power of ten and the
// smallest multiple of it >= v (for v <= 0, an axis to 1).
func niceAxis(v float64) (step, top float64) {
	if v <= 0 {
		return 0.2, 1
	}
	raw := v / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	top = math.Ceil(v/step-1e-9) * step
	return step, top
}

// decimals is the number of decimals that shows a tick step exactly.
func decimals(step float64) int {
	d := 0
	for d < 10 && math.Abs(step*math.Pow(10, float64(d))-math.Round(step*math.Pow(10, float64(d)))) > 1e-9 {
		d++
	}
	return d
}
