package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/store"
)

// Applier applies batches of valid events to the state store: the user
// half of each batch at once, the item half collected per partition and
// written together (store.Store).
type Applier interface {
	ApplyUsers(ctx context.Context, partition int32, ops []store.Op, w *store.ItemWork) (store.ApplyResult, error)
	ApplyItems(ctx context.Context, w *store.ItemWork) error
}

// IngestOptions configures the ingest consumer.
type IngestOptions struct {
	Kafka          Kafka
	Topic          string // events
	DLQTopic       string
	RefreshTopic   string
	Group          string
	BatchMaxEvents int
	BatchMaxWait   time.Duration
	// ItemWindow is how long the item half of applied batches (item state
	// and trending) is collected before it is written; offsets are
	// committed after that write. 0 writes it with every batch.
	ItemWindow time.Duration
	// ItemWindowEvents writes the collected item half early once it holds
	// this many events (all partitions).
	ItemWindowEvents int
	// ItemTopic, when set, is the repartition topic (ingest.item_owner):
	// each batch's item contributions are sent there, keyed by item, for
	// the item owner, and published with the refresh requests (the
	// experiment counters are still written with the item window).
	ItemTopic       string
	ShutdownTimeout time.Duration // how long an in-flight batch may take after shutdown starts
	Decoder         event.Decoder
	Metrics         *Metrics
	Logger          *slog.Logger

	// UserID maps each valid event's user id before anything is stored or
	// published (pseudonymization); nil keeps ids as sent.
	UserID func(string) string

	// Assigned, when set, is called with the partitions of Topic the
	// group assigns this consumer, ascending, at the start of each group
	// generation (store.Store.AssignedPartitions drops the users' copies
	// of the others). Batches fetched before may still be applied after
	// it.
	Assigned func(partitions []int)
}

// Ingest consumes events, applies them to the store in micro-batches, sends
// invalid ones to the DLQ, publishes refresh requests and commits offsets
// only after all of that is acknowledged.
type Ingest struct {
	opt IngestOptions
	st  Applier
	health
	lag *lagTracker
}

