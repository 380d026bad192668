package processor_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

func (pl *pipeline) publishItems(items ...catalog.Item) {
	pl.t.Helper()
	msgs := make([]kafka.Message, len(items))
	for i, it := range items {
		msgs[i] = kafka.Message{Key: []byte(it.ID), Value: catalog.Encode(it)}
	}
	pl.kf.Produce(pl.t, pl.cfg.Kafka.ItemsTopic, msgs...)
}

// The catalog end to end: records stored in Redis and indexed by the score
// role, bad records in the DLQ, a withdrawn item leaves every list that
// held it within a bounded time, and a brand-new item matching a user's
// profile reaches that user's list at their next refresh.
func TestCatalogEndToEnd(t *testing.T) {
	pl := startPipeline(t, 2, func(c *config.Config) {
		c.Scorer.TopN = 10
		c.Scorer.MaxPerCategory = 4
	})
	ctx := context.Background()
	gen := loadgen.New(loadgen.Options{Users: 120, Items: 100, Clusters: 5, Affinity: 0.9, Seed: 7})
	items := gen.Catalog(time.Now().Add(-30 * 24 * time.Hour))
	pl.publishItems(items...)
	pl.kf.Produce(t, pl.cfg.Kafka.ItemsTopic,
		kafka.Message{Key: []byte("bad1"), Value: []byte(`{"item_id":"bad1","price":-3}`)},
		kafka.Message{Key: []byte("bad2"), Value: []byte(`{"item_id":"bad2","category":"a//b"}`)},
		kafka.Message{Key: []byte("other"), Value: []byte(`{"item_id":"bad3"}`)},
	)
	waitFor(t, 20*time.Second, "the catalog index", func() bool {
		return pl.p.CatalogLoader.Loaded() && pl.p.Catalog.Len() == len(items)
	})
	waitFor(t, 20*time.Second, "catalog records in Redis", func() bool {
		un, err := pl.p.Store.Unavailable(ctx, []string{items[0].ID})
		attr := pl.p.Redis.HGet(ctx, pl.p.Store.Keys().ItemAttr(items[len(items)-1].ID), "cat").Val()
		return err == nil && len(un) == 0 && attr == items[len(items)-1].Category
	})
	var dlq []kafka.Message
	waitFor(t, 10*time.Second, "catalog dead letters", func() bool {
		dlq = pl.kf.ReadAll(t, pl.cfg.Kafka.DLQTopic, 2*time.Second)
		return len(dlq) == 3
	})
	var reasons []string
	for _, m := range dlq {
		for _, h := range m.Headers {
			if h.Key == consumer.HeaderReason {
				reasons = append(reasons, string(h.Value))
			}
		}
	}
	sort.Strings(reasons)
	if strings.Join(reasons, ",") != "bad_category,bad_price,key_mismatch" {
		t.Errorf("dead-letter reasons %v", reasons)
	}

	const n = 6000
	evs := make([]event.Event, n)
	count := map[string]int{}
	for i := range evs {
		evs[i] = gen.Next()
		count[evs[i].UserID]++
	}
	pl.produce(evs...)
	waitFor(t, 60*time.Second, "all events consumed", func() bool { return pl.consumed() == n })
	var users []string
	for u := range count {
		users = append(users, u)
	}
	sort.Strings(users)
	waitFor(t, 30*time.Second, "every user's list", func() bool {
		for _, u := range users {
			if _, ok := pl.list(u); !ok {
				return false
			}
		}
		return true
	})
	holding := func(item string) []string {
		var out []string
		for _, u := range users {
			l, _ := pl.list(u)
			for _, it := range l.Items {
				if it.Item == item {
					out = append(out, u)
				}
			}
		}
		return out
	}
	// Wait for lists to settle, then pick the item held by most lists.
	time.Sleep(500 * time.Millisecond)
	held := map[string]int{}
	sources := map[string]int{}
	for _, u := range users {
		l, _ := pl.list(u)
		per := map[string]int{}
		for _, it := range l.Items {
			held[it.Item]++
			sources[it.Source]++
			per[pl.p.Catalog.Category(it.Item)]++
			if it.Reason == "" {
				t.Fatalf("user %s: item %s without reason", u, it.Item)
			}
		}
		for c, k := range per {
			if k > 4 {
				t.Fatalf("user %s: %d items of %s, cap 4", u, k, c)
			}
		}
	}
	var target string
	for it, k := range held {
		if target == "" || k > held[target] || (k == held[target] && it < target) {
			target = it
		}
	}
	t.Logf("sources of listed items: %v; %s is in %d lists", sources, target, held[target])

	// Withdraw it: every list that held it is rewritten without it.
	wd, _ := pl.p.Catalog.Get(target)
	wd.Available = false
	pl.publishItems(wd)
	took := waitFor(t, 5*time.Second, "the withdrawn item to leave every list", func() bool {
		return len(holding(target)) == 0
	})
	t.Logf("withdrawn item %s left %d lists after %s", target, held[target], took)
	if took > 3*time.Second {
		t.Errorf("withdrawal took %s, documented bound 3 s", took)
	}

	// A new item in a user's favourite category and brand reaches them.
	u := users[0]
	prof, err := pl.p.Store.Profiles(ctx, []string{u}, 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := scorer.Profile(pl.p.Catalog, prof[0].Items)
	fav := catalog.Item{ID: "brand-new", Category: p.Categories[0].ID, Brand: p.Brands[0].ID, Price: 20,
		Tags: []string{"cluster" + strings.TrimPrefix(strings.Split(p.Categories[0].ID, "/")[0], "c")}, Available: true, CreatedAt: time.Now().UnixMilli()}
	pl.publishItems(fav)
	waitFor(t, 10*time.Second, "the new item in the index", func() bool { _, ok := pl.p.Catalog.Get(fav.ID); return ok })
	pl.produce(event.Event{UserID: u, ItemID: prof[0].Items[0].ID, Type: event.Browse, TS: time.Now().UnixMilli()})
	var got store.ListItem
	took = waitFor(t, 5*time.Second, "the new item in the user's list", func() bool {
		l, _ := pl.list(u)
		for _, it := range l.Items {
			if it.Item == fav.ID {
				got = it
				return true
			}
		}
		return false
	})
	t.Logf("new item %s (%s, %s) reached %s after %s: %+v", fav.ID, fav.Category, fav.Brand, u, took, got)

	// Per-category anonymous lists exist and name their category.
	waitFor(t, 10*time.Second, "a category list", func() bool {
		l, ok, err := pl.p.Store.ReadCategoryList(ctx, "c1")
		return err == nil && ok && len(l.Items) > 0 && l.Items[0].Reason == "trending in c1"
	})
}

// With two variants every list carries its user's variant.
func TestVariantsInPipeline(t *testing.T) {
	pl := startPipeline(t, 1, func(c *config.Config) {
		c.Scorer.Variants = []string{"control:50", "content_heavy:50:content=2;item_knn=0.5"}
	})
	gen := loadgen.New(loadgen.Options{Users: 40, Items: 50, Seed: 9})
	pl.publishItems(gen.Catalog(time.Now().Add(-24 * time.Hour))...)
	evs := make([]event.Event, 800)
	users := map[string]bool{}
	for i := range evs {
		evs[i] = gen.Next()
		users[evs[i].UserID] = true
	}
	pl.produce(evs...)
	per := map[string]int{}
	waitFor(t, 30*time.Second, "every list with its variant", func() bool {
		per = map[string]int{}
		for u := range users {
			l, ok := pl.list(u)
			if !ok || l.Variant != pl.p.Variants.Assign(u) {
				return false
			}
			per[l.Variant]++
		}
		return true
	})
	if len(per) != 2 {
		t.Fatalf("variants in lists: %v", per)
	}
	t.Logf("lists per variant: %v", per)
}
