package processor_test

import (
	"context"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/processortest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
	"github.com/recstream/recstream/store"
)

// pipeline is a running processor (both roles) on kfake and a real Redis.
type pipeline struct {
	t    *testing.T
	kf   *kafkatest.Cluster
	p    *processor.Processor
	cfg  config.Config
	stop func()
}

// waitIngested waits until the ingest group committed every event
// produced and, with item owners, the item owners every update sent for
// them: every event's user and item halves are written.
func (pl *pipeline) waitIngested(t *testing.T) {
	t.Helper()
	waitCommitted(t, pl.kf, pl.cfg.Kafka.IngestGroup, pl.cfg.Kafka.EventsTopic, 30*time.Second)
	if pl.cfg.Ingest.ItemOwner {
		waitCommitted(t, pl.kf, pl.cfg.Kafka.ItemOwnerGroup, pl.cfg.Kafka.ItemUpdatesTopic, 30*time.Second)
	}
}

func testConfig(brokers []string, redisAddr string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.CreateTopics = false
	cfg.Kafka.MaxWait = 50 * time.Millisecond
	cfg.Redis.Addrs = []string{redisAddr}
	cfg.Admin.Listen = ""
	cfg.Ingest.BatchMaxWait = 10 * time.Millisecond
	// Item windows (not the default) of 1 s and at most 2,000 events: the
	// logs here are loaded in about a second, and tests that act on
	// progress (a quarter of the log committed) need more than one commit.
	cfg.Ingest.ItemWindow = time.Second
	cfg.Ingest.ItemWindowEvents = 2000
	cfg.Scorer.Debounce = 20 * time.Millisecond
	cfg.Scorer.ExcludeSeen = false
	// No reuse of neighbour reads: the test loads 15,000 events in about a
	// second, and a 1 s reuse window would score early users on staler data.
	cfg.Scorer.NeighbourTTL = 0
	cfg.Run.ShutdownTimeout = 5 * time.Second
	return cfg
}

func startPipeline(t *testing.T, partitions int, mutate func(*config.Config)) *pipeline {
	t.Helper()
	cfg := config.Default()
	kf := kafkatest.Start(t, partitions, cfg.Topics()...)
	rs := redistest.Start(t)
	cfg = testConfig(kf.Brokers, rs.Addr)
	if mutate != nil {
		mutate(&cfg)
	}
	p, _, stop := processortest.Run(t, cfg, processor.Deps{Registerer: prometheus.NewRegistry()})
	return &pipeline{t: t, kf: kf, p: p, cfg: cfg, stop: stop}
}

func (pl *pipeline) produce(evs ...event.Event) {
	pl.t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		b, err := event.Encode(ev)
		if err != nil {
			pl.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(ev.UserID), Value: b}
	}
	pl.kf.Produce(pl.t, pl.cfg.Kafka.EventsTopic, msgs...)
}

