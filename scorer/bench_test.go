package scorer_test

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// vectors returns a 200-item user vector and a 50-item neighbour vector
// sharing about a quarter of the neighbour's items, the sizes the scorer
// compares at default settings.
func vectors() (u, v map[string]float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	u = make(map[string]float64, 200)
	v = make(map[string]float64, 50)
	for i := 0; i < 200; i++ {
		u[loadgen.ItemID(i)] = rng.Float64()
	}
	for i := 0; i < 50; i++ {
		id := loadgen.ItemID(i * 16) // 13 of 50 in common
		v[id] = rng.Float64()
	}
	return u, v
}

func BenchmarkCosine(b *testing.B) {
	u, v := vectors()
	b.ReportAllocs()
	for b.Loop() {
		scorer.Cosine(u, v)
	}
}

func BenchmarkPearson(b *testing.B) {
	u, v := vectors()
	b.ReportAllocs()
	for b.Loop() {
		scorer.Pearson(u, v)
	}
}

func BenchmarkNormalisedVector(b *testing.B) {
	items := make([]store.Scored, 50)
	for i := range items {
		items[i] = store.Scored{ID: loadgen.ItemID(i), Score: float64(50 - i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		scorer.NormalisedVector(items)
	}
}

// BenchmarkScoreChunk makes the lists of one chunk of 64 users (the score
// consumer's chunk; Recommend: everything but the write) against a real
// redis-server holding 40,000 events of 4,000 users and 2,000 items at
// default caps: three pipelined read rounds, the in-process kNN work and
// the ranking. ns/op is per chunk; cpu-ns/user is the benchmark process's
// CPU (not the redis-server's) per user.
func BenchmarkScoreChunk(b *testing.B) {
	benchScoreChunk(b, 4000, 40000, func(o *store.Options) {}, func(o *scorer.Options) {})
}

// BenchmarkScoreChunkDeep is BenchmarkScoreChunk with longer histories
// (80,000 events of 2,000 users) and the rows and budget of
// deploy/profiles/deep-rows.yaml (model.cooc_cap 1,000,
// scorer.item_neighbour_budget 8,000): item-kNN reads whole rows. reads
// reads every row, vector and degree in every chunk; cached keeps them for
// the default scorer.neighbour_ttl and degree TTL, as the score role does,
// so that after the first chunks it measures the in-process work.
func BenchmarkScoreChunkDeep(b *testing.B) {
	def := scorer.OptionsFromConfig(config.Default())
	deepRows := func(o *store.Options) { o.CoocCap = 1000 }
	b.Run("reads", func(b *testing.B) {
		benchScoreChunk(b, 2000, 80000, deepRows, func(o *scorer.Options) { o.ItemNeighbourBudget = 8000 })
	})
	b.Run("cached", func(b *testing.B) {
		benchScoreChunk(b, 2000, 80000, deepRows, func(o *scorer.Options) {
			o.ItemNeighbourBudget, o.NeighbourTTL, o.DegreeTTL = 8000, def.NeighbourTTL, def.DegreeTTL
		})
	})
}

// benchScoreChunk makes the lists of chunks of 64 users, with the store
// changed by setStore and the hybrid scorer changed by set, after events
// events of users users.
func benchScoreChunk(b *testing.B, users, events int, setStore func(o *store.Options), set func(o *scorer.Options)) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "b:"; setStore(o) }))
	ctx := context.Background()
	g := loadgen.New(loadgen.Options{Users: users, Items: 2000, Clusters: 10, Seed: 5, Start: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Step: time.Second})
	off := int64(0)
	for k := 0; k < events/1000; k++ {
		ops := make([]store.Op, 1000)
		for i := range ops {
			ev := g.Next()
			ops[i] = store.Op{Offset: off, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS}
			off++
		}
		if _, err := st.Apply(ctx, 0, ops); err != nil {
			b.Fatal(err)
		}
	}
	sc := scorer.New(st, testopts.Scorer(func(o *scorer.Options) { testopts.Hybrid(o); o.UserItems = 200; set(o) }))
	chunks := make([][]string, 0, 60)
	for c := 0; c < min(60, users/64); c++ {
		users := make([]string, 64)
		for i := range users {
			users[i] = loadgen.UserID(c*64 + i)
		}
		chunks = append(chunks, users)
	}
	b.ReportAllocs()
	k := 0
	cpu := processCPU()
	for b.Loop() {
		if _, err := sc.Recommend(ctx, chunks[k%len(chunks)]); err != nil {
			b.Fatal(err)
		}
		k++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(k*64), "ns/user")
	b.ReportMetric(float64(processCPU()-cpu)/float64(k*64), "cpu-ns/user")
}

// processCPU returns this process's user and system CPU time (not the
// redis-server's) in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
