package eval_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/recstream/recstream/eval"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

func TestIncrementalBeatsPopularity(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	data := planted(1, 4, 25, 30, 15, 0.1)
	ease := scorer.NewEASE(testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda = 50 }))
	replay := eval.NewReplay(eval.ReplayConfig{
		Redis: rdb,
		// Production caps and weights; a slow decay as `recstream eval` uses.
		Store:      testopts.Store(func(o *store.Options) { o.Prefix, o.HalfLife, o.Epoch = "t:", 10*365*24*time.Hour, time.Time{} }),
		Partitions: 3, BatchSize: 500, EASE: ease,
	})
	only := func(u, i, tr, e float64) scorer.Options {
		return testopts.Scorer(func(o *scorer.Options) {
			o.WeightUserKNN = u
			o.WeightItemKNN = i
			o.WeightTrending = tr
			o.WeightEASE = e
		})
	}
	models := []eval.Model{
		eval.NewPopularity(),
		eval.NewIncremental("user-knn", replay, only(1, 0, 0, 0)),
		eval.NewIncremental("item-knn", replay, only(0, 1, 0, 0)),
		eval.NewIncremental("ease", replay, only(0, 0, 0, 1)),
		eval.NewIncremental("hybrid", replay, only(1, 1, 0.05, 1)),
	}
	rs, err := eval.LeaveOneOut(context.Background(), data, models, eval.Config{Ks: []int{10}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pop := rs[0].Metrics["hr@10"]
	for _, r := range rs[1:] {
		hr := r.Metrics["hr@10"]
		t.Logf("%s hr@10 %.3f ndcg@10 %.3f coverage@10 %.3f (popularity %.3f)", r.Model, hr, r.Metrics["ndcg@10"], r.Metrics["coverage@10"], pop)
		if hr < pop+0.2 {
			t.Errorf("%s hr@10 %.3f, popularity %.3f: want a margin of 0.2", r.Model, hr, pop)
		}
	}
	if ease.Items() == 0 {
		t.Error("ease model was never refreshed")
	}
	// Nothing outside the prefix was written.
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if len(k) < 2 || k[:2] != "t:" {
			t.Fatalf("key %q outside the prefix", k)
		}
	}
}

// TestIncrementalEqualsBatch replays a log whose caps do not bind and
// checks that the production user-kNN, item-kNN and EASE scores equal the
// batch references of the same definitions: binary user vectors (every
// event at the same time, so no decay), every co-occurring pair counted,
// every neighbour and every history item used, no recency boost, no
// shrinkage.
func TestIncrementalEqualsBatch(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	data := planted(3, 4, 15, 20, 12, 0.2)
	for i := range data {
		data[i].TS = 0
	}
	const big = 100000
	ease := scorer.NewEASE(testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.MaxItems, o.UserItems = 20, big, big }))
	replay := eval.NewReplay(eval.ReplayConfig{
		Redis: rdb,
		Store: testopts.Store(func(o *store.Options) {
			o.Prefix = "eq:"
			o.UserItemsCap = big
			o.UserLogCap = big
			o.ItemUsersCap = big
			o.CoocCap = big
			o.CoocHistory = big
			o.HalfLife = 24 * time.Hour
			o.Epoch = time.Time{} // zero: the replay starts it at the first event
		}),
		Partitions: 2, BatchSize: 100, EASE: ease,
	})
	opt := testopts.Scorer(func(o *scorer.Options) {
		o.Neighbours = big
		o.CandidateUsers = big
		o.UsersPerItem = big
		o.HistoryItems = big
		o.UserItems = big
		o.NeighbourItems = big
		o.ItemNeighbours = big
		o.WeightUserKNN = 1
		o.WeightItemKNN = 1
		o.WeightEASE = 1
		o.EASE = ease
	})
	inc := eval.NewIncremental("all", replay, opt)
	ctx := context.Background()
	if err := inc.Fit(ctx, data); err != nil {
		t.Fatal(err)
	}
	items := map[string]bool{}
	seen := map[string]map[string]bool{}
	for _, it := range data {
		items[it.Item] = true
		if seen[it.User] == nil {
			seen[it.User] = map[string]bool{}
		}
		seen[it.User][it.Item] = true
	}
	var cands []string
	for it := range items {
		cands = append(cands, it)
	}
	slices.Sort(cands)
	iknn := eval.NewBatchItemKNN(eval.ItemKNNConfig{Similarity: eval.SimCosine})
	uknn := eval.NewBatchUserKNN(eval.UserKNNConfig{Similarity: eval.SimCosine})
	bease := eval.NewEASE(eval.EASEConfig{Lambda: 20, Weighting: eval.Weighting{Binary: true}})
	for _, m := range []eval.Model{iknn, uknn, bease} {
		if err := m.Fit(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	sc := scorer.New(replay.Store(), opt)
	users := make([]string, 0, len(seen))
	for u := range seen {
		users = append(users, u)
	}
	slices.Sort(users)
	all, err := sc.Score(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for k, u := range users {
		us := all[k]
		for src, ref := range map[string]eval.Model{scorer.SourceItemKNN: iknn, scorer.SourceUserKNN: uknn, scorer.SourceEASE: bease} {
			want, err := ref.Score(ctx, u, cands)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range cands {
				if seen[u][it] {
					continue
				}
				var got float64
				if c := us.Candidate(it); c != nil {
					got = c.Sources.Of(src)
				}
				w := want[i]
				if src == scorer.SourceEASE && w < 0 {
					w = 0 // the scorer keeps positive EASE scores only
				}
				if math.IsInf(w, -1) {
					w = 0
				}
				tol := 1e-9
				if src == scorer.SourceEASE {
					tol = 1e-6 // the production model keeps B in float32
				}
				if math.Abs(got-w) > tol*math.Max(1, math.Abs(w)) {
					t.Fatalf("%s user %s item %s: incremental %.12g, batch %.12g", src, u, it, got, w)
				}
				if w != 0 {
					checked[src]++
				}
			}
		}
	}
	t.Logf("non-zero scores compared: %v", checked)
	for _, src := range []string{scorer.SourceItemKNN, scorer.SourceUserKNN, scorer.SourceEASE} {
		if checked[src] < 1000 {
			t.Errorf("%s: only %d non-zero scores compared", src, checked[src])
		}
	}
}