// NewIngest returns an ingest consumer writing to st. Its sizes and waits
// have no defaults here (config holds them): a zero is an error.
func NewIngest(opt IngestOptions, st Applier) (*Ingest, error) {
	if err := positive("ingest",
		"BatchMaxEvents", opt.BatchMaxEvents, "ItemWindowEvents", opt.ItemWindowEvents,
		"BatchMaxWait", opt.BatchMaxWait, "ShutdownTimeout", opt.ShutdownTimeout); err != nil {
		return nil, err
	}
	if opt.ItemWindow < 0 {
		return nil, fmt.Errorf("consumer: ingest: ItemWindow %v: want >= 0", opt.ItemWindow)
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Ingest{opt: opt, st: st, lag: newLagTracker(opt.Group, opt.Topic, opt.Metrics),
		health: health{role: "ingest", m: opt.Metrics, log: opt.Logger, errors: opt.Metrics.StoreErrors}}, nil
}

// Lag returns the per-partition lag as last measured.
func (c *Ingest) Lag() map[int]PartitionLag { return c.lag.snapshot() }

// Run consumes until ctx is cancelled. A batch in flight when ctx ends is
// finished and committed if it completes within ShutdownTimeout.
func (c *Ingest) Run(ctx context.Context) error {
	rc := c.opt.Kafka.readerConfig(c.opt.Topic, c.opt.Group, 4*c.opt.BatchMaxEvents)
	if c.opt.Assigned != nil {
		rc.Logger = assignmentLogger(c.opt.Topic, c.opt.Assigned)
	}
	r := kafka.NewReader(rc)
	defer c.opt.Kafka.closeReader(r, "kafka_group", c.opt.Group)
	w := c.opt.Kafka.NewWriter()
	defer w.Close()
	pub := &publisher{}
	defer pub.wait() // after procCtx is cancelled, before the writer closes

	procCtx, cancelProc := graceContext(ctx, c.opt.ShutdownTimeout)
	defer cancelProc()

	// The repartition topic's partitions: item updates are grouped by the
	// partition their item's key goes to.
	itemParts := 0
	if c.opt.ItemTopic != "" {
		err := c.retry(procCtx, "reading the partitions of "+c.opt.ItemTopic, func() error {
			var err error
			itemParts, err = c.opt.Kafka.PartitionCount(procCtx, c.opt.ItemTopic)
			return err
		})
		if err != nil {
			return nil
		}
	}
	c.start()
	cm := &committer{group: c.opt.Group, m: c.opt.Metrics, log: c.opt.Logger, lag: c.lag}
	bt := startBatches(ctx, r, c.opt.BatchMaxEvents, c.opt.BatchMaxWait, c.opt.Logger, "events")
	defer bt.stop()
	iw := &itemWindow{work: make(map[int]*store.ItemWork)}
	// writeItems writes the collected item half, then commits the batches
	// it belongs to; it reports false when a shutdown ran out of time.
	var pubErr error // a publish's error other than a shutdown's
	writeItems := func() bool {
		n := iw.events()
		if err := c.retry(procCtx, "writing item state", func() error { return iw.write(procCtx, c.st) }); err != nil {
			return false
		}
		c.opt.Metrics.ItemEvents.Add(float64(n))
		if err := pub.wait(); err != nil {
			pubErr = err
			return false
		}
		cm.commit(procCtx, r, iw.held)
		iw.held = nil
		return true
	}
	for {
		wait := cm.retryAfter()
		if iw.events() > 0 {
			due := max(time.Until(iw.since().Add(c.opt.ItemWindow)), time.Millisecond)
			if wait == 0 || due < wait {
				wait = due
			}
		}
		msgs, ok := bt.next(ctx, wait)
		if !ok {
			writeItems()
			return ended(pubErr)
		}
		if msgs == nil {
			if iw.events() > 0 && time.Since(iw.since()) >= c.opt.ItemWindow {
				if !writeItems() {
					return ended(pubErr)
				}
			} else {
				cm.retry(procCtx, r)
			}
			continue
		}
		out, ndlq, err := c.process(procCtx, msgs, iw)
		if err != nil {
			// Only a shutdown that ran out of time ends processing.
			return nil
		}
		if err := pub.wait(); err != nil {
			return ended(err)
		}
		var updates []store.ItemUpdate
		if c.opt.ItemTopic != "" {
			updates = takeItemUpdates(iw)
		}
		if len(out) > 0 || len(updates) > 0 {
			// The item updates are bundled and encoded while the loop
			// applies the next batch.
			pub.start(func() error {
				ims, err := c.itemMessages(updates, itemParts)
				if err != nil {
					return err
				}
				return c.publish(procCtx, w, append(out, ims...), ndlq, len(ims))
			})
		}
		for _, m := range LastPerPartition(msgs) {
			// Until the commit only the position (and what the lag
			// tracker reads) is kept, not the payload.
			m.Key, m.Value, m.Headers = nil, nil, nil
			iw.held = append(iw.held, m)
		}
		if ctx.Err() != nil || iw.events() >= c.opt.ItemWindowEvents || time.Since(iw.since()) >= c.opt.ItemWindow {
			if !writeItems() {
				return ended(pubErr)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// itemWindow is the item half of the batches applied since it was last
// written, per partition, and the batches' last messages, committed once
// it is written.
type itemWindow struct {
	work map[int]*store.ItemWork
	held []kafka.Message
}

func (iw *itemWindow) of(p int) *store.ItemWork {
	w := iw.work[p]
	if w == nil {
		w = store.NewItemWork(int32(p))
		iw.work[p] = w
	}
	return w
}

func (iw *itemWindow) events() int {
	n := 0
	for _, w := range iw.work {
		n += w.Events()
	}
	return n
}

// since is when the oldest event still held arrived.
func (iw *itemWindow) since() time.Time {
	var t time.Time
	for _, w := range iw.work {
		if s := w.Since(); !s.IsZero() && (t.IsZero() || s.Before(t)) {
			t = s
		}
	}
	return t
}

// write writes every partition's item half, concurrently.
func (iw *itemWindow) write(ctx context.Context, st Applier) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range iw.work {
		if w.Events() > 0 {
			g.Go(func() error { return st.ApplyItems(gctx, w) })
		}
	}
	return g.Wait()
}

// process applies a batch's user half and collects its item half in iw,
// retrying with backoff until it succeeds or ctx ends. Retrying is safe:
// every write is fenced, and iw does not take an offset twice. It returns
// the batch's refresh requests and dead letters (ndlq of them), for
// publish.
func (c *Ingest) process(ctx context.Context, msgs []kafka.Message, iw *itemWindow) (out []kafka.Message, ndlq int, err error) {
	start := time.Now()
	err = c.retry(ctx, "applying batch", func() error {
		var err error
		out, ndlq, err = c.processOnce(ctx, msgs, iw)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	c.opt.Metrics.Batches.Inc()
	c.opt.Metrics.BatchSize.Observe(float64(len(msgs)))
	c.opt.Metrics.BatchDuration.Observe(time.Since(start).Seconds())
	return out, ndlq, nil
}

// publish sends one batch's refresh requests and dead letters, retrying
// with backoff until Kafka acknowledges them all or ctx ends. A retry may
// send some of them twice: a refresh request twice only rescores the user
// twice, and a dead letter carries its source offset.
func (c *Ingest) publish(ctx context.Context, w *kafka.Writer, out []kafka.Message, ndlq, nitems int) error {
	err := c.retry(ctx, "publishing refresh requests and dead letters", func() error { return w.WriteMessages(ctx, out...) })
	if err != nil {
		return err
	}
	c.opt.Metrics.DLQWrites.Add(float64(ndlq))
	c.opt.Metrics.ItemUpdates.WithLabelValues("sent").Add(float64(nitems))
	return nil
}

// takeItemUpdates takes the item half the batch added to iw out of it:
// one store.ItemUpdate per item and source partition, its contributions
// per source offset.
func takeItemUpdates(iw *itemWindow) []store.ItemUpdate {
	var us []store.ItemUpdate
	for _, p := range slices.Sorted(maps.Keys(iw.work)) {
		us = append(us, iw.work[p].TakeUpdates()...)
	}
	return us
}

// itemMessages returns the messages of the repartition topic holding
// updates: messages of the updates of the items of one of its partitions
// (of at most about itemBundleBytes), keyed by one of those items, so
// that the writer's key hash puts each message where each of its items'
// keys would go: the items' owner. Sent with the refresh requests, they
// are acknowledged by Kafka before the batch's offsets are committed.
func (c *Ingest) itemMessages(updates []store.ItemUpdate, parts int) ([]kafka.Message, error) {
	all := make([]int, parts)
	for i := range all {
		all[i] = i
	}
	var h kafka.Hash
	byPart := make(map[int][]store.ItemUpdate)
	for _, u := range updates {
		r := h.Balance(kafka.Message{Key: []byte(u.Item)}, all...)
		byPart[r] = append(byPart[r], u)
	}
	var out []kafka.Message
	for _, r := range slices.Sorted(maps.Keys(byPart)) {
		us := byPart[r]
		for len(us) > 0 {
			k, size := 0, 0
			for k < len(us) && (k == 0 || size < itemBundleBytes) {
				size += store.EncodedSize(&us[k])
				k++
			}
			b, err := store.EncodeItemUpdates(us[:k])
			if err != nil {
				return nil, err
			}
			out = append(out, kafka.Message{Topic: c.opt.ItemTopic, Key: []byte(us[0].Item), Value: b})
			us = us[k:]
		}
	}
	return out, nil
}

// ended is what Run returns after a publish ended with err: nil for a
// shutdown (the publish retries until it succeeds or its context ends),
// else err (an encoding error: a bug).
func ended(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// itemBundleBytes is about the most bytes of item updates one message
// of the repartition topic carries.
const itemBundleBytes = 256 << 10

// publisher runs one batch's publish while the ingest loop applies the
// next batch's user half, whose Redis round trips would otherwise wait for
// Kafka's acknowledgement (docs/benchmarks.md, 26). At most one publish is
// in flight: wait returns its result, and the loop calls it before the
// next publish starts and before any offset is committed, so an offset is
// still committed only after Kafka acknowledged what its batch published.
// Only the ingest loop calls start and wait.
type publisher struct{ done chan error }

func (p *publisher) start(f func() error) {
	ch := make(chan error, 1)
	p.done = ch
	go func() { ch <- f() }()
}

func (p *publisher) wait() error {
	if p.done == nil {
		return nil
	}
	err := <-p.done
	p.done = nil
	return err
}

func (c *Ingest) processOnce(ctx context.Context, msgs []kafka.Message, iw *itemWindow) ([]kafka.Message, int, error) {
	ops := make(map[int][]store.Op)
	var out []kafka.Message
	counts := make(map[event.Type]int)
	invalid := make(map[event.Reason]int)
	maxTS := make(map[int]int64)
	for _, m := range msgs {
		ev, err := c.opt.Decoder.Decode(m.Value, m.Time)
		if err != nil {
			reason := event.ReasonOf(err)
			invalid[reason]++
			out = append(out, DeadLetter(c.opt.DLQTopic, m, string(reason), err, c.opt.Decoder.MaxBytes))
			continue
		}
		if c.opt.UserID != nil {
			ev.UserID = c.opt.UserID(ev.UserID)
		}
		counts[ev.Type]++
		ops[m.Partition] = append(ops[m.Partition], store.Op{Offset: m.Offset, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS, Value: ev.Value, Shown: ev.Shown})
		if ev.TS > maxTS[m.Partition] {
			maxTS[m.Partition] = ev.TS
		}
	}

	parts := make([]int, 0, len(ops))
	for p := range ops {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	results := make([]store.ApplyResult, len(parts))
	work := make([]*store.ItemWork, len(parts))
	for i, p := range parts {
		work[i] = iw.of(p)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range parts {
		g.Go(func() error {
			res, err := c.st.ApplyUsers(gctx, int32(p), ops[p], work[i])
			results[i] = res
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	fenced := 0
	for i := range parts {
		fenced += results[i].Fenced
		users := make([]string, 0, len(results[i].Users))
		for u := range results[i].Users {
			users = append(users, u)
		}
		sort.Strings(users)
		for _, u := range users {
			out = append(out, kafka.Message{
				Topic: c.opt.RefreshTopic,
				Key:   []byte(u),
				Value: EncodeRefresh(RefreshRequest{User: u, TS: results[i].Users[u]}),
			})
		}
	}
	for t, n := range counts {
		c.opt.Metrics.Events.WithLabelValues(t.String()).Add(float64(n))
	}
	ndlq := 0
	for r, n := range invalid {
		c.opt.Metrics.Invalid.WithLabelValues(string(r)).Add(float64(n))
		ndlq += n
	}
	c.opt.Metrics.Fenced.Add(float64(fenced))
	for p, ts := range maxTS {
		c.opt.Metrics.LastEventTS.WithLabelValues(strconv.Itoa(p)).Set(float64(ts) / 1000)
	}
	return out, ndlq, nil
}

// DLQ headers.
const (
	HeaderReason    = "recstream-reason"
	HeaderError     = "recstream-error"
	HeaderTopic     = "recstream-source-topic"
	HeaderPartition = "recstream-source-partition"
	HeaderOffset    = "recstream-source-offset"
	// HeaderValueBytes is set when the value was cut to the decoder's
	// MaxBytes (a message the DLQ topic might refuse would block the
	// partition): the original length.
	HeaderValueBytes = "recstream-value-bytes"
)

// DeadLetter builds the dead-letter copy of m: its key, value (cut to
// maxBytes, default event.DefaultMaxBytes, with HeaderValueBytes then) and
// headers, plus the reason, the error and the source topic, partition and
// offset. The event and catalog consumers both use it.
func DeadLetter(topic string, m kafka.Message, reason string, err error, maxBytes int) kafka.Message {
	if maxBytes <= 0 {
		maxBytes = event.DefaultMaxBytes
	}
	headers := append([]kafka.Header(nil), m.Headers...)
	if len(m.Value) > maxBytes {
		headers = append(headers, kafka.Header{Key: HeaderValueBytes, Value: []byte(strconv.Itoa(len(m.Value)))})
		m.Value = m.Value[:maxBytes]
	}
	headers = append(headers,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderError, Value: []byte(truncate(err.Error(), 512))},
		kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: headers, Time: m.Time}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// PartitionLag is one partition's lag.
type PartitionLag struct {
	Messages int64
	Seconds  float64
	Updated  time.Time
}

type lagTracker struct {
	mu     sync.Mutex
	group  string
	topic  string
	m      *Metrics
	parts  map[int]PartitionLag
	active map[int]bool
}

func newLagTracker(group, topic string, m *Metrics) *lagTracker {
	m.initGroup(group) // one tracker per consuming group: its series exist from the start
	return &lagTracker{group: group, topic: topic, m: m, parts: make(map[int]PartitionLag), active: make(map[int]bool)}
}

// committed records lag from the batch's last message per partition: the
// high watermark it was fetched with minus the committed offset.
func (l *lagTracker) committed(msgs []kafka.Message) {
	last := make(map[int]kafka.Message)
	for _, m := range msgs {
		if p, ok := last[m.Partition]; !ok || m.Offset > p.Offset {
			last[m.Partition] = m
		}
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, m := range last {
		lag := m.HighWaterMark - (m.Offset + 1)
		if lag < 0 {
			lag = 0
		}
		secs := 0.0
		if lag > 0 && !m.Time.IsZero() {
			secs = now.Sub(m.Time).Seconds()
		}
		l.parts[p] = PartitionLag{Messages: lag, Seconds: secs, Updated: now}
		ps := strconv.Itoa(p)
		l.m.Lag.WithLabelValues(l.group, l.topic, ps).Set(float64(lag))
		if lag == 0 {
			// With a backlog, the LagMonitor sets the exact value (the age of
			// the oldest unconsumed message, which this batch does not know).
			l.m.LagSeconds.WithLabelValues(l.group, l.topic, ps).Set(0)
		}
		l.active[p] = true
	}
	// Partitions not seen for a while are considered no longer assigned.
	// Rebalances are counted by the LagMonitor from the group's assignment.
	for p, pl := range l.parts {
		if now.Sub(pl.Updated) > time.Minute && l.active[p] {
			delete(l.active, p)
		}
	}
	l.m.Partitions.WithLabelValues(l.group).Set(float64(len(l.active)))
}

func (l *lagTracker) snapshot() map[int]PartitionLag {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int]PartitionLag, len(l.parts))
	for p, v := range l.parts {
		out[p] = v
	}
	return out
}
