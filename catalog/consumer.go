package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/store"
)

// Writer is what the catalog writer needs of the store.
type Writer interface {
	WriteCatalog(ctx context.Context, partition int32, recs []store.CatalogRecord) ([]store.CatalogResult, error)
	ListHolders(ctx context.Context, item string, since int64) ([]string, error)
}

// Metrics are the catalog's Prometheus metrics.
type Metrics struct {
	Records   *prometheus.CounterVec // by role (writer, index) and result (ok, invalid, fenced)
	Invalid   *prometheus.CounterVec // by reason
	Items     prometheus.Gauge       // items in this process's index
	Withdrawn prometheus.Counter     // items that became unavailable
	Refreshes prometheus.Counter     // refresh requests published for lists holding a withdrawn item
}

// NewMetrics registers the catalog metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_catalog_records_total", Help: "Catalog records consumed, by role (writer, index) and result (ok, invalid, fenced).",
		}, []string{"role", "result"}),
		Invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_catalog_invalid_total", Help: "Invalid catalog records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		Items: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recstream_catalog_items", Help: "Items in this process's in-memory catalog index.",
		}),
		Withdrawn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_catalog_withdrawn_total", Help: "Items that became unavailable.",
		}),
		Refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_catalog_refresh_requests_total", Help: "Refresh requests published for lists that held a withdrawn item.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Records, m.Invalid, m.Items, m.Withdrawn, m.Refreshes)
	}
	return m
}

// WriterOptions configures the catalog writer.
type WriterOptions struct {
	Kafka        consumer.Kafka
	Topic        string // items
	Group        string
	DLQTopic     string
	RefreshTopic string
	ListTTL      time.Duration // lists older than this are gone; their holders need no refresh
	BatchMax     int
	BatchWait    time.Duration
	Now          func() time.Time
	Metrics      *Metrics
	Logger       *slog.Logger
}

// CatalogWriter consumes the items topic in a consumer group, stores each record
// (fenced per partition), sends invalid records to the DLQ, publishes a
// refresh request for every user whose list may hold an item that became
// unavailable, and commits only after all of that is acknowledged.
type CatalogWriter struct {
	opt WriterOptions
	st  Writer
}

// NewWriter returns a catalog writer.
func NewWriter(opt WriterOptions, st Writer) *CatalogWriter {
	if opt.BatchMax <= 0 {
		opt.BatchMax = 1000
	}
	if opt.BatchWait <= 0 {
		opt.BatchWait = 20 * time.Millisecond
	}
	if opt.ListTTL <= 0 {
		opt.ListTTL = 7 * 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &CatalogWriter{opt: opt, st: st}
}

func (w *CatalogWriter) reader() *kafka.Reader {
	k := w.opt.Kafka
	st := k.SessionTimeout
	if st <= 0 {
		st = 10 * time.Second
	}
	mw := k.MaxWait
	if mw <= 0 {
		mw = 200 * time.Millisecond
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Brokers, GroupID: w.opt.Group, Topic: w.opt.Topic, Dialer: k.Dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: mw, ReadBatchTimeout: mw + time.Second,
		CommitInterval: 0, StartOffset: kafka.FirstOffset, SessionTimeout: st, RebalanceTimeout: st,
		HeartbeatInterval: st / 4, JoinGroupBackoff: 200 * time.Millisecond,
		ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
		ErrorLogger: k.ErrorLogger(w.opt.Group),
	})
}

