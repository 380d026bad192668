package store_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// BenchmarkApply applies one partition batch of 1,000 synthetic events
// (default caps) per iteration against a real redis-server; offsets keep
// growing, so every batch is applied, none fenced. ns/op is per batch.
func BenchmarkApply(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	st := store.New(rdb, store.Options{Prefix: "b:"})
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	g := loadgen.New(loadgen.Options{Users: 10000, Items: 5000, Seed: 1, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: time.Second})
	const batch = 1000
	off := int64(0)
	next := func() []store.Op {
		ops := make([]store.Op, batch)
		for i := range ops {
			ev := g.Next()
			ops[i] = store.Op{Offset: off, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS}
			off++
		}
		return ops
	}
	// Warm up: some history, so that co-occurrence work is realistic.
	for i := 0; i < 20; i++ {
		if _, err := st.Apply(ctx, 0, next()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ops := next()
		b.StartTimer()
		if _, err := st.Apply(ctx, 0, ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
}

func benchList(n int) store.List {
	l := store.List{Version: store.ListFormatVersion, User: "u12345", GeneratedAt: 1764400000123, Model: "hybrid-v1", EventTS: 1764400000001}
	for i := 0; i < n; i++ {
		l.Items = append(l.Items, store.ListItem{Item: "i" + strconv.Itoa(1000+i), Score: 1.0 / float64(i+1), Source: "item_knn", Reason: "because you viewed i" + strconv.Itoa(42+i)})
	}
	return l
}

// BenchmarkEncodeList is the JSON encoding of one 20-item list payload.
func BenchmarkEncodeList(b *testing.B) {
	l := benchList(20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteLists encodes and writes 64 lists (one scorer chunk) with
// one pipelined SET each against a real redis-server.
func BenchmarkWriteLists(b *testing.B) {
	srv := redistest.Start(b)
	st := store.New(srv.Client(b), store.Options{Prefix: "b:"})
	lists := make([]store.List, 64)
	for i := range lists {
		lists[i] = benchList(20)
		lists[i].User = loadgen.UserID(i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := st.WriteLists(ctx, lists, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
