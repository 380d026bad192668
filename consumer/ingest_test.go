package consumer_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// flakyApplier passes batches on to a real store, failing every call of
// one half while that half is switched off.
type flakyApplier struct {
	st                     *store.Store
	failUsers, failItems   atomic.Bool
	userErrors, itemErrors atomic.Int64
	usersApplied           atomic.Int64
}

var errOutage = errors.New("store outage (injected)")

func (f *flakyApplier) ApplyUsers(ctx context.Context, p int32, ops []store.Op, w *store.ItemWork) (store.ApplyResult, error) {
	if f.failUsers.Load() {
		f.userErrors.Add(1)
		return store.ApplyResult{}, errOutage
	}
	res, err := f.st.ApplyUsers(ctx, p, ops, w)
	if err == nil {
		f.usersApplied.Add(int64(len(ops)))
	}
	return res, err
}

func (f *flakyApplier) ApplyItems(ctx context.Context, w *store.ItemWork) error {
	if f.failItems.Load() {
		f.itemErrors.Add(1)
		return errOutage
	}
	return f.st.ApplyItems(ctx, w)
}

func storeOptions(prefix string) store.Options {
	return testopts.Store(func(o *store.Options) {
		o.Prefix = prefix
		o.UserItemsCap = 1000
		o.UserLogCap = 1000
		o.ItemUsersCap = 1000
		o.CoocCap = 1000
		o.CoocHistory = 1000
		o.TrendingCap = 1000
	})
}

// The ingest consumer commits a batch only after both halves are stored:
// while the user half fails, and then while the item half fails, nothing is
// committed, the role is not ready and the batch is retried; once the store
// answers, everything is committed and the store holds exactly what one
// application of the log gives (a brute-force reference: the same events
// applied once, in offset order, to another prefix), each event once,
// however often the halves were retried. Invalid events go to the DLQ.
func TestIngestCommitsOnlyAfterBothHalvesAndRetries(t *testing.T) {
	ctx := context.Background()
	const events, dlq, refresh, group = "events", "events.dlq", "refresh", "ingest"
	kf := kafkatest.Start(t, 2, events, dlq, refresh)
	rdb := redistest.Start(t).Client(t)
	app := &flakyApplier{st: store.New(rdb, storeOptions("c:"))}
	app.failUsers.Store(true)
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	ing, err := consumer.NewIngest(consumer.IngestOptions{
		Kafka: consumer.Kafka{Brokers: kf.Brokers, MaxWait: 50 * time.Millisecond},
		Topic: events, DLQTopic: dlq, RefreshTopic: refresh, Group: group,
		BatchMaxEvents: 16, BatchMaxWait: 10 * time.Millisecond, ItemWindowEvents: 1000,
		ShutdownTimeout: 5 * time.Second,
		Decoder:         event.Decoder{},
		Metrics:         m,
	}, app)
	if err != nil {
		t.Fatal(err)
	}

	gen := loadgen.New(loadgen.Options{Users: 12, Items: 20, Seed: 5, Start: time.Now().Add(-time.Hour), Step: time.Second})
	var msgs []kafka.Message
	for i := 0; i < 60; i++ {
		ev := gen.Next()
		b, err := event.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.UserID), Value: b})
		if i%20 == 7 {
			msgs = append(msgs, kafka.Message{Key: []byte(ev.UserID), Value: []byte("not an event")})
		}
	}
	kf.Produce(t, events, msgs...)
	// Produced before the consumer starts: the broker answers the producer
	// without a group join in flight.
	run(t, "ingest", ing.Run)

	notCommitted := func(phase string) {
		t.Helper()
		nothingCommitted(t, kf, group, events, phase)
		if ing.Ready() {
			t.Fatalf("%s: ingest reports ready", phase)
		}
	}
	// A failed batch counts once in recstream_batch_errors_total however
	// many of its partitions failed: wait for three failed batches.
	waitFor(t, "retries of the failing user half", func() bool {
		return app.userErrors.Load() >= 3 && testutil.ToFloat64(m.StoreErrors) >= 3
	})
	notCommitted("user half failing")

	app.failItems.Store(true)
	app.failUsers.Store(false)
	waitFor(t, "retries of the failing item half", func() bool { return app.itemErrors.Load() >= 3 })
	notCommitted("item half failing")

	app.failItems.Store(false)
	waitCommitted(t, kf, group, events)
	if !ing.Ready() {
		t.Fatal("ingest not ready after the store recovered")
	}

	// The reference: every valid event applied once, per partition in
	// offset order.
	ref := store.New(rdb, storeOptions("r:"))
	dec := event.Decoder{}
	ops := map[int][]store.Op{}
	users, items := map[string]bool{}, map[string]bool{}
	invalid := 0
	for _, msg := range kf.ReadAll(t, events, 30*time.Second) {
		ev, err := dec.Decode(msg.Value, msg.Time)
		if err != nil {
			invalid++
			continue
		}
		ops[msg.Partition] = append(ops[msg.Partition], store.Op{Offset: msg.Offset, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS})
		users[ev.UserID], items[ev.ItemID] = true, true
	}
	for p, o := range ops {
		if _, err := ref.Apply(ctx, int32(p), o); err != nil {
			t.Fatal(err)
		}
	}
	us, is := keys(users), keys(items)
	same := func(what string, got, want any, err1, err2 error) {
		t.Helper()
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v / %v", what, err1, err2)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s differs from the reference:\n got  %v\n want %v", what, got, want)
		}
	}
	// Sums over other batch boundaries differ in the last bits only.
	byID := func(xs []store.Scored) map[string]float64 {
		out := make(map[string]float64, len(xs))
		for _, x := range xs {
			out[x.ID] = float64(float32(x.Score))
		}
		return out
	}
	byEntity := func(m map[string][]store.Scored) map[string]map[string]float64 {
		out := make(map[string]map[string]float64, len(m))
		for k, xs := range m {
			out[k] = byID(xs)
		}
		return out
	}
	gv, err1 := app.st.UserVectors(ctx, us, 1000)
	wv, err2 := ref.UserVectors(ctx, us, 1000)
	same("user vectors", byEntity(gv), byEntity(wv), err1, err2)
	gd, err1 := app.st.ItemDegrees(ctx, is)
	wd, err2 := ref.ItemDegrees(ctx, is)
	same("item degrees", gd, wd, err1, err2)
	gn, err1 := app.st.ItemNeighbours(ctx, is, 1000)
	wn, err2 := ref.ItemNeighbours(ctx, is, 1000)
	same("co-occurrence rows", byEntity(gn), byEntity(wn), err1, err2)
	gt, err1 := app.st.TopTrending(ctx, 1000)
	wt, err2 := ref.TopTrending(ctx, 1000)
	same("trending", byID(gt), byID(wt), err1, err2)

	if d := kf.ReadAll(t, dlq, 30*time.Second); len(d) != invalid || invalid == 0 {
		t.Fatalf("%d dead letters for %d invalid events", len(d), invalid)
	}
	refreshed := map[string]bool{}
	for _, msg := range kf.ReadAll(t, refresh, 30*time.Second) {
		r, err := consumer.DecodeRefresh(msg.Value)
		if err != nil {
			t.Fatal(err)
		}
		refreshed[r.User] = true
	}
	if !reflect.DeepEqual(refreshed, users) {
		t.Fatalf("refresh requests for %v, users %v", keys(refreshed), us)
	}
}

