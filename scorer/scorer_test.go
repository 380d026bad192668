package scorer_test

import (
	"context"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

var _ scorer.Store = (*store.Store)(nil)

// fixture loads a generated log into a real Redis through the store's write
// path, with caps that do not bind, and keeps the raw events for the
// brute-force references.
type fixture struct {
	st    *store.Store
	rdb   *redis.Client
	users []string
}

func newFixture(t *testing.T, n int) *fixture {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) {
		o.Prefix = "s:"
		o.UserItemsCap = 100000
		o.UserLogCap = 100000
		o.ItemUsersCap = 100000
		o.CoocCap = 100000
		o.CoocHistory = 100000
		o.TrendingCap = 100000
	}))
	g := loadgen.New(loadgen.Options{Users: 60, Items: 80, Seed: 3, Start: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Step: time.Minute})
	var ops []store.Op
	seen := map[string]bool{}
	var users []string
	for i := 0; i < n; i++ {
		ev := g.Next()
		ops = append(ops, store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS})
		if !seen[ev.UserID] {
			seen[ev.UserID] = true
			users = append(users, ev.UserID)
		}
	}
	if _, err := st.Apply(context.Background(), 0, ops); err != nil {
		t.Fatal(err)
	}
	sort.Strings(users)
	return &fixture{st: st, rdb: rdb, users: users}
}

func (f *fixture) vector(t *testing.T, u string) map[string]float64 {
	return scorer.NormalisedVector(f.state(t, u).Weights)
}

// state reads u's state blob.
func (f *fixture) state(t *testing.T, u string) store.UserState {
	b, err := f.rdb.Get(context.Background(), f.st.Keys().UserState(u)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.DecodeUserState(b)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func relClose(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1e-12, math.Max(math.Abs(a), math.Abs(b)))
}

func wide(sim string) scorer.Options {
	return testopts.Scorer(func(o *scorer.Options) {
		o.Neighbours = 10
		o.CandidateUsers = 100000
		o.UsersPerItem = 100000
		o.HistoryItems = 100000
		o.UserItems = 100000
		o.NeighbourItems = 100000
		o.ItemNeighbours = 100000
		o.UserSimilarity = sim
		o.ItemSimilarity = sim
		o.WeightUserKNN = 1
		o.WeightItemKNN = 1
		o.TrendingSize = 1
	})
}

// The user-kNN scores equal a brute-force computation over every user.
func TestUserKNNMatchesBruteForce(t *testing.T) {
	f := newFixture(t, 1500)
	for _, sim := range []string{"cosine", "pearson"} {
		t.Run(sim, func(t *testing.T) {
			sc := scorer.New(f.st, wide(sim))
			got, err := sc.Score(context.Background(), f.users)
			if err != nil {
				t.Fatal(err)
			}
			vecs := map[string]map[string]float64{}
			for _, u := range f.users {
				vecs[u] = f.vector(t, u)
			}
			for k, u := range f.users {
				type nb struct {
					v   string
					sim float64
				}
				var nbs []nb
				for _, v := range f.users {
					if v == u {
						continue
					}
					var s float64
					if sim == "pearson" {
						s = scorer.Pearson(vecs[u], vecs[v])
					} else {
						s = scorer.Cosine(vecs[u], vecs[v])
					}
					if s > 0 {
						nbs = append(nbs, nb{v, s})
					}
				}
				sort.Slice(nbs, func(a, b int) bool {
					if nbs[a].sim != nbs[b].sim {
						return nbs[a].sim > nbs[b].sim
					}
					return nbs[a].v < nbs[b].v
				})
				nbs = nbs[:min(10, len(nbs))]
				want := map[string]float64{}
				var den float64
				for _, n := range nbs {
					den += n.sim
					for it, r := range vecs[n.v] {
						want[it] += n.sim * r
					}
				}
				for it := range want {
					want[it] /= den
				}
				n := 0
				for _, c := range got[k].Candidates() {
					it := c.Item
					if v, ok := c.Sources.Get(scorer.SourceUserKNN); ok {
						n++
						if !relClose(v, want[it]) {
							t.Fatalf("user %s item %s: user_knn %v, want %v", u, it, v, want[it])
						}
					}
				}
				if n != len(want) {
					t.Fatalf("user %s: %d user_knn candidates, want %d", u, n, len(want))
				}
			}
		})
	}
}

// The item-kNN scores equal a brute-force computation from the raw
// co-occurrence and degrees.
func TestItemKNNMatchesBruteForce(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	for _, sim := range []string{"cosine", "jaccard", "lift"} {
		t.Run(sim, func(t *testing.T) {
			sc := scorer.New(f.st, wide(sim))
			got, err := sc.Score(ctx, f.users)
			if err != nil {
				t.Fatal(err)
			}
			deg := func(it string) float64 {
				v, _ := strconv.ParseFloat(f.rdb.HGet(ctx, f.st.Keys().ItemMeta(it), "n").Val(), 64)
				return v
			}
			for k, u := range f.users {
				vec := f.vector(t, u)
				want := map[string]float64{}
				for j, a := range vec {
					// The whole row (the scorer reads the top wide() gives).
					rows, err := f.st.ItemNeighbours(ctx, []string{j}, 0)
					if err != nil {
						t.Fatal(err)
					}
					for _, z := range rows[j] {
						want[z.ID] += scorer.ItemSimilarity(sim, z.Score, deg(z.ID), deg(j), 0) * a
					}
				}
				n := 0
				for _, c := range got[k].Candidates() {
					it := c.Item
					if v, ok := c.Sources.Get(scorer.SourceItemKNN); ok {
						n++
						if !relClose(v, want[it]) {
							t.Fatalf("user %s item %s: item_knn %v, want %v", u, it, v, want[it])
						}
					}
				}
				if n != len(want) {
					t.Fatalf("user %s: %d item_knn candidates, want %d", u, n, len(want))
				}
			}
		})
	}
}

// Lists exclude purchases, carry reasons and are blended per source.
func TestRecommendExcludesPurchasesAndExplains(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	opt := wide("cosine")
	opt.WeightTrending = 0.1
	opt.TrendingSize = 50
	opt.TopN = 15
	sc := scorer.New(f.st, opt)
	lists, err := sc.Refresh(ctx, f.users)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		var bought []string
		for _, b := range f.state(t, l.User).Purchased {
			bought = append(bought, b.ID)
		}
		if len(l.Items) == 0 {
			t.Fatalf("user %s: empty list", l.User)
		}
		for i, it := range l.Items {
			for _, b := range bought {
				if it.Item == b {
					t.Fatalf("user %s: purchased item %s listed", l.User, b)
				}
			}
			if it.Reason == "" || it.Source == "" {
				t.Fatalf("user %s item %s: no reason", l.User, it.Item)
			}
			if i > 0 && it.Score > l.Items[i-1].Score {
				t.Fatalf("user %s: list not sorted", l.User)
			}
		}
		stored, found, err := f.st.ReadList(ctx, l.User)
		if err != nil || !found || len(stored.Items) != len(l.Items) || stored.Model != "hybrid-v1" {
			t.Fatalf("user %s: stored list %+v found %v err %v", l.User, stored, found, err)
		}
	}
	tl, err := sc.RefreshTrending(ctx)
	if err != nil || len(tl.Items) == 0 {
		t.Fatalf("trending list %+v err %v", tl, err)
	}
}

