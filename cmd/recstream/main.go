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

const usage = `recstream: streaming recommender event processor

Usage:
  recstream run     [--config FILE] [--set key=value]...   run the processor (roles from run.roles)
  recstream demo    [--users N] [--rate N]                 self-contained demo: embedded broker and Redis
  recstream produce [--brokers A] [--topic T] [--rate N]   publish JSON lines from stdin or synthetic events
  recstream bench   [--quick] [--json] [--profile DIR]       benchmark the pipeline (embedded broker, redis-server)
  recstream config  [--config FILE] [--set key=value]...   print the effective configuration (secrets redacted)
  recstream eval    --data FILE [--protocol loo|full|prequential] [--k 5,10,20] [--json]
                                                           offline accuracy of the production models (docs/evaluation.md)
  recstream forget  [--config FILE] [--request REF] USER   erase a user's data (docs/security.md)
  recstream experiment [--config FILE] [--json]            the A/B report from Redis (docs/experiments.md)
  recstream version

Every configuration key can be set in the YAML file, by environment variable
(RECSTREAM_<SECTION>_<KEY>) or with --set section.key=value, in that order.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(args)
	case "demo":
		err = cmdDemo(args)
	case "produce":
		err = cmdProduce(args)
	case "bench":
		err = cmdBench(args)
	case "config":
		err = cmdConfig(args, os.Stdout)
	case "eval":
		err = cmdEval(args)
	case "forget":
		err = cmdForget(args, os.Stdout)
	case "experiment":
		err = cmdExperiment(args, os.Stdout)
	case "version":
		fmt.Printf("recstream %s (%s)\n", version, commit)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "recstream: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "recstream %s: %v\n", cmd, err)
		os.Exit(1)
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
	p, err := processor.New(cfg, processor.Deps{Logger: log, Registerer: reg, Gatherer: reg, Version: version})
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
