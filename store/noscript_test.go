package store_test

import (
	"context"
	"testing"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/store"
)

// Every script call goes through one NOSCRIPT path: after Redis lost its
// scripts (SCRIPT FLUSH, as after a restart or failover) each write loads
// them again and goes through, once.
func TestWritesAfterScriptFlush(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) {
		o.Prefix = "n:"
		o.UserLogCap = 100
		o.UserItemsCap = 100
		o.ItemUsersCap = 100
		o.CoocCap = 100
		o.CoocHistory = 10
		o.TrendingCap = 100
	}))
	flush := func() {
		t.Helper()
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ts := int64(1764400000000)
	flush()
	if _, err := st.Apply(ctx, 0, []store.Op{
		{Offset: 1, User: "u1", Item: "i1", Type: event.Click, TS: ts},
		{Offset: 2, User: "u1", Item: "i2", Type: event.Click, TS: ts + 1},
		{Offset: 3, User: "u2", Item: "i1", Type: event.Click, TS: ts + 2},
	}); err != nil {
		t.Fatalf("apply after SCRIPT FLUSH: %v", err)
	}
	flush()
	res, err := st.WriteCatalog(ctx, 0, []store.CatalogRecord{{Offset: 1, Item: "i1", Category: "a/b", Available: true}})
	if err != nil || len(res) != 1 || !res[0].Applied {
		t.Fatalf("catalog write after SCRIPT FLUSH: %+v, %v", res, err)
	}
	res, err = st.WriteCatalog(ctx, 0, []store.CatalogRecord{{Offset: 1, Item: "i1", Category: "a/b", Available: true}})
	if err != nil || len(res) != 1 || res[0].Applied {
		t.Fatalf("replayed catalog record: %+v, %v (want fenced)", res, err)
	}
	flush()
	fr, err := st.Forget(ctx, "u1", store.ForgetOptions{})
	if err != nil {
		t.Fatalf("forget after SCRIPT FLUSH: %v", err)
	}
	if fr.Events != 2 {
		t.Fatalf("forget erased %d events, want 2", fr.Events)
	}
	vec, err := st.UserVectors(ctx, []string{"u1", "u2"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(vec["u1"]) != 0 || len(vec["u2"]) != 1 {
		t.Fatalf("vectors after forget: %v", vec)
	}
}
