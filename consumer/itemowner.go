package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/store"
)

// ItemState is what the item-owner consumer needs of the item owner
// (store.ItemOwner): take updates into memory, write them, drop what is
// no longer needed.
type ItemState interface {
	Add(partition int, u store.ItemUpdate)
	Flush(ctx context.Context) error
	Assigned(partitions []int)
	Sweep()
	TakeFirstUsers() []string
}

var _ ItemState = (*store.ItemOwner)(nil)

// itemNamesKept bounds the item names an item owner interns while it
// decodes the repartition topic (store.ItemNames): about 2 MB.
const itemNamesKept = 1 << 15

// ItemOwnerOptions configures the item-owner consumer.
type ItemOwnerOptions struct {
	Kafka Kafka
	Topic string // the repartition topic (kafka.item_updates_topic)
	Group string
	// RefreshTopic receives a refresh request for each user whose events
	// reached items a flush wrote for the first time (their lists were
	// computed before those items existed); empty: none.
	RefreshTopic string
	// BatchMax (messages) and BatchWait bound a fetched batch of
	// updates; the reader queues 4·BatchMax messages.
	BatchMax  int
	BatchWait time.Duration
	// FlushInterval is how long updates are kept in memory before the
	// changed items are written (and the updates' offsets committed).
	FlushInterval   time.Duration
	ShutdownTimeout time.Duration
	Metrics         *Metrics
	Logger          *slog.Logger
}

// ItemOwner consumes the repartition topic: each batch of item updates is
// taken into the item state in memory; every FlushInterval the changed
// items are written, and only then the updates' offsets committed, so a
// crash loses nothing the next owner does not read again. The reader,
// batches, committer and retry are the ingest consumer's.
type ItemOwner struct {
	opt ItemOwnerOptions
	st  ItemState
	health
	lag *lagTracker
}

// NewItemOwner returns an item-owner consumer writing through st.
func NewItemOwner(opt ItemOwnerOptions, st ItemState) (*ItemOwner, error) {
	if err := positive("item owner", "BatchMax", opt.BatchMax, "BatchWait", opt.BatchWait,
		"FlushInterval", opt.FlushInterval, "ShutdownTimeout", opt.ShutdownTimeout); err != nil {
		return nil, err
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &ItemOwner{opt: opt, st: st, lag: newLagTracker(opt.Group, opt.Topic, opt.Metrics),
		health: health{role: "items", m: opt.Metrics, log: opt.Logger, errors: opt.Metrics.StoreErrors}}, nil
}

// Run consumes until ctx is cancelled; what was taken in is written and
// committed if that completes within ShutdownTimeout.
func (c *ItemOwner) Run(ctx context.Context) error {
	rc := c.opt.Kafka.readerConfig(c.opt.Topic, c.opt.Group, 4*c.opt.BatchMax)
	rc.Logger = assignmentLogger(c.opt.Topic, c.st.Assigned)
	r := kafka.NewReader(rc)
	defer c.opt.Kafka.closeReader(r, "kafka_group", c.opt.Group)
	procCtx, cancelProc := graceContext(ctx, c.opt.ShutdownTimeout)
	defer cancelProc()

	var w *kafka.Writer
	if c.opt.RefreshTopic != "" {
		w = c.opt.Kafka.NewWriter()
		w.Topic = c.opt.RefreshTopic
		defer w.Close()
	}

	c.start()
	cm := &committer{group: c.opt.Group, m: c.opt.Metrics, log: c.opt.Logger, lag: c.lag}
	bt := startBatches(ctx, r, c.opt.BatchMax, c.opt.BatchWait, c.opt.Logger, "item updates")
	defer bt.stop()
	taken := 0 // messages taken in since the last flush
	names := store.NewItemNames(itemNamesKept)
	handle := func(msgs []kafka.Message) error {
		taken += len(msgs)
		for _, m := range msgs {
			us, err := store.DecodeItemUpdatesWith(m.Value, names)
			if err != nil {
				// Only a bug makes one: the ingest role wrote it.
				c.opt.Metrics.ItemUpdates.WithLabelValues("invalid").Inc()
				c.opt.Logger.Warn("skipping an invalid item update message", "partition", m.Partition, "offset", m.Offset, "err", err)
				continue
			}
			for _, u := range us {
				c.st.Add(m.Partition, u)
			}
		}
		return nil
	}
	flush := func() error {
		start := time.Now()
		err := c.retry(procCtx, "writing item state", func() error { return c.st.Flush(procCtx) })
		if err != nil {
			return err
		}
		c.opt.Metrics.ItemFlush.Observe(time.Since(start).Seconds())
		c.opt.Metrics.ItemUpdates.WithLabelValues("written").Add(float64(taken))
		taken = 0
		c.st.Sweep()
		firsts := c.st.TakeFirstUsers()
		if w == nil || len(firsts) == 0 {
			return nil
		}
		// Without an event time: the user's list already reflects the
		// user's events (its freshness was observed then); this one only
		// adds the items.
		msgs := make([]kafka.Message, 0, len(firsts))
		for _, u := range firsts {
			msgs = append(msgs, kafka.Message{Key: []byte(u), Value: EncodeRefresh(RefreshRequest{User: u})})
		}
		// Before the commit. A crash between the flush and here loses
		// them (the items, written, are not new to the next owner): those
		// users' lists then wait for their next event.
		return c.retry(procCtx, "publishing refresh requests", func() error { return w.WriteMessages(procCtx, msgs...) })
	}
	consumeWindowed(ctx, procCtx, r, bt, cm, c.opt.FlushInterval, handle, flush)
	return nil
}

// Lag returns the per-partition lag as last measured.
func (c *ItemOwner) Lag() map[int]PartitionLag { return c.lag.snapshot() }
