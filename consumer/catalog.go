package consumer

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

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/internal/retry"
	"github.com/recstream/recstream/store"
)

// CatalogStore is what the catalog writer needs of the store.
type CatalogStore interface {
	WriteCatalog(ctx context.Context, partition int32, recs []store.CatalogRecord) ([]store.CatalogResult, error)
	ListHolders(ctx context.Context, item string, since int64) ([]string, error)
}

// CatalogMetrics are the catalog consumers' Prometheus metrics.
type CatalogMetrics struct {
	Records   *prometheus.CounterVec // by role (writer, index) and result (ok, invalid, fenced)
	Invalid   *prometheus.CounterVec // by reason
	Items     prometheus.Gauge       // items in this process's index
	Withdrawn prometheus.Counter     // items that became unavailable
	Refreshes prometheus.Counter     // refresh requests published for lists holding a withdrawn item
}

// NewCatalogMetrics registers the catalog metrics on reg (nil: not
// registered).
func NewCatalogMetrics(reg prometheus.Registerer) *CatalogMetrics {
	m := &CatalogMetrics{
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

// CatalogWriterOptions configures the catalog writer.
type CatalogWriterOptions struct {
	Kafka           Kafka
	Topic           string // items
	Group           string
	DLQTopic        string
	RefreshTopic    string
	ListTTL         time.Duration // lists older than this are gone; their holders need no refresh
	BatchMax        int
	BatchWait       time.Duration
	ShutdownTimeout time.Duration // how long an in-flight batch may take after shutdown starts
	Now             func() time.Time
	Metrics         *Metrics // commits, lag and readiness (role catalog)
	CatalogMetrics  *CatalogMetrics
	Logger          *slog.Logger
}

// CatalogWriter consumes the items topic in a consumer group, stores each
// record (fenced per partition), sends invalid records to the DLQ,
// publishes a refresh request for every user whose list may hold an item
// that became unavailable, and commits only after all of that is
// acknowledged: the ingest consumer's batches, retry and committer.
type CatalogWriter struct {
	opt CatalogWriterOptions
	st  CatalogStore
	health
	lag *lagTracker
}

// NewCatalogWriter returns a catalog writer. Its sizes and waits have no
// defaults here (config holds them): a zero is an error.
func NewCatalogWriter(opt CatalogWriterOptions, st CatalogStore) (*CatalogWriter, error) {
	if err := positive("catalog writer", "BatchMax", opt.BatchMax, "BatchWait", opt.BatchWait,
		"ListTTL", opt.ListTTL, "ShutdownTimeout", opt.ShutdownTimeout); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.CatalogMetrics == nil {
		opt.CatalogMetrics = NewCatalogMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &CatalogWriter{opt: opt, st: st, lag: newLagTracker(opt.Group, opt.Topic, opt.Metrics),
		health: health{role: "catalog", m: opt.Metrics, log: opt.Logger}}, nil
}

// Run consumes until ctx ends. A batch in flight when ctx ends is finished
// and committed if it completes within ShutdownTimeout.
func (w *CatalogWriter) Run(ctx context.Context) error {
	r := w.opt.Kafka.reader(w.opt.Topic, w.opt.Group, 4*w.opt.BatchMax)
	defer w.opt.Kafka.closeReader(r, "kafka_group", w.opt.Group)
	kw := w.opt.Kafka.NewWriter()
	defer kw.Close()
	procCtx, cancelProc := graceContext(ctx, w.opt.ShutdownTimeout)
	defer cancelProc()

	w.start()
	cm := &committer{group: w.opt.Group, m: w.opt.Metrics, log: w.opt.Logger, lag: w.lag}
	bt := startBatches(ctx, r, w.opt.BatchMax, w.opt.BatchWait, w.opt.Logger, "catalog records")
	defer bt.stop()
	consume(ctx, procCtx, r, bt, cm, func(msgs []kafka.Message) error {
		return w.retry(procCtx, "storing catalog batch", func() error { return w.process(procCtx, kw, msgs) })
	})
	return nil
}

func (w *CatalogWriter) process(ctx context.Context, kw *kafka.Writer, msgs []kafka.Message) error {
	byPart := make(map[int][]store.CatalogRecord)
	var out []kafka.Message
	invalid := map[catalog.Reason]int{}
	for _, m := range msgs {
		it, err := catalog.Decode(m.Key, m.Value, m.Time)
		if err != nil {
			reason := catalog.ReasonOf(err)
			invalid[reason]++
			out = append(out, DeadLetter(w.opt.DLQTopic, m, string(reason), err, catalog.MaxRecordBytes))
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
					Value: EncodeRefresh(RefreshRequest{User: u, TS: now})})
			}
		}
	}
	if len(out) > 0 {
		if err := kw.WriteMessages(ctx, out...); err != nil {
			return fmt.Errorf("publishing catalog refreshes and dead letters: %w", err)
		}
	}
	m := w.opt.CatalogMetrics
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

// CatalogLoaderOptions configures the catalog index loader.
type CatalogLoaderOptions struct {
	Kafka   Kafka
	Topic   string
	Metrics *CatalogMetrics
	Logger  *slog.Logger
}

// CatalogLoader keeps a catalog.Index current: it reads every partition of
// the items topic from the beginning, without a consumer group (every
// scoring process holds the whole catalog), and then follows new records.
// Invalid records are skipped here (the writer sends them to the DLQ).
type CatalogLoader struct {
	opt    CatalogLoaderOptions
	idx    *catalog.Index
	loaded atomic.Bool
}

// NewCatalogLoader returns a loader filling idx.
func NewCatalogLoader(opt CatalogLoaderOptions, idx *catalog.Index) *CatalogLoader {
	if opt.Metrics == nil {
		opt.Metrics = NewCatalogMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &CatalogLoader{opt: opt, idx: idx}
}

// Index returns the index the loader fills.
func (l *CatalogLoader) Index() *catalog.Index { return l.idx }

// Loaded reports whether the loader has read every partition up to the end
// it saw at start: its readiness signal.
func (l *CatalogLoader) Loaded() bool { return l.loaded.Load() }

// Run reads until ctx ends.
func (l *CatalogLoader) Run(ctx context.Context) error {
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
		if !retry.Sleep(ctx, time.Second) {
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

func (l *CatalogLoader) follow(ctx context.Context, partition int, pending *atomic.Int64) {
	r := l.opt.Kafka.partitionReader(l.opt.Topic, partition, 100)
	defer l.opt.Kafka.closeReader(r, "kafka_topic", l.opt.Topic, "kafka_partition", partition)
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
	m := l.opt.Metrics
	for {
		msg, err := r.FetchMessage(ctx) // no group: nothing is committed
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.opt.Logger.Warn("reading catalog", "partition", partition, "err", err)
			if !retry.Sleep(ctx, fetchRetryWait) {
				return
			}
			continue
		}
		it, err := catalog.Decode(msg.Key, msg.Value, msg.Time)
		if err != nil {
			m.Records.WithLabelValues("index", "invalid").Inc()
		} else {
			l.idx.Put(it)
			m.Records.WithLabelValues("index", "ok").Inc()
			m.Items.Set(float64(l.idx.Len()))
		}
		if msg.Offset+1 >= msg.HighWaterMark {
			markDone()
		}
	}
}
