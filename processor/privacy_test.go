package processor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
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
	if tr := traces(t, rdb, prefix, "gone"); len(tr) < 5 {
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
	for _, k := range []string{pl.p.Store.Keys().UserWeights("keep"), pl.p.Store.Keys().UserLog("keep"), pl.p.Store.Keys().UserMeta("keep"), pl.p.Store.Keys().UserList("keep"), pl.p.Store.Keys().ItemUsers("i0")} {
		if rdb.Exists(context.Background(), k).Val() != 1 {
			t.Errorf("active user's key %s expired", k)
		}
	}
	if rdb.Exists(context.Background(), pl.p.Store.Keys().ItemUsers("only-gone")).Val() != 0 {
		t.Errorf("the index of an item only the inactive user touched did not expire")
	}
}
