package admin

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"time"

	"github.com/recstream/recstream/experiment"
)

//go:embed status.html
var pageHTML string

var funcs = template.FuncMap{
	// ms formats a unix-millisecond time.
	"ms": func(v int64) string {
		if v == 0 {
			return "–"
		}
		return time.UnixMilli(v).UTC().Format("2006-01-02 15:04:05.000")
	},
	// ago formats the age of a unix-millisecond time relative to now.
	"ago": func(now time.Time, v int64) string {
		if v == 0 {
			return "–"
		}
		return now.Sub(time.UnixMilli(v)).Round(time.Millisecond).String()
	},
	// secs formats seconds with a unit suited to their size.
	"secs": func(v float64) string {
		switch {
		case math.IsNaN(v):
			return "–"
		case v == 0:
			return "0"
		case v < 1:
			return fmt.Sprintf("%.0f ms", v*1000)
		default:
			return fmt.Sprintf("%.1f s", v)
		}
	},
	"num": func(v float64) string {
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.1f", v)
	},
	"score": func(v float64) string { return fmt.Sprintf("%.3f", v) },
	// pct formats a rate as a percentage; "–" when undefined.
	"pct": func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "–"
		}
		return fmt.Sprintf("%.2f%%", 100*v)
	},
	// pp formats a difference of rates in percentage points, signed.
	"pp": func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "–"
		}
		return fmt.Sprintf("%+.2f", 100*v)
	},
	// pval formats a p-value.
	"pval": func(v float64) string {
		switch {
		case math.IsNaN(v):
			return "–"
		case v < 0.0001:
			return "<0.0001"
		default:
			return fmt.Sprintf("%.4f", v)
		}
	},
	"money": func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "–"
		}
		return fmt.Sprintf("%.2f", v)
	},
	"variant": func(v string) string {
		if v == "" {
			return "(no variant)"
		}
		return v
	},
	"keys": experiment.Keys,
	// interval formats [lo, hi] with f ("pct" or "pp"); "–" when undefined.
	"interval": func(lo, hi float64, f string) string {
		if math.IsNaN(lo) || math.IsNaN(hi) {
			return "–"
		}
		if f == "pp" {
			return fmt.Sprintf("%+.2f, %+.2f", 100*lo, 100*hi)
		}
		return fmt.Sprintf("%.2f, %.2f", 100*lo, 100*hi)
	},
	// positions returns every position any row has, in order.
	"positions": func(rows []experiment.Row) []string {
		all := map[string]experiment.Cell{}
		for _, r := range rows {
			for k := range r.ByPosition {
				all[k] = experiment.Cell{}
			}
		}
		return experiment.Keys(all)
	},
	"inc": func(i int) int { return i + 1 },
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("15:04:05 UTC")
	},
}
