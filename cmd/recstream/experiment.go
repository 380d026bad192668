package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/experiment"
	"github.com/recstream/recstream/processor"
)

func cmdExperiment(args []string, w io.Writer) error {
	fs := newFlagSet("experiment")
	path := fs.String("config", os.Getenv("RECSTREAM_CONFIG"), "YAML configuration file")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: section.key=value (repeatable)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*path, os.LookupEnv, sets)
	if err != nil {
		return err
	}
	p, err := processor.New(cfg, processor.Deps{Logger: newLogger(cfg.Log, os.Stderr)})
	if err != nil {
		return err
	}
	defer p.Redis.Close()
	ctx, stop := signalContext()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := p.ExperimentReport(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return writeExperiment(w, r)
}

// writeExperiment prints the report as a text table.
func writeExperiment(w io.Writer, r experiment.Report) error {
	pct := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.2f%%", 100*v)
	}
	pp := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%+.2f", 100*v)
	}
	pv := func(v float64) string {
		switch {
		case math.IsNaN(v):
			return "-"
		case v < 0.0001:
			return "<0.0001"
		}
		return fmt.Sprintf("%.4f", v)
	}
	ci := func(lo, hi float64, f func(float64) string) string { return "[" + f(lo) + ", " + f(hi) + "]" }
	name := func(v string, control bool) string {
		if v == "" {
			v = "(no variant)"
		}
		if control {
			v += " (control)"
		}
		return v
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tusers\timpressions\tshown\tclicks\tCTR\t95% CI\tΔ pp\tΔ 95% CI\tp\tusers who click\tp\tpurchases\tconversion\t95% CI\tp\tvalue\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%.2f\t\n",
			name(row.Variant, row.Control), row.Users, row.Impressions, row.Shown, row.Clicks,
			pct(row.CTR.Rate), ci(row.CTR.Low, row.CTR.High, pct), pp(row.CTR.Diff), ci(row.CTR.DiffLow, row.CTR.DiffHigh, pp), pv(row.CTR.P),
			pct(row.Clickers.Rate), pv(row.Clickers.P), row.Purchases,
			pct(row.Conversion.Rate), ci(row.Conversion.Low, row.Conversion.High, pct), pv(row.Conversion.P), row.Value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Rows) == 0 {
		fmt.Fprintln(w, "no impressions counted yet")
	}
	fmt.Fprintln(w)
	for _, a := range r.Assumptions {
		fmt.Fprintln(w, "* "+strings.TrimSpace(a))
	}
	return nil
}
