package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/eval"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/processor"
)

// newFullPath returns the --full-path ingest of a replay: the events are
// published (key user_id, JSON in the event schema) to a fresh topic of an
// embedded broker, and the real processor (processor.New and Run, roles
// ingest and, with ingest.item_owner, items) consumes them into Redis
// until its committed offsets reach the high watermarks, the item owners'
// too.
func newFullPath(e *evalEnv, c config.Config) func(ctx context.Context, prefix string, epoch time.Time, events []eval.Interaction) error {
	return func(ctx context.Context, prefix string, epoch time.Time, events []eval.Interaction) error {
		if e.kafka == nil {
			k, err := embedded.StartKafka(e.f.partitions)
			if err != nil {
				return err
			}
			e.kafka = k
			e.closes = append(e.closes, k.Close)
		}
		// The production decoder rejects events before event.MinTS (2000):
		// older logs are shifted forward, epoch included, which leaves
		// every decay factor (a function of ts − epoch) unchanged.
		var shift int64
		if len(events) > 0 && events[0].TS < event.MinTS {
			shift = event.MinTS - events[0].TS
		}
		epoch = epoch.Add(time.Duration(shift) * time.Millisecond)
		e.n++
		cfg := c
		cfg.Run.Roles = []string{config.RoleIngest}
		if cfg.Ingest.ItemOwner {
			cfg.Run.Roles = append(cfg.Run.Roles, config.RoleItems)
		}
		cfg.Admin.Listen = ""
		cfg.Redis.KeyPrefix = prefix
		cfg.Model.Epoch = epoch.UTC().Format(time.RFC3339Nano)
		cfg.Kafka.Brokers = e.kafka.Brokers
		cfg.Kafka.CreateTopics = true
		cfg.Kafka.Partitions = e.f.partitions
		sfx := fmt.Sprintf("eval-%d", e.n)
		cfg.Kafka.EventsTopic = sfx + ".events"
		cfg.Kafka.DLQTopic = sfx + ".dlq"
		cfg.Kafka.RefreshTopic = sfx + ".refresh"
		cfg.Kafka.ItemsTopic = sfx + ".items"
		cfg.Kafka.IngestGroup = sfx + ".ingest"
		cfg.Kafka.ItemUpdatesTopic = sfx + ".item-updates"
		cfg.Kafka.ItemOwnerGroup = sfx + ".items"
		cfg.Kafka.SessionTimeout = time.Second
		cfg.Kafka.RebalanceTimeout = time.Second
		k := processor.KafkaOptions(cfg)
		if err := k.EnsureTopics(ctx, cfg.Kafka.Partitions, cfg.Topics()...); err != nil {
			return err
		}
		w := k.NewWriter()
		w.Topic = cfg.Kafka.EventsTopic
		msgs := make([]kafka.Message, 0, 1000)
		flush := func() error {
			if len(msgs) == 0 {
				return nil
			}
			err := w.WriteMessages(ctx, msgs...)
			msgs = msgs[:0]
			return err
		}
		for _, it := range events {
			b, err := json.Marshal(map[string]any{"user_id": it.User, "item_id": it.Item, "type": it.Type, "ts": it.TS + shift})
			if err != nil {
				return err
			}
			msgs = append(msgs, kafka.Message{Key: []byte(it.User), Value: b})
			if len(msgs) == cap(msgs) {
				if err := flush(); err != nil {
					w.Close()
					return fmt.Errorf("publishing events: %w", err)
				}
			}
		}
		if err := flush(); err != nil {
			w.Close()
			return fmt.Errorf("publishing events: %w", err)
		}
		if err := w.Close(); err != nil {
			return err
		}
		p, err := processor.New(cfg, processor.Deps{})
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(rctx) }()
		werr := waitConsumed(rctx, e.kafka.Brokers, cfg.Kafka.EventsTopic, cfg.Kafka.IngestGroup, cfg.Kafka.Partitions, done)
		if werr == nil && cfg.Ingest.ItemOwner {
			// every repartition message is in the topic once the ingest
			// group committed the log
			werr = waitConsumed(rctx, e.kafka.Brokers, cfg.Kafka.ItemUpdatesTopic, cfg.Kafka.ItemOwnerGroup, cfg.Kafka.Partitions, done)
		}
		cancel()
		rerr := <-done
		if werr != nil {
			return werr
		}
		if rerr != nil && !errors.Is(rerr, context.Canceled) {
			return rerr
		}
		return nil
	}
}

// waitConsumed polls until group has committed every partition of topic up
// to its high watermark.
func waitConsumed(ctx context.Context, brokers []string, topic, group string, partitions int, done chan error) error {
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	ps := make([]int, partitions)
	var reqs []kafka.OffsetRequest
	for i := range ps {
		ps[i] = i
		reqs = append(reqs, kafka.LastOffsetOf(i))
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return fmt.Errorf("listing offsets: %w", err)
	}
	high := map[int]int64{}
	for _, po := range lo.Topics[topic] {
		high[po.Partition] = po.LastOffset
	}
	for {
		res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
		if err == nil && res.Error == nil {
			ok := true
			for _, p := range res.Topics[topic] {
				if high[p.Partition] > 0 && p.CommittedOffset < high[p.Partition] {
					ok = false
				}
			}
			if ok && len(res.Topics[topic]) == partitions {
				return nil
			}
		}
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("processor stopped before consuming the log: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
