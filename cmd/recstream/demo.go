package main

import (
	"context"
	"errors"
	"flag"
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
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	users := fs.Int("users", 500, "synthetic users")
	items := fs.Int("items", 300, "synthetic items")
	clusters := fs.Int("clusters", 5, "planted taste clusters")
	rate := fs.Float64("rate", 200, "events per second after the warm-up")
	warmup := fs.Int("warmup", 5000, "events published at once at the start")
	every := fs.Duration("every", 3*time.Second, "how often to print the sample users")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	admin := fs.String("admin", "127.0.0.1:0", "admin/status listen address")
	verbose := fs.Bool("v", false, "log at info level")
	if err := fs.Parse(args); err != nil {
		return err
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
	topics := []string{cfg.Kafka.EventsTopic, cfg.Kafka.DLQTopic, cfg.Kafka.RefreshTopic, cfg.Kafka.ItemsTopic}
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
	fmt.Fprintf(out, "  try          : kcat -b %s -t %s -C -o end     redis-cli -p %s GET '%s'\n\n",
		kf.Brokers[0], cfg.Kafka.RefreshTopic, portOf(rd.Addr), p.Store.Keys().UserList("u0"))

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
		if err := produceLoop(gctx, w, next, 0, *warmup); err != nil {
			return err
		}
		return produceLoop(gctx, w, next, *rate, 0)
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
