package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
	"github.com/recstream/recstream/store"
)

func cmdDemo(args []string) error {
	fs := newFlagSet("demo")
	users := fs.Int("users", 500, "synthetic users")
	items := fs.Int("items", 300, "synthetic items")
	clusters := fs.Int("clusters", 5, "planted taste clusters")
	rate := fs.Float64("rate", 200, "synthetic events per second after the warm-up (0: none)")
	warmup := fs.Int("warmup", 5000, "synthetic events published at once at the start (0: none)")
	every := fs.Duration("every", 3*time.Second, "how often to print the sample users")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	admin := fs.String("admin", "127.0.0.1:0", "admin/status listen address")
	verbose := fs.Bool("v", false, "log at info level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *rate < 0 || *warmup < 0 {
		return usagef("--rate and --warmup must not be negative")
	}
	ctx, stop := signalContext()
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	out := os.Stdout

	cfg := config.Default()
	topics := cfg.Topics()
	kf, err := embedded.StartKafka(4, topics...)
	if err != nil {
		return fmt.Errorf("starting embedded broker: %w", err)
	}
	defer kf.Close()
	rd, err := embedded.StartRedis(ctx)
	if err != nil {
		return fmt.Errorf("starting redis: %w", err)
	}
	defer rd.Close()

	cfg.Kafka.Brokers = kf.Brokers
	cfg.Kafka.CreateTopics = false
	cfg.Redis.Addrs = []string{rd.Addr}
	cfg.Admin.Listen = *admin
	cfg.Admin.AnonymousUserLookup = true // the demo's own data, on 127.0.0.1 by default
	cfg.Scorer.Debounce = 50 * time.Millisecond
	cfg.Scorer.ExcludeSeen = false
	logLevel := "warn"
	if *verbose {
		logLevel = "info"
	}
	cfg.Log.Level = logLevel
	log := newLogger(cfg.Log, os.Stderr)
	reg := newRegistry()
	p, err := processor.New(cfg, processor.Deps{Logger: log, Registerer: reg, Gatherer: reg, Version: version})
	if err != nil {
		return err
	}
	addr, err := p.Listen()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "recstream demo\n")
	fmt.Fprintf(out, "  status page  : http://%s/   (a user: http://%s/?user=u0   metrics: /metrics)\n", addr, addr)
	fmt.Fprintf(out, "  kafka broker : %s (embedded; topics %s)\n", strings.Join(kf.Brokers, ","), strings.Join(topics, ", "))
	fmt.Fprintf(out, "  redis        : %s (%s; keys prefixed %q)\n", rd.Addr, rd.Kind, cfg.Redis.KeyPrefix)
	fmt.Fprintln(out)
	sendReadExample(out, kf.Brokers[0], cfg.Kafka.EventsTopic, portOf(rd.Addr), p.Store.Keys().UserList("me"), addr.String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(gctx) })
	gen := loadgen.New(loadgen.Options{Users: *users, Items: *items, Clusters: *clusters, Seed: uint64(time.Now().UnixNano())})
	g.Go(func() error {
		w := consumer.Kafka{Brokers: kf.Brokers}.NewWriter()
		defer w.Close()
		// The catalog first, consistent with the planted clusters.
		var items []kafka.Message
		for _, it := range gen.Catalog(time.Now()) {
			items = append(items, kafka.Message{Topic: cfg.Kafka.ItemsTopic, Key: []byte(it.ID), Value: catalog.Encode(it)})
		}
		if err := w.WriteMessages(gctx, items...); err != nil {
			return fmt.Errorf("publishing the catalog: %w", err)
		}
		w.Topic = cfg.Kafka.EventsTopic
		next := func() (kafka.Message, error) {
			ev := gen.Next()
			b, err := event.Encode(ev)
			return kafka.Message{Key: []byte(ev.UserID), Value: b}, err
		}
		return demoEvents(gctx, w, next, *warmup, *rate)
	})
	g.Go(func() error {
		samples := []string{loadgen.UserID(0), loadgen.UserID(1), loadgen.UserID(2)}
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
			printSamples(gctx, out, p.Store, gen, samples)
		}
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return err
}

// demoEvents publishes warmup events at once, then rate events per second
// until ctx ends; 0 means none for either.
func demoEvents(ctx context.Context, w *kafka.Writer, next func() (kafka.Message, error), warmup int, rate float64) error {
	if warmup > 0 {
		if err := produceLoop(ctx, w, next, 0, warmup); err != nil {
			return err
		}
	}
	if rate > 0 {
		return produceLoop(ctx, w, next, rate, 0)
	}
	return nil
}

// sendReadExample prints how to send an event and read the list it
// produces (the README shows the same).
func sendReadExample(w io.Writer, broker, topic, redisPort, listKey, admin string) {
	fmt.Fprintf(w, `send an event (JSON, keyed by user_id; type browse, click, add_to_cart or purchase; ts in unix ms, optional):
  echo 'me|{"user_id":"me","item_id":"i7","type":"click"}' | kcat -b %s -t %s -P -K '|'
  echo '{"user_id":"me","item_id":"i7","type":"click"}' | recstream produce --brokers %s
read the list (within a second):
  redis-cli -p %s GET '%s'
  curl -s http://%s/api/v1/users/me/recommendations

`, broker, topic, broker, redisPort, listKey, admin)
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

func printSamples(ctx context.Context, w io.Writer, st *store.Store, gen *loadgen.Generator, users []string) {
	fmt.Fprintf(w, "── %s ──\n", time.Now().Format("15:04:05"))
	for _, u := range users {
		evs, err := st.RecentEvents(ctx, u, 4)
		if err != nil {
			slog.Default().Debug("demo: reading events", "err", err)
			continue
		}
		l, found, err := st.ReadList(ctx, u)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "user %s (taste cluster %d)\n  recent:", u, gen.Cluster(u))
		for _, e := range evs {
			fmt.Fprintf(w, " %s %s(c%d)", e.Type, e.Item, gen.Cluster(e.Item))
		}
		fmt.Fprintln(w)
		if !found {
			fmt.Fprintln(w, "  list: not yet written")
			continue
		}
		age := time.Since(time.UnixMilli(l.GeneratedAt)).Round(time.Millisecond)
		fmt.Fprintf(w, "  list (%s, written %s ago):\n", l.Model, age)
		for i, it := range l.Items {
			if i >= 5 {
				break
			}
			fmt.Fprintf(w, "    %d. %-6s (cluster %d) %.3f  %s\n", i+1, it.Item, gen.Cluster(it.Item), it.Score, it.Reason)
		}
	}
	fmt.Fprintln(w)
}