// nopApplier applies nothing.
type nopApplier struct{}

func (nopApplier) ApplyUsers(context.Context, int32, []store.Op, *store.ItemWork) (store.ApplyResult, error) {
	return store.ApplyResult{}, nil
}
func (nopApplier) ApplyItems(context.Context, *store.ItemWork) error { return nil }

// The ingest consumer tells its Assigned callback the partitions its group
// gives it at each generation (kafka-go's Reader has no rebalance
// callback: it reads them from the Reader's log): all four when alone,
// and when a second consumer joins, each its share, the first one losing
// the partitions the second one gets.
func TestIngestAssignedPartitions(t *testing.T) {
	const events, group = "events", "ingest"
	kf := kafkatest.Start(t, 4, events, "events.dlq", "refresh")
	var mu sync.Mutex
	last := make([][]int, 2)
	calls := make([]int, 2)
	newIngest := func(i int) *consumer.Ingest {
		ing, err := consumer.NewIngest(consumer.IngestOptions{
			Kafka: consumer.Kafka{Brokers: kf.Brokers, MaxWait: 50 * time.Millisecond, SessionTimeout: time.Second, RebalanceTimeout: 2 * time.Second},
			Topic: events, DLQTopic: "events.dlq", RefreshTopic: "refresh", Group: group,
			BatchMaxEvents: 16, BatchMaxWait: 10 * time.Millisecond, ItemWindowEvents: 1000,
			ShutdownTimeout: 5 * time.Second,
			Decoder:         event.Decoder{},
			Assigned: func(ps []int) {
				mu.Lock()
				defer mu.Unlock()
				last[i] = ps
				calls[i]++
			},
		}, nopApplier{})
		if err != nil {
			t.Fatal(err)
		}
		return ing
	}
	state := func() ([][]int, []int) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(last), slices.Clone(calls)
	}
	run(t, "first ingest", newIngest(0).Run)
	waitFor(t, "the first consumer assigned every partition", func() bool {
		l, _ := state()
		return slices.Equal(l[0], []int{0, 1, 2, 3})
	})
	run(t, "second ingest", newIngest(1).Run)
	waitFor(t, "the partitions shared between both consumers", func() bool {
		l, c := state()
		if c[1] == 0 || len(l[0]) == 0 || len(l[1]) == 0 {
			return false
		}
		both := slices.Sorted(slices.Values(append(slices.Clone(l[0]), l[1]...)))
		return slices.Equal(both, []int{0, 1, 2, 3})
	})
	l, c := state()
	t.Logf("assigned %v and %v (%d and %d generations)", l[0], l[1], c[0], c[1])
}
