package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/retry"
	"github.com/recstream/recstream/loadgen"
)

func cmdProduce(args []string) error {
	fs := newFlagSet("produce")
	brokers := fs.String("brokers", "localhost:9092", "comma-separated broker addresses")
	topic := fs.String("topic", "events", "topic to publish to")
	synthetic := fs.Bool("synthetic", false, "publish synthetic events instead of reading JSON lines from stdin")
	rate := fs.Float64("rate", 0, "events per second (0: as fast as possible)")
	count := fs.Int("count", 0, "stop after this many events (0: until stdin ends, or forever with --synthetic)")
	users := fs.Int("users", 10000, "synthetic: distinct users")
	items := fs.Int("items", 5000, "synthetic: distinct items")
	clusters := fs.Int("clusters", 5, "synthetic: taste clusters")
	seed := fs.Uint64("seed", 1, "synthetic: random seed")
	format := fs.String("format", "msgpack", "synthetic: wire format, msgpack or json")
	catalogFile := fs.String("catalog", "", "publish the catalog in this JSON-lines file (one item record a line) to --items-topic, then exit")
	syntheticCatalog := fs.Bool("synthetic-catalog", false, "publish a catalog consistent with the synthetic clusters (--items, --clusters) to --items-topic, then exit")
	itemsTopic := fs.String("items-topic", "items", "catalog topic")
	exp := fs.Bool("experiment", false, "publish a planted A/B experiment: impressions of --variants, then clicks of the shown items at each variant's --ctr, carts and purchases (docs/experiments.md)")
	variants := fs.String("variants", "a,b", "experiment: the variants, as configured in scorer.variants (the first is the control)")
	ctrs := fs.String("ctr", "0.05,0.10", "experiment: per variant, the probability that a shown item is clicked")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (events come from stdin or --synthetic)", fs.Arg(0))
	}
	if *catalogFile != "" || *syntheticCatalog {
		return produceCatalog(*brokers, *itemsTopic, *catalogFile, *items, *clusters, *seed)
	}
	if *format != "msgpack" && *format != "json" {
		return usagef("--format: want msgpack or json, got %q", *format)
	}
	ctx, stop := signalContext()
	defer stop()
	w := consumer.Kafka{Brokers: strings.Split(*brokers, ",")}.NewWriter()
	w.Topic = *topic
	defer w.Close()

	var next func() (kafka.Message, error)
	if *exp {
		opt := loadgen.ExperimentOptions{Users: *users, Items: *items, Seed: *seed, Variants: strings.Split(*variants, ",")}
		for _, c := range strings.Split(*ctrs, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
			if err != nil || x < 0 || x > 1 {
				return fmt.Errorf("--ctr: %q is not a probability", c)
			}
			opt.CTR = append(opt.CTR, x)
		}
		if len(opt.CTR) != len(opt.Variants) {
			return fmt.Errorf("--ctr: %d rates for %d variants", len(opt.CTR), len(opt.Variants))
		}
		g := loadgen.NewExperiment(opt)
		var queue []event.Event
		next = func() (kafka.Message, error) {
			if len(queue) == 0 {
				queue = g.Visit()
			}
			ev := queue[0]
			queue = queue[1:]
			enc := event.Encode
			if *format == "json" {
				enc = event.EncodeJSON
			}
			b, err := enc(ev)
			return kafka.Message{Key: []byte(ev.UserID), Value: b}, err
		}
	} else if *synthetic {
		g := loadgen.New(loadgen.Options{Users: *users, Items: *items, Clusters: *clusters, Seed: *seed})
		next = func() (kafka.Message, error) {
			ev := g.Next()
			enc := event.Encode
			if *format == "json" {
				enc = event.EncodeJSON
			}
			b, err := enc(ev)
			return kafka.Message{Key: []byte(ev.UserID), Value: b}, err
		}
	} else {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		line := 0
		next = func() (kafka.Message, error) {
			for sc.Scan() {
				line++
				b := []byte(strings.TrimSpace(sc.Text()))
				if len(b) == 0 {
					continue
				}
				ev, err := event.Decode(b, time.Now())
				if err != nil {
					fmt.Fprintf(os.Stderr, "recstream produce: line %d skipped: %v\n", line, err)
					continue
				}
				return kafka.Message{Key: []byte(ev.UserID), Value: append([]byte(nil), b...)}, nil
			}
			if err := sc.Err(); err != nil {
				return kafka.Message{}, err
			}
			return kafka.Message{}, io.EOF
		}
	}
	return produceLoop(ctx, w, next, *rate, *count)
}

// produceLoop publishes in batches, paced to rate events/s when rate > 0.
func produceLoop(ctx context.Context, w *kafka.Writer, next func() (kafka.Message, error), rate float64, count int) error {
	start := time.Now()
	sent := 0
	batch := make([]kafka.Message, 0, 500)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("publishing: %w", err)
		}
		sent += len(batch)
		batch = batch[:0]
		return nil
	}
	for count == 0 || sent+len(batch) < count {
		if ctx.Err() != nil {
			break
		}
		m, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		batch = append(batch, m)
		limit := cap(batch)
		if rate > 0 {
			limit = max(1, min(cap(batch), int(rate/20)))
		}
		if len(batch) >= limit {
			if err := flush(); err != nil {
				return err
			}
			if rate > 0 {
				due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
				if d := time.Until(due); d > 0 && !retry.Sleep(ctx, d) {
					break
				}
			}
		}
	}
	if err := flush(); err != nil && ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "recstream produce: %d events in %s\n", sent, time.Since(start).Round(time.Millisecond))
	return nil
}

// produceCatalog publishes item records keyed by item_id.
func produceCatalog(brokers, topic, file string, items, clusters int, seed uint64) error {
	ctx, stop := signalContext()
	defer stop()
	var msgs []kafka.Message
	if file == "" {
		g := loadgen.New(loadgen.Options{Items: items, Clusters: clusters, Seed: seed})
		for _, it := range g.Catalog(time.Now()) {
			msgs = append(msgs, kafka.Message{Key: []byte(it.ID), Value: catalog.Encode(it)})
		}
	} else {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		line := 0
		for sc.Scan() {
			line++
			b := []byte(strings.TrimSpace(sc.Text()))
			if len(b) == 0 {
				continue
			}
			it, err := catalog.Decode(nil, b, time.Now())
			if err != nil {
				fmt.Fprintf(os.Stderr, "recstream produce: %s line %d skipped: %v\n", file, line, err)
				continue
			}
			msgs = append(msgs, kafka.Message{Key: []byte(it.ID), Value: append([]byte(nil), b...)})
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	w := consumer.Kafka{Brokers: strings.Split(brokers, ",")}.NewWriter()
	w.Topic = topic
	defer w.Close()
	for i := 0; i < len(msgs); i += 500 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+500, len(msgs))]...); err != nil {
			return fmt.Errorf("publishing catalog: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "recstream produce: %d catalog records to %s\n", len(msgs), topic)
	return nil
}