func (pl *pipeline) consumed() int {
	n := 0.0
	for _, ty := range event.Types {
		n += testutil.ToFloat64(pl.p.Metrics.Events.WithLabelValues(ty.String()))
	}
	return int(n)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (pl *pipeline) list(user string) (store.List, bool) {
	l, found, err := pl.p.Store.ReadList(context.Background(), user)
	if err != nil {
		pl.t.Fatal(err)
	}
	return l, found
}

func TestPlantedClustersPurchaseAndBurst(t *testing.T) {
	pl := startPipeline(t, 4, nil)
	gen := loadgen.New(loadgen.Options{Users: 300, Items: 200, Clusters: 5, Affinity: 0.9, Seed: 42})
	const n = 15000
	evs := make([]event.Event, n)
	lastTS := map[string]int64{}
	count := map[string]int{}
	for i := range evs {
		evs[i] = gen.Next()
		lastTS[evs[i].UserID] = max(lastTS[evs[i].UserID], evs[i].TS)
		count[evs[i].UserID]++
	}
	pl.produce(evs...)
	waitFor(t, 60*time.Second, "all events consumed", func() bool { return pl.consumed() == n })
	var warm []string
	for u, c := range count {
		if c >= 10 {
			warm = append(warm, u)
		}
	}
	sort.Strings(warm)
	waitFor(t, 30*time.Second, "every warm user's list to reflect their last event", func() bool {
		for _, u := range warm {
			l, ok := pl.list(u)
			if !ok || l.EventTS < lastTS[u] {
				return false
			}
		}
		return true
	})
	// A list is computed when its user's last event arrives, from the state
	// of everyone else at that moment: users whose events came early in the
	// load were scored on a nearly empty store. Request one more refresh of
	// every warm user through the refresh topic, as an operator's rescore
	// would, so that (a) judges the model on the whole log: once the last
	// item window is written too (item state lags the users' by up to
	// ingest.item_window, or ingest.item_flush_interval with item owners;
	// on a busy machine a rescore could come first).
	waitFor(t, 30*time.Second, "the item half of every event written", func() bool {
		return testutil.ToFloat64(pl.p.Metrics.ItemEvents) == n
	})
	pl.waitIngested(t)
	rescoreFrom := time.Now().UnixMilli()
	var reqs []kafka.Message
	for _, u := range warm {
		reqs = append(reqs, kafka.Message{Key: []byte(u), Value: consumer.EncodeRefresh(consumer.RefreshRequest{User: u})})
	}
	pl.kf.Produce(t, pl.cfg.Kafka.RefreshTopic, reqs...)
	waitFor(t, 30*time.Second, "every warm user's list to be rescored", func() bool {
		for _, u := range warm {
			if l, ok := pl.list(u); !ok || l.GeneratedAt < rescoreFrom {
				return false
			}
		}
		return true
	})

	// (a) at least 95% of the warm users' top-10 items come from their own
	// cluster, and at least 70% of every one's: the next-item source
	// follows the user's latest items, and a tenth of the generator's
	// events leave the user's cluster, so a user whose latest events did
	// gets their successors too (at most a third of the list at the
	// default blend; 90% for every user held before the source).
	worst, total, own := 1.0, 0, 0
	for _, u := range warm {
		l, _ := pl.list(u)
		top := l.Items[:min(10, len(l.Items))]
		if len(top) < 10 {
			t.Fatalf("user %s: only %d items", u, len(top))
		}
		in := 0
		for _, it := range top {
			if gen.Cluster(it.Item) == gen.Cluster(u) {
				in++
			}
			if it.Reason == "" {
				t.Fatalf("user %s item %s: no reason", u, it.Item)
			}
		}
		total += len(top)
		own += in
		worst = min(worst, float64(in)/float64(len(top)))
	}
	t.Logf("%d warm users: %.3f of top-10 items in the user's own cluster, worst user %.2f", len(warm), float64(own)/float64(total), worst)
	if mean := float64(own) / float64(total); mean < 0.95 || worst < 0.7 {
		t.Errorf("%.1f%% of the warm users' top-10 in their own cluster (want >= 95%%), worst user %.0f%% (want >= 70%%)", mean*100, worst*100)
	}

	// (b) a purchase removes that item from the user's list within 2 s.
	u := warm[0]
	l, _ := pl.list(u)
	target := l.Items[0].Item
	pl.produce(event.Event{UserID: u, ItemID: target, Type: event.Purchase, TS: time.Now().UnixMilli()})
	took := waitFor(t, 2*time.Second, "the purchased item to leave the list", func() bool {
		l, _ := pl.list(u)
		for _, it := range l.Items {
			if it.Item == target {
				return false
			}
		}
		return true
	})
	t.Logf("purchase of %s by %s left the list after %s", target, u, took)

	// (b) a burst of browsing in a new cluster changes the list within 2 s.
	from := gen.Cluster(u)
	to := (from + 2) % 5
	var burst []event.Event
	for k := 0; k < 90; k++ {
		burst = append(burst, event.Event{UserID: u, ItemID: gen.ItemIn(to, k%6), Type: event.Browse, TS: time.Now().UnixMilli()})
	}
	pl.produce(burst...)
	took = waitFor(t, 2*time.Second, "the list to move to the new cluster", func() bool {
		l, _ := pl.list(u)
		in := 0
		for _, it := range l.Items[:min(10, len(l.Items))] {
			if gen.Cluster(it.Item) == to {
				in++
			}
		}
		return in >= 5
	})
	t.Logf("burst in cluster %d moved %s's list after %s", to, u, took)
}

func TestMalformedMessagesGoToDLQ(t *testing.T) {
	pl := startPipeline(t, 1, nil)
	valid := func(u string) []byte {
		b, _ := event.Encode(event.Event{UserID: u, ItemID: "i1", Type: event.Click, TS: time.Now().UnixMilli()})
		return b
	}
	bad := []struct {
		value  string
		reason event.Reason
	}{
		{"not json at all", event.ReasonNotObject},
		{"\x86\xa7user_id", event.ReasonMalformed},
		{`{"user_id":"a","type":"click"}`, event.ReasonMissingItem},
		{`{"user_id":"a","item_id":"b","type":"teleport"}`, event.ReasonUnknownType},
		{`{"user_id":"a{b","item_id":"b","type":"click"}`, event.ReasonBadUserID},
		{"", event.ReasonEmpty},
	}
	var msgs []kafka.Message
	for i, b := range bad {
		msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: []byte(b.value)})
		msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: valid("good" + strconv.Itoa(i))})
	}
	pl.kf.Produce(t, pl.cfg.Kafka.EventsTopic, msgs...)
	waitFor(t, 30*time.Second, "valid events consumed", func() bool { return pl.consumed() == len(bad) })
	var dlq []kafka.Message
	waitFor(t, 10*time.Second, "dead letters", func() bool {
		dlq = pl.kf.ReadAll(t, pl.cfg.Kafka.DLQTopic, 2*time.Second)
		return len(dlq) == len(bad)
	})
	for i, m := range dlq {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[consumer.HeaderReason] != string(bad[i].reason) {
			t.Errorf("dead letter %d: reason %q, want %q", i, h[consumer.HeaderReason], bad[i].reason)
		}
		if string(m.Value) != bad[i].value {
			t.Errorf("dead letter %d: value %q, want the original %q", i, m.Value, bad[i].value)
		}
		if h[consumer.HeaderOffset] != strconv.Itoa(2*i) || h[consumer.HeaderError] == "" {
			t.Errorf("dead letter %d: headers %v", i, h)
		}
		if got := testutil.ToFloat64(pl.p.Metrics.Invalid.WithLabelValues(string(bad[i].reason))); got != 1 {
			t.Errorf("invalid counter for %s = %v, want 1", bad[i].reason, got)
		}
	}
	for i := range bad {
		u := "good" + strconv.Itoa(i)
		waitFor(t, 5*time.Second, "list of "+u, func() bool { _, ok := pl.list(u); return ok })
	}
}
