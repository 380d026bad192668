package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

// flakyCatalog passes catalog writes on to a real store, failing them
// while fail is set.
type flakyCatalog struct {
	*store.Store
	fail   atomic.Bool
	errors atomic.Int64
}

func (f *flakyCatalog) WriteCatalog(ctx context.Context, p int32, recs []store.CatalogRecord) ([]store.CatalogResult, error) {
	if f.fail.Load() {
		f.errors.Add(1)
		return nil, errOutage
	}
	return f.Store.WriteCatalog(ctx, p, recs)
}

// The catalog writer runs on the event consumers' mechanics: while the
// store fails it commits nothing and reports not ready; afterwards every
// record is stored and committed, an invalid record is dead-lettered, and
// an item withdrawn asks for its holders' lists to be rescored. The loader
// fills an index with the valid records and reports itself loaded.
func TestCatalogWriterRetriesAndCommitsAfterStoring(t *testing.T) {
	ctx := context.Background()
	const items, dlq, refresh, group = "items", "events.dlq", "refresh", "catalog"
	kf := kafkatest.Start(t, 2, items, dlq, refresh)
	rdb := redistest.Start(t).Client(t)
	st := &flakyCatalog{Store: store.New(rdb, storeOptions("c:"))}
	st.fail.Store(true)
	now := time.Now()
	if err := st.IndexListItems(ctx, []store.List{{User: "holder", GeneratedAt: now.UnixMilli(), Items: []store.ListItem{{Item: "i2"}}}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	cm := consumer.NewCatalogMetrics(reg)
	w, err := consumer.NewCatalogWriter(consumer.CatalogWriterOptions{
		Kafka: consumer.Kafka{Brokers: kf.Brokers, MaxWait: 50 * time.Millisecond},
		Topic: items, Group: group, DLQTopic: dlq, RefreshTopic: refresh, ListTTL: time.Hour,
		BatchMax: 100, BatchWait: 10 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		Metrics: m, CatalogMetrics: cm,
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	idx := catalog.NewIndex()
	loader := consumer.NewCatalogLoader(consumer.CatalogLoaderOptions{
		Kafka: consumer.Kafka{Brokers: kf.Brokers, MaxWait: 50 * time.Millisecond}, Topic: items, Metrics: cm,
	}, idx)

	kf.Produce(t, items,
		kafka.Message{Key: []byte("i1"), Value: []byte(`{"item_id":"i1","category":"a/b","available":true}`)},
		kafka.Message{Key: []byte("i2"), Value: []byte(`{"item_id":"i2","category":"a/c","available":true}`)},
		kafka.Message{Key: []byte("i3"), Value: []byte(`{"item_id":"i3","price":-1}`)},
		kafka.Message{Key: []byte("i2"), Value: []byte(`{"item_id":"i2","category":"a/c","available":false}`)},
	)
	// Produced before the consumers start: the broker answers the producer
	// without a group join in flight.
	run(t, "catalog", w.Run, loader.Run)

	waitFor(t, "catalog write retries", func() bool { return st.errors.Load() >= 3 })
	nothingCommitted(t, kf, group, items, "store failing")
	if w.Ready() {
		t.Fatal("catalog writer reports ready while the store fails")
	}
	st.fail.Store(false)
	waitCommitted(t, kf, group, items)
	if !w.Ready() {
		t.Fatal("catalog writer not ready after the store recovered")
	}
	un, err := st.Unavailable(ctx, []string{"i1", "i2"})
	if err != nil || !un["i2"] || un["i1"] {
		t.Fatalf("stored unavailability %v, %v; want i2 only", un, err)
	}
	d := kf.ReadAll(t, dlq, 30*time.Second)
	if len(d) != 1 || string(d[0].Key) != "i3" {
		t.Fatalf("dead letters %v, want i3's record", d)
	}
	var asked []string
	for _, msg := range kf.ReadAll(t, refresh, 30*time.Second) {
		r, err := consumer.DecodeRefresh(msg.Value)
		if err != nil {
			t.Fatal(err)
		}
		asked = append(asked, r.User)
	}
	if len(asked) == 0 || asked[0] != "holder" {
		t.Fatalf("refresh requests for %v, want holder", asked)
	}
	waitFor(t, "catalog loaded", loader.Loaded)
	waitFor(t, "index filled", func() bool { return idx.Len() == 2 && !idx.Available("i2") && idx.Available("i1") })
}