func TestSeedsBoostRecentItems(t *testing.T) {
	sc := scorer.New(nil, testopts.Scorer(func(o *scorer.Options) { testopts.Hybrid(o); o.HistoryItems, o.RecencyBoost = 2, 2 }))
	p := store.Profile{
		Items:  []store.Scored{{ID: "a", Score: 8}, {ID: "b", Score: 4}, {ID: "c", Score: 2}, {ID: "d", Score: 1}},
		Recent: []string{"d", "b", "gone"},
	}
	got := sc.Seeds(p)
	want := []store.Scored{{ID: "a", Score: 1}, {ID: "b", Score: 0.5 * (1 + 2*0.7)}, {ID: "d", Score: 0.125 * 3}}
	if len(got) != len(want) {
		t.Fatalf("seeds %v, want %v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || !relClose(got[i].Score, want[i].Score) {
			t.Fatalf("seeds %v, want %v", got, want)
		}
	}
	// scorer.recent_events 0: the strongest items only (the store still
	// reads one event, for the time of the latest).
	none := scorer.New(nil, testopts.Scorer(func(o *scorer.Options) {
		testopts.Hybrid(o)
		o.HistoryItems, o.RecencyBoost, o.RecentEvents = 2, 2, 0
	}))
	if got, want := none.Seeds(p), []store.Scored{{ID: "a", Score: 1}, {ID: "b", Score: 0.5}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("recent_events 0: seeds %v, want %v", got, want)
	}
}

// When its item or user numbering grows past its bound, the scorer starts
// a new one with empty caches: the lists are still those of a scorer that
// never did, call after call.
func TestNewNumberingKeepsLists(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	opt := wide("cosine")
	opt.WeightTrending, opt.TrendingSize, opt.TopN = 0.1, 50, 15
	want, err := scorer.New(f.st, opt).Recommend(ctx, f.users)
	if err != nil {
		t.Fatal(err)
	}
	sc := scorer.New(f.st, opt)
	scorer.SetMaxNumbered(sc, 10)
	numberings := map[any]bool{}
	for round := range 2 {
		var got []store.List
		for i := 0; i < len(f.users); i += 7 {
			numberings[scorer.Numbering(sc)] = true
			l, err := sc.Recommend(ctx, f.users[i:min(i+7, len(f.users))])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, l...)
		}
		for k := range want {
			if !reflect.DeepEqual(got[k].Items, want[k].Items) {
				t.Fatalf("round %d, user %s:\n got %+v\nwant %+v", round, want[k].User, got[k].Items, want[k].Items)
			}
		}
	}
	if len(numberings) < 3 {
		t.Fatalf("%d numberings used; the bound of 10 should have replaced it in every call", len(numberings))
	}
}

// With ExcludeSeen a list holds none of the user's own items: it is the
// list without the option, own items taken out, the best of the rest.
func TestExcludeSeen(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	long, err := scorer.New(f.st, testopts.Scorer(func(o *scorer.Options) { testopts.Hybrid(o); o.TopN = 1000 })).Recommend(ctx, f.users)
	if err != nil {
		t.Fatal(err)
	}
	got, err := scorer.New(f.st, testopts.Scorer(func(o *scorer.Options) { testopts.Hybrid(o); o.TopN, o.ExcludeSeen = 10, true })).Recommend(ctx, f.users)
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := f.st.Profiles(ctx, f.users, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for k, p := range profiles {
		own := map[string]bool{}
		for _, it := range p.Items {
			own[it.ID] = true
		}
		var want []string
		for i, it := range long[k].Items {
			if own[it.Item] {
				if i < 10 {
					dropped++
				}
				continue
			}
			if len(want) < 10 {
				want = append(want, it.Item)
			}
		}
		var have []string
		for _, it := range got[k].Items {
			have = append(have, it.Item)
		}
		if !slices.Equal(have, want) {
			t.Fatalf("user %s: list %v, want %v", p.User, have, want)
		}
	}
	if dropped == 0 {
		t.Fatal("no own item in any list without ExcludeSeen: the test checks nothing")
	}
}
