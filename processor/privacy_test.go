package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/privacy"
)

// traces lists every place under prefix where user's id is stored: a key
// of the user's hash tag, a zset member, a hash field, a list entry or a
// string (list payload) naming it. Keys in skip are not inspected.
func traces(t *testing.T, c *redis.Client, prefix, user string, skip ...string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	tag := "{u:" + user + "}"
	quoted := `"` + user + `"`
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
keys:
	for iter.Next(ctx) {
		k := iter.Val()
		for _, s := range skip {
			if k == s {
				continue keys
			}
		}
		if strings.Contains(k, tag) {
			out = append(out, "key "+k)
			continue
		}
		typ := c.Type(ctx, k).Val()
		switch typ {
		case "zset":
			if _, err := c.ZScore(ctx, k, user).Result(); err == nil {
				out = append(out, "member of "+k)
			}
		case "hash":
			if c.HExists(ctx, k, user).Val() {
				out = append(out, "field of "+k)
			}
		case "list":
			for _, e := range c.LRange(ctx, k, 0, -1).Val() {
				if e == user || strings.HasSuffix(e, "|"+user) {
					out = append(out, "entry of "+k)
				}
			}
		case "string":
			if strings.Contains(c.Get(ctx, k).Val(), quoted) {
				out = append(out, "named in "+k)
			}
		case "stream":
			for _, m := range c.XRange(ctx, k, "-", "+").Val() {
				if strings.Contains(fmt.Sprint(m.Values), user) {
					out = append(out, "entry of stream "+k)
				}
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRetentionExpiresInactiveUsers(t *testing.T) {
	pl := startPipeline(t, 2, func(c *config.Config) {
		c.Model.UserTTL = 2 * time.Second
		c.Scorer.ListTTL = 2 * time.Second
		c.Scorer.ExcludeSeen = true
	})
	rdb := pl.p.Redis.(*redis.Client)
	prefix := pl.cfg.Redis.KeyPrefix
	now := time.Now().UnixMilli()
	var evs []event.Event
	for k := 0; k < 5; k++ {
		it := fmt.Sprintf("i%d", k)
		evs = append(evs,
			event.Event{UserID: "keep", ItemID: it, Type: event.Click, TS: now},
			event.Event{UserID: "gone", ItemID: it, Type: event.Purchase, TS: now},
			event.Event{UserID: "other", ItemID: it, Type: event.Click, TS: now},
		)
	}
	evs = append(evs, event.Event{UserID: "gone", ItemID: "only-gone", Type: event.Browse, TS: now})
	evs = append(evs, event.Event{UserID: "keep", ItemID: "i9", Type: event.Browse, TS: now})
	pl.produce(evs...)
	waitFor(t, 10*time.Second, "lists of keep and gone", func() bool {
		_, a := pl.list("keep")
		_, b := pl.list("gone")
		return a && b
	})
	if tr := traces(t, rdb, prefix, "gone"); len(tr) < 3 { // state, meta and list at least
		t.Fatalf("before expiry, only %d traces of the user: %v", len(tr), tr)
	}
	// keep stays active on the shared items; gone does nothing more.
	deadline := time.Now().Add(10 * time.Second)
	var tr []string
	for k := 0; ; k++ {
		pl.produce(event.Event{UserID: "keep", ItemID: fmt.Sprintf("i%d", k%5), Type: event.Browse, TS: time.Now().UnixMilli()})
		time.Sleep(250 * time.Millisecond)
		tr = traces(t, rdb, prefix, "gone")
		if len(tr) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(tr) > 0 {
		t.Fatalf("10 s after the inactive user's last event, %d traces remain: %v", len(tr), tr)
	}
	for _, k := range []string{pl.p.Store.Keys().UserState("keep"), pl.p.Store.Keys().UserMeta("keep"), pl.p.Store.Keys().UserList("keep"), pl.p.Store.Keys().ItemUsers("i0")} {
		if rdb.Exists(context.Background(), k).Val() != 1 {
			t.Errorf("active user's key %s expired", k)
		}
	}
	if rdb.Exists(context.Background(), pl.p.Store.Keys().ItemUsers("only-gone")).Val() != 0 {
		t.Errorf("the index of an item only the inactive user touched did not expire")
	}
}

// startPrivacyPipeline is a processor (both roles, control consumer) on
// kfake with every topic, including the control topic, and a real Redis.
func startPrivacyPipeline(t *testing.T, partitions int, mutate func(*config.Config)) *pipeline {
	t.Helper()
	def := config.Default()
	kf := kafkatest.Start(t, partitions, def.Topics()...)
	rs := redistest.Start(t)
	cfg := testConfig(kf.Brokers, rs.Addr)
	if mutate != nil {
		mutate(&cfg)
	}
	p, stop := runProcessor(t, cfg)
	return &pipeline{t: t, kf: kf, p: p, cfg: cfg, stop: stop}
}

func TestForgetThroughControlTopic(t *testing.T) {
	pl := startPrivacyPipeline(t, 4, func(c *config.Config) {
		c.Privacy.ForgetTombstoneTTL = time.Second
		c.Privacy.ForgetSettle = 300 * time.Millisecond
		// The log keeps 2·user_log_cap entries; keep it shorter than the
		// victim's history so the erasure meets an incomplete window.
		c.Model.UserLogCap = 32
	})
	rdb := pl.p.Redis.(*redis.Client)
	prefix := pl.cfg.Redis.KeyPrefix
	ctx := context.Background()
	gen := loadgen.New(loadgen.Options{Users: 80, Items: 60, Clusters: 4, Affinity: 0.9, Seed: 11})
	count := map[string]int{}
	var evs []event.Event
	for i := 0; i < 4000; i++ {
		ev := gen.Next()
		evs = append(evs, ev)
		count[ev.UserID]++
	}
	pl.produce(evs...)
	pl.waitIngested(t)
	waitCommitted(t, pl.kf, pl.cfg.Kafka.ScoreGroup, pl.cfg.Kafka.RefreshTopic, 30*time.Second)
	victim, most := "", 0
	for u, c := range count {
		if c > most || (c == most && u < victim) {
			victim, most = u, c
		}
	}
	before := traces(t, rdb, prefix, victim)
	t.Logf("victim %s: %d events, %d traces before the erasure", victim, most, len(before))
	if len(before) < 10 {
		t.Fatalf("victim has only %d traces before the erasure: %v", len(before), before)
	}

	erasedAt := time.Now().UnixMilli()
	pl.kf.Produce(t, pl.cfg.Kafka.ControlTopic, kafka.Message{Key: []byte(victim), Value: consumer.EncodeControl(consumer.ControlCommand{Op: consumer.OpForget, UserID: victim, Request: "R-9"})})
	// Events of the victim stamped before the erasure, still in flight.
	var late []event.Event
	for k := 0; k < 20; k++ {
		late = append(late, event.Event{UserID: victim, ItemID: gen.ItemIn(k%4, k), Type: event.Click, TS: erasedAt - 1000 + int64(k)})
	}
	pl.produce(late...)

	audit := pl.p.Store.Keys().AuditStream()
	var entry redis.XMessage
	waitFor(t, 20*time.Second, "the audit record", func() bool {
		xs := rdb.XRange(ctx, audit, "-", "+").Val()
		if len(xs) > 0 {
			entry = xs[0]
			return true
		}
		return false
	})
	t.Logf("audit record %s: %v", entry.ID, entry.Values)
	// The victim has more events than the log keeps: only the logged
	// window's co-occurrence can be subtracted, and the record says so.
	// The late events are counted when ingest applied them before the
	// erasure's first step (then erased with the rest), not when they
	// came after it (dropped at the tombstone): either is right.
	events, _ := strconv.Atoi(fmt.Sprint(entry.Values["events"]))
	if entry.Values["request"] != "R-9" || entry.Values["source"] != "control" || entry.Values["window_complete"] != "false" ||
		entry.Values["logged_events"] != fmt.Sprint(2*pl.cfg.Model.UserLogCap) || events < most || events > most+len(late) {
		t.Errorf("audit record %v: want %d to %d events", entry.Values, most, most+len(late))
	}
	waitCommitted(t, pl.kf, pl.cfg.Kafka.IngestGroup, pl.cfg.Kafka.EventsTopic, 30*time.Second)

	// Users who shared items are rescored after the erasure.
	sharers := 0
	waitFor(t, 10*time.Second, "rescored lists of users who shared items", func() bool {
		sharers = 0
		for u := range count {
			if l, ok := pl.list(u); ok && u != victim && l.GeneratedAt > erasedAt {
				sharers++
			}
		}
		return sharers >= 10
	})
	t.Logf("%d other users' lists rewritten after the erasure", sharers)

	// Once the tombstone expires, no key, member, field, entry or list
	// names the victim.
	var tr []string
	waitFor(t, 10*time.Second, "every trace of the victim to go", func() bool {
		tr = traces(t, rdb, prefix, victim)
		return len(tr) == 0
	})
	if n := rdb.Exists(ctx, pl.p.Store.Keys().UserList(victim)).Val(); n != 0 {
		t.Errorf("the victim's list exists")
	}
}

func TestPseudonymizedIDs(t *testing.T) {
	const key = "test-pseudonymize-key"
	pl := startPrivacyPipeline(t, 2, func(c *config.Config) {
		c.Privacy.PseudonymizeKey = key
		c.Privacy.ForgetTombstoneTTL = time.Second
		c.Privacy.ForgetSettle = 0
	})
	rdb := pl.p.Redis.(*redis.Client)
	prefix := pl.cfg.Redis.KeyPrefix
	now := time.Now().UnixMilli()
	var evs []event.Event
	for _, u := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		for k := 0; k < 5; k++ {
			evs = append(evs, event.Event{UserID: u, ItemID: fmt.Sprintf("i%d", k), Type: event.Click, TS: now + int64(k)})
		}
	}
	pl.produce(evs...)
	// The web tier computes the same pseudonym to read the list.
	alice := privacy.Pseudonym([]byte(key), privacy.DefaultLength, "alice@example.com")
	waitFor(t, 10*time.Second, "alice's list under her pseudonym", func() bool { _, ok := pl.list(alice); return ok })
	for _, u := range []string{"alice@example.com", "bob@example.com", "carol@example.com", "alice", "example.com"} {
		if tr := traces(t, rdb, prefix, u); len(tr) > 0 {
			t.Errorf("raw id %s stored: %v", u, tr)
		}
	}
	iter := rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		if strings.Contains(iter.Val(), "example.com") {
			t.Errorf("key %s holds a raw id", iter.Val())
		}
	}
	for _, m := range pl.kf.ReadAll(t, pl.cfg.Kafka.RefreshTopic, 2*time.Second) {
		if strings.Contains(string(m.Key)+string(m.Value), "example.com") {
			t.Errorf("refresh request carries a raw id: %s %s", m.Key, m.Value)
		}
	}
	if len(alice) != 32 || len(traces(t, rdb, prefix, alice)) < 3 {
		t.Errorf("pseudonym %s: traces %v", alice, traces(t, rdb, prefix, alice))
	}
	// Erasure takes the id as producers send it.
	out, err := pl.p.Forget(context.Background(), "alice@example.com", "test", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.User != alice || out.Events != 5 {
		t.Errorf("forget: %+v", out)
	}
}

// Scoring processes reuse other users' vectors for scorer.neighbour_ttl:
// the neighbours of an erased user are queued for rescoring only once
// every read from before the erasure has expired, even with no settle
// pass configured; without rescoring the erasure waits only for the item
// halves in flight (ingest.item_flush_interval + 1 s with item owners,
// ingest.item_window + 1 s with an item window;
// store.TestForgetEqualsNeverSeen).
func TestForgetRescoresAfterNeighbourReuse(t *testing.T) {
	const reuse = 2500 * time.Millisecond
	pl := startPrivacyPipeline(t, 2, func(c *config.Config) {
		c.Privacy.ForgetTombstoneTTL = time.Second
		c.Privacy.ForgetSettle = 0
		c.Ingest.ItemWindow = 0
		c.Ingest.ItemFlushInterval = 100 * time.Millisecond
		c.Scorer.NeighbourTTL = reuse
	})
	now := time.Now().UnixMilli()
	var evs []event.Event
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		for k := 0; k < 3; k++ {
			evs = append(evs, event.Event{UserID: u, ItemID: fmt.Sprintf("i%d", k), Type: event.Click, TS: now + int64(k)})
		}
	}
	pl.produce(evs...)
	pl.waitIngested(t)
	ctx := context.Background()
	start := time.Now()
	var queued []string
	var after time.Duration
	out, err := pl.p.Forget(ctx, "u1", "test", "", func(_ context.Context, users []string) error {
		queued, after = users, time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Refreshed != 3 || len(queued) != 3 {
		t.Fatalf("neighbours queued: %v (%+v), want u2, u3, u4", queued, out)
	}
	if after < reuse {
		t.Fatalf("neighbours queued %v after the erasure began, before neighbour_ttl %v", after, reuse)
	}
	start = time.Now()
	if _, err := pl.p.Forget(ctx, "u2", "test", "", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= reuse {
		t.Fatalf("an erasure without rescoring waited %v", d)
	}
}