// Run consumes until ctx ends.
func (w *CatalogWriter) Run(ctx context.Context) error {
	r := w.reader()
	defer r.Close()
	kw := w.opt.Kafka.NewWriter()
	defer kw.Close()
	for {
		first, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.opt.Logger.Warn("fetching catalog records", "err", err)
			if !sleep(ctx, 200*time.Millisecond) {
				return nil
			}
			continue
		}
		msgs := []kafka.Message{first}
		wctx, cancel := context.WithTimeout(ctx, w.opt.BatchWait)
		for len(msgs) < w.opt.BatchMax {
			m, err := r.FetchMessage(wctx)
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		cancel()
		backoff := 50 * time.Millisecond
		for {
			err := w.process(context.WithoutCancel(ctx), kw, msgs)
			if err == nil {
				break
			}
			w.opt.Logger.Warn("storing catalog batch failed; retrying", "err", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 2*time.Second)
		}
		if err := r.CommitMessages(context.WithoutCancel(ctx), consumer.LastPerPartition(msgs)...); err != nil {
			w.opt.Logger.Warn("committing catalog offsets; the batch will be replayed and fenced", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (w *CatalogWriter) process(ctx context.Context, kw *kafka.Writer, msgs []kafka.Message) error {
	byPart := make(map[int][]store.CatalogRecord)
	var out []kafka.Message
	invalid := map[Reason]int{}
	for _, m := range msgs {
		it, err := Decode(m.Key, m.Value, m.Time)
		if err != nil {
			reason := ReasonOf(err)
			invalid[reason]++
			out = append(out, consumer.DeadLetter(w.opt.DLQTopic, m, string(reason), err, MaxRecordBytes))
			continue
		}
		byPart[m.Partition] = append(byPart[m.Partition], store.CatalogRecord{
			Offset: m.Offset, Item: it.ID, Category: it.Category, Brand: it.Brand, Price: it.Price,
			Tags: it.Tags, Available: it.Available, CreatedAt: it.CreatedAt,
		})
	}
	parts := make([]int, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	since := w.opt.Now().Add(-w.opt.ListTTL).UnixMilli()
	now := w.opt.Now().UnixMilli()
	ok, fenced, withdrawn, refreshes := 0, 0, 0, 0
	queued := map[string]bool{}
	for _, p := range parts {
		res, err := w.st.WriteCatalog(ctx, int32(p), byPart[p])
		if err != nil {
			return err
		}
		for _, r := range res {
			if !r.Applied {
				fenced++
			} else {
				ok++
			}
			// A replayed record (fenced) still publishes its refreshes: the
			// earlier run may have crashed before publishing them.
			if r.NowAvail || (r.Applied && r.WasKnown && !r.WasAvail) {
				continue
			}
			withdrawn++
			users, err := w.st.ListHolders(ctx, r.Item, since)
			if err != nil {
				return err
			}
			for _, u := range users {
				if queued[u] {
					continue
				}
				queued[u] = true
				refreshes++
				out = append(out, kafka.Message{Topic: w.opt.RefreshTopic, Key: []byte(u),
					Value: consumer.EncodeRefresh(consumer.RefreshRequest{User: u, TS: now})})
			}
		}
	}
	if len(out) > 0 {
		if err := kw.WriteMessages(ctx, out...); err != nil {
			return fmt.Errorf("publishing catalog refreshes and dead letters: %w", err)
		}
	}
	m := w.opt.Metrics
	m.Records.WithLabelValues("writer", "ok").Add(float64(ok))
	m.Records.WithLabelValues("writer", "fenced").Add(float64(fenced))
	for r, n := range invalid {
		m.Records.WithLabelValues("writer", "invalid").Add(float64(n))
		m.Invalid.WithLabelValues(string(r)).Add(float64(n))
	}
	m.Withdrawn.Add(float64(withdrawn))
	m.Refreshes.Add(float64(refreshes))
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// LoaderOptions configures the index loader.
type LoaderOptions struct {
	Kafka   consumer.Kafka
	Topic   string
	Metrics *Metrics
	Logger  *slog.Logger
}

// Loader keeps an Index current: it reads every partition of the items
// topic from the beginning, without a consumer group (every scoring
// process holds the whole catalog), and then follows new records.
// Invalid records are skipped here (the writer sends them to the DLQ).
type Loader struct {
	opt    LoaderOptions
	idx    *Index
	loaded atomic.Bool
}

// NewLoader returns a loader filling idx.
func NewLoader(opt LoaderOptions, idx *Index) *Loader {
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Loader{opt: opt, idx: idx}
}

// Index returns the index the loader fills.
func (l *Loader) Index() *Index { return l.idx }

// Loaded reports whether the loader has read every partition up to the end
// it saw at start.
func (l *Loader) Loaded() bool { return l.loaded.Load() }

// Run reads until ctx ends.
func (l *Loader) Run(ctx context.Context) error {
	var parts []kafka.Partition
	for {
		d := l.opt.Kafka.Dialer
		if d == nil {
			d = &kafka.Dialer{Timeout: 10 * time.Second}
		}
		var err error
		for _, b := range l.opt.Kafka.Brokers {
			if parts, err = d.LookupPartitions(ctx, "tcp", b, l.opt.Topic); err == nil {
				break
			}
		}
		if err == nil && len(parts) > 0 {
			break
		}
		l.opt.Logger.Warn("looking up catalog partitions", "topic", l.opt.Topic, "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
	var wg sync.WaitGroup
	var pending atomic.Int64
	pending.Store(int64(len(parts)))
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.follow(ctx, p.ID, &pending)
		}()
	}
	wg.Wait()
	return nil
}

func (l *Loader) follow(ctx context.Context, partition int, pending *atomic.Int64) {
	k := l.opt.Kafka
	mw := k.MaxWait
	if mw <= 0 {
		mw = 200 * time.Millisecond
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Brokers, Topic: l.opt.Topic, Partition: partition, Dialer: k.Dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: mw, ReadBatchTimeout: mw + time.Second,
		StartOffset: kafka.FirstOffset, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
		ErrorLogger: k.ErrorLogger(l.opt.Topic),
	})
	defer r.Close()
	done := false
	markDone := func() {
		if !done {
			done = true
			if pending.Add(-1) == 0 {
				l.loaded.Store(true)
				l.opt.Logger.Info("catalog loaded", "items", l.idx.Len())
			}
		}
	}
	// An empty partition is loaded at once.
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if hw, err := r.ReadLag(hctx); err == nil && hw == 0 {
		markDone()
	}
	cancel()
	for {
		m, err := r.ReadMessage(ctx) // no group: nothing is committed
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.opt.Logger.Warn("reading catalog", "partition", partition, "err", err)
			if !sleep(ctx, 200*time.Millisecond) {
				return
			}
			continue
		}
		it, err := Decode(m.Key, m.Value, m.Time)
		if err != nil {
			l.opt.Metrics.Records.WithLabelValues("index", "invalid").Inc()
		} else {
			l.idx.Put(it)
			l.opt.Metrics.Records.WithLabelValues("index", "ok").Inc()
			l.opt.Metrics.Items.Set(float64(l.idx.Len()))
		}
		if m.Offset+1 >= m.HighWaterMark {
			markDone()
		}
	}
}
