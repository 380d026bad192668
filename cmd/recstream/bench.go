package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/recstream/recstream/bench"
	"github.com/recstream/recstream/config"
)

func cmdBench(args []string) error {
	d := bench.Defaults()
	fs := newFlagSet("bench")
	users := fs.Int("users", 0, fmt.Sprintf("synthetic users (default %d; --quick %d)", d.Users, bench.QuickDefaults().Users))
	items := fs.Int("items", 0, fmt.Sprintf("synthetic items (default %d)", d.Items))
	events := fs.Int("events", 0, fmt.Sprintf("events of the ingest phase (default %d)", d.Events))
	rate := fs.Float64("rate", 0, fmt.Sprintf("offered events/s of the freshness phase (default %.0f)", d.Rate))
	duration := fs.Duration("duration", 0, fmt.Sprintf("length of the freshness phase (default %s)", d.Duration))
	partitions := fs.Int("partitions", 0, fmt.Sprintf("partitions per topic (default %d)", d.Partitions))
	rescore := fs.Int("rescore-users", 0, fmt.Sprintf("users scored in the rescore phase (default %d)", d.RescoreUsers))
	hset := fs.Int("hset-requests", 0, fmt.Sprintf("redis-benchmark HSET requests (default %d)", d.HSETRequests))
	quick := fs.Bool("quick", false, "small sizes: a smoke test of a few seconds")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	profile := fs.String("profile", "", "write CPU profiles per phase and a heap profile to this directory")
	var sets multiFlag
	fs.Var(&sets, "set", "override one processor configuration key: section.key=value (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	opt := bench.Options{Users: *users, Items: *items, Events: *events, Rate: *rate, Duration: *duration,
		Partitions: *partitions, RescoreUsers: *rescore, HSETRequests: *hset, Quick: *quick, ProfileDir: *profile}
	if len(sets) > 0 {
		cfg, err := config.Load("", func(string) (string, bool) { return "", false }, sets)
		if err != nil {
			return err
		}
		opt.Config = &cfg
	}
	if bin, err := os.Executable(); err == nil {
		opt.ProcessorBinary = bin // the processor-alone RSS phase runs this binary
		opt.EASESolver = runEASESolver()
	}
	start := time.Now()
	opt.Progress = func(phase string) {
		fmt.Fprintf(os.Stderr, "recstream bench: %-16s (%s)\n", phase, time.Since(start).Round(100*time.Millisecond))
	}
	ctx, stop := signalContext()
	defer stop()
	res, err := bench.Run(ctx, opt)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Printf("recstream bench %s\n\n", strings.Join(args, " "))
	return res.WriteTable(os.Stdout)
}
