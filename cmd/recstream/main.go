// Command recstream is the streaming recommender's single binary: the
// processor (`run`), a self-contained demo (`demo`), a producer
// (`produce`), the effective configuration (`config`) and the offline tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/processor"
)

// Set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

// command is one subcommand: its help text and what runs it.
type command struct {
	name     string
	args     string // the synopsis after the name
	summary  string // one line, in the command list
	about    string // what it does, in its --help
	examples []string
	run      func(args []string) error
}

// commands is filled in init: the run functions refer back to it for
// their help.
var commands []command

func init() {
	commands = []command{
		{
			name: "run", args: "[--config FILE] [--set key=value]...",
			summary: "run the processor (the roles in run.roles)",
			about: `Runs the processor: the ingest role (events to user and item state in
Redis, invalid events to the dead-letter topic) and the score role
(refresh requests to per-user lists), as run.roles selects, with the admin
server (metrics, health, readiness, status page) on admin.listen. It waits
for Redis and the broker when they are not up yet, and stops on SIGINT or
SIGTERM within run.shutdown_timeout.`,
			examples: []string{
				"recstream run --config recstream.yaml",
				"recstream run --set run.roles=ingest --set kafka.brokers=kafka:9092",
				"RECSTREAM_REDIS_ADDRS=redis:6379 recstream run",
			},
			run: cmdRun,
		},
		{
			name: "demo", args: "[--users N] [--rate N] [--warmup N] [--duration D]",
			summary: "self-contained demo: embedded broker and Redis, synthetic events",
			about: `Starts an embedded Kafka-protocol broker and a Redis (redis-server from
PATH, else an embedded Redis-compatible server), the processor with both
roles, and a synthetic clickstream with planted taste clusters; prints a few
users' recent events and lists as they change, the addresses to use with
kcat and redis-cli, and how to send an event of your own.`,
			examples: []string{
				"recstream demo",
				"recstream demo --warmup 0 --rate 0      # no synthetic events: send your own",
				"recstream demo --duration 30s --rate 50",
			},
			run: cmdDemo,
		},
		{
			name: "produce", args: "[--brokers A] [--topic T] [--synthetic] [--rate N] [--count N]",
			summary: "publish events (JSON lines from stdin, or synthetic) or a catalog",
			about: `Publishes events to the events topic keyed by user_id: JSON lines read from
stdin (each checked as the processor would; invalid lines are skipped with a
message), or synthetic events with planted taste clusters. With --catalog
or --synthetic-catalog it publishes item records to the catalog topic
instead, keyed by item_id, and exits.`,
			examples: []string{
				`echo '{"user_id":"u1","item_id":"i42","type":"click"}' | recstream produce --brokers localhost:9092`,
				"recstream produce --brokers localhost:9092 --synthetic --rate 1000",
				"recstream produce --brokers localhost:9092 --synthetic-catalog",
			},
			run: cmdProduce,
		},
		{
			name: "bench", args: "[--quick] [--json] [--profile DIR] [--set key=value]...",
			summary: "benchmark the pipeline (embedded broker, redis-server)",
			about: `Benchmarks the real pipeline against an embedded broker and a private
redis-server: ingest throughput, Redis commands and CPU per event, the
rescoring rate, freshness percentiles at a steady rate and Redis memory per
user (docs/benchmarks.md).`,
			examples: []string{
				"recstream bench --quick",
				"recstream bench --json > result.json",
			},
			run: cmdBench,
		},
		{
			name: "config", args: "[--config FILE] [--set key=value]...",
			summary: "print the effective configuration (secrets redacted)",
			about: `Prints the configuration that run would use, every key, after the file,
the environment (RECSTREAM_<SECTION>_<KEY>) and --set; secrets are shown as
<redacted>. An invalid configuration is reported with the key at fault.`,
			examples: []string{
				"recstream config > recstream.yaml",
				"recstream config --config recstream.yaml --set admin.listen=127.0.0.1:9464",
			},
			run: func(args []string) error { return cmdConfig(args, os.Stdout) },
		},
		{
			name: "eval", args: "--data FILE [--protocol loo|full|prequential] [--k 5,10,20] [--json]",
			summary: "offline accuracy of the production models (docs/evaluation.md)",
			about: `Replays an interaction log through the same incremental code the processor
runs and reports HR@K, NDCG@K, precision/recall@K, MRR and coverage beside a
popularity baseline and a batch computation of the same models
(docs/evaluation.md).`,
			examples: []string{
				"recstream eval --data u.data --min-item-count 5 --min-user-count 20",
				"recstream eval --data ratings.csv --protocol prequential --json",
			},
			run: cmdEval,
		},
		{
			name: "forget", args: "[--config FILE] [--set key=value]... [--request REF] USER",
			summary: "erase a user's data (docs/security.md)",
			about: `Erases one user's events, state and list from Redis, records the erasure
in the audit stream and queues the users who shared items with them for
rescoring (docs/security.md). Prints the outcome as JSON.`,
			examples: []string{
				"recstream forget --config recstream.yaml --request TICKET-123 u42",
			},
			run: func(args []string) error { return cmdForget(args, os.Stdout) },
		},
		{
			name: "experiment", args: "[--config FILE] [--set key=value]... [--json]",
			summary: "the A/B report from Redis (docs/experiments.md)",
			about: `Reads the experiment counters from Redis and prints each variant's
impressions, attributed clicks, carts, purchases and value, click-through
and conversion rates with 95% intervals, the difference to the control (the
first variant) and the two-proportion test's p-value (docs/experiments.md).
The p-values assume a fixed horizon: decide when to stop before the test.`,
			examples: []string{
				"recstream experiment --config recstream.yaml",
				"recstream experiment --json",
			},
			run: func(args []string) error { return cmdExperiment(args, os.Stdout) },
		},
		{
			name: "ease-solve", summary: "solve an EASE fit (run by the score role)",
			about: `Reads an EASE model fit's request (every user's items and the model's
options, msgpack) from stdin, solves it at the lowest priority and writes
the model to stdout. The score role of "recstream run" starts it as a
child process for each fit, so that the fit's CPU and memory stay out of
the processor (docs/operations.md).`,
			examples: []string{"recstream ease-solve < request > model"},
			run:      func(args []string) error { return cmdEASESolve(args, os.Stdin, os.Stdout) },
		},
		{
			name: "version", summary: "print the version and commit",
			about:    "Prints the version and commit the binary was built from.",
			examples: []string{"recstream version"},
			run: func(args []string) error {
				fs := newFlagSet("version")
				if err := parseFlags(fs, args); err != nil {
					return err
				}
				if fs.NArg() > 0 {
					return usagef("unexpected argument %q", fs.Arg(0))
				}
				fmt.Printf("recstream %s (%s)\n", version, commit)
				return nil
			},
		},
	}
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// usage writes the command list.
func usage(w io.Writer) {
	fmt.Fprint(w, "recstream: streaming recommender event processor\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  recstream %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every configuration key can be set in the YAML file, by environment variable
(RECSTREAM_<SECTION>_<KEY>) or with --set section.key=value, in that order.
"recstream help COMMAND" or "recstream COMMAND --help" describes a command.
`)
}

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs a command line and returns the exit code: 0 on success and
// for help, 2 for a usage error (unknown command or flag, bad flag value,
// missing or extra argument), 1 when the command failed.
func runMain(argv []string) int {
	if len(argv) == 0 {
		usage(os.Stderr)
		return 2
	}
	name, args := argv[0], argv[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) == 0 {
			usage(os.Stdout)
			return 0
		}
		name, args = args[0], []string{"--help"}
	}
	c := findCommand(name)
	if c == nil {
		fmt.Fprintf(os.Stderr, "recstream: unknown command %q\n\n", name)
		usage(os.Stderr)
		return 2
	}
	err := c.run(args)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "recstream %s: %v\nRun 'recstream %s --help' for usage.\n", name, ue.err, name)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "recstream %s: %v\n", name, err)
		return 1
	}
}

// signalContext is cancelled on the first SIGINT or SIGTERM; a second one
// exits the process at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "recstream: second signal, exiting now")
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "recstream_build_info", Help: "Build version and commit; always 1."}, []string{"version", "commit"})
	bi.WithLabelValues(version, commit).Set(1)
	reg.MustRegister(bi)
	return reg
}

func cmdConfig(args []string, w io.Writer) error {
	cfg, err := loadConfig("config", args)
	if err != nil {
		return err
	}
	b, err := cfg.YAML()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func cmdRun(args []string) error {
	cfg, err := loadConfig("run", args)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, os.Stderr)
	limitMB := memoryLimit(cfg.Run.MemoryLimitMB)
	reg := newRegistry()
	p, err := processor.New(cfg, processor.Deps{Logger: log, Registerer: reg, Gatherer: reg, Version: version, EASESolver: runEASESolver()})
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	addr, err := p.Listen()
	if err != nil {
		return err
	}
	log.Info("recstream starting", "version", version, "roles", cfg.Run.Roles, "admin", addr, "brokers", cfg.Kafka.Brokers, "redis", cfg.Redis.Addrs, "memory_limit_mb", limitMB)
	redis.SetLogger(redisLogger{log})
	start := time.Now()
	err = p.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("recstream stopped", "uptime", time.Since(start).Round(time.Second), "err", err)
	return err
}

// memoryLimit sets the runtime's soft memory limit to mb MiB when mb > 0
// (run.memory_limit_mb) and returns the limit in force, in MiB (0 for none:
// neither the key nor GOMEMLIMIT set one).
func memoryLimit(mb int) int64 {
	if mb > 0 {
		debug.SetMemoryLimit(int64(mb) << 20)
	}
	lim := debug.SetMemoryLimit(-1)
	if lim == math.MaxInt64 {
		return 0
	}
	return lim >> 20
}

// redisLogger sends go-redis's internal messages (dial failures and the
// like, repeated on every retry) to the debug level: the processor reports
// what matters itself.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug("redis client: " + fmt.Sprintf(format, v...))
}
