package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/store"
)

// TTLs are renewed at most every user_ttl/64, and a key created between
// renewals (a first co-occurrence) gets one at once; a user's state blob
// gets the whole TTL with each write.
func TestTTLRenewal(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	clock := time.Unix(1_800_000_000, 0)
	const ttl = 6400 * time.Second // renewal interval 100 s
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix, o.UserTTL, o.Now = "x:", ttl, func() time.Time { return clock } }))
	k := st.Keys()
	off := int64(0)
	apply := func(item string, typ event.Type) {
		t.Helper()
		off++
		if _, err := st.Apply(ctx, 0, []store.Op{{Offset: off, User: "u", Item: item, Type: typ, TS: 1_700_000_000_000 + off}}); err != nil {
			t.Fatal(err)
		}
	}
	ttlOf := func(key string) time.Duration {
		t.Helper()
		d, err := rdb.TTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	full := func(key string) {
		t.Helper()
		if d := ttlOf(key); d < ttl-time.Minute || d > ttl {
			t.Errorf("%s: TTL %s, want about %s", key, d, ttl)
		}
	}

	apply("a", event.Browse)
	for _, key := range []string{k.UserState("u"), k.UserMeta("u"), k.ItemUsers("a"), k.ItemMeta("a")} {
		full(key)
	}
	// Simulate time passing on the server side for two keys.
	rdb.Expire(ctx, k.UserMeta("u"), 50*time.Second)
	rdb.Expire(ctx, k.UserState("u"), 50*time.Second)

	clock = clock.Add(50 * time.Second) // not due
	apply("b", event.Purchase)          // u's first purchase and a's co-occurrence row
	if d := ttlOf(k.UserMeta("u")); d > 50*time.Second {
		t.Errorf("meta TTL %s renewed before the interval", d)
	}
	for _, key := range []string{k.UserState("u"), k.ItemCooc("a"), k.ItemCooc("b"), k.ItemUsers("b"), k.ItemMeta("b")} {
		full(key)
	}

	clock = clock.Add(60 * time.Second) // 110 s since the renewal: due
	apply("c", event.Click)
	for _, key := range []string{k.UserState("u"), k.UserMeta("u")} {
		full(key)
	}
	// Every key of the user and the items has a TTL.
	keys, _ := rdb.Keys(ctx, "x:{[ui]:*").Result()
	if len(keys) < 10 {
		t.Fatalf("only %d keys: %v", len(keys), keys)
	}
	for _, key := range keys {
		if d := ttlOf(key); d <= 0 {
			t.Errorf("%s has no TTL (%s)", key, d)
		}
	}
}
