package scorer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// sparseStore holds a shop log where most users touch a few items: item
// pN is bought by N users (a popularity ladder), and user "fan" views
// a1 and a2, which only a few other users share.
func sparseStore(t *testing.T) *store.Store {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "r:" }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var ops []store.Op
	add := func(user, item string, typ event.Type) {
		ops = append(ops, store.Op{Offset: int64(len(ops)), User: user, Item: item, Type: typ, TS: start + int64(len(ops))*1000})
	}
	for n := 1; n <= 12; n++ {
		for u := 0; u < n; u++ {
			add(fmt.Sprintf("buyer%d", u), fmt.Sprintf("p%d", n), event.Browse)
		}
	}
	for u := 0; u < 3; u++ {
		add(fmt.Sprintf("other%d", u), "a1", event.Browse)
		add(fmt.Sprintf("other%d", u), "a3", event.Browse)
	}
	add("fan", "a1", event.Browse)
	add("fan", "a2", event.Click)
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	return st
}

// Rank gives every asked item a score: items a personal source proposes
// rank above the rest, the rest in order of popularity, an item no one
// touched last with score 0; and it agrees with Score's candidates.
func TestRankScoresEveryItem(t *testing.T) {
	st := sparseStore(t)
	ctx := context.Background()
	sc := scorer.New(st, testopts.Scorer(func(o *scorer.Options) {
		o.WeightItemKNN = 1
		o.WeightPopular = 0.05
		o.NeighbourTTL = -1
		o.DegreeTTL = -1
	}))
	items := []string{"p3", "nobody-touched", "p11", "a3", "p7", "p3"}
	got, err := sc.Rank(ctx, "fan", items)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, it := range got {
		order = append(order, it.Item)
	}
	want := []string{"a3", "p11", "p7", "p3", "nobody-touched"}
	if !slices.Equal(order, want) {
		t.Fatalf("ranked %v, want %v (%+v)", order, want, got)
	}
	if got[0].Source != scorer.SourceItemKNN || got[0].Reason != "because you viewed a1" {
		t.Errorf("a3: %+v, want item_knn because you viewed a1", got[0])
	}
	for _, it := range got[1:4] {
		if it.Source != scorer.SourcePopular || it.Reason != "popular" || it.Score <= 0 {
			t.Errorf("%s: %+v, want a popular score", it.Item, it)
		}
	}
	if last := got[4]; last.Score != 0 || last.Source != "" {
		t.Errorf("unknown item: %+v, want score 0 and no source", last)
	}
	// The scores are those of the candidates Score finds for the list.
	us, err := sc.Score(ctx, []string{"fan"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range got[:2] {
		c := us[0].Candidate(it.Item)
		if c == nil || !relClose(c.Score, it.Score) {
			t.Errorf("%s: Rank %v, Score's candidate %+v", it.Item, it.Score, c)
		}
	}
	// Popular scores follow the decayed distinct-user counts.
	deg, err := st.ItemDegrees(ctx, []string{"p11", "p7", "p3"})
	if err != nil {
		t.Fatal(err)
	}
	if r := got[2].Score / got[1].Score; !relClose(r, deg["p7"]/deg["p11"]) {
		t.Errorf("p7/p11 score ratio %v, degree ratio %v", r, deg["p7"]/deg["p11"])
	}
}

// A user with one item still gets a full list: the popular source fills
// it, and says so; with a catalog the reason names the category.
func TestPopularFillsLists(t *testing.T) {
	st := sparseStore(t)
	ctx := context.Background()
	for _, withCatalog := range []bool{false, true} {
		opt := testopts.Scorer(func(o *scorer.Options) {
			o.TopN = 8
			o.WeightItemKNN = 1
			o.WeightPopular = 0.05
			o.ExcludeSeen = true
			o.NeighbourTTL = -1
			o.DegreeTTL = -1
		})
		if withCatalog {
			idx := catalog.NewIndex()
			for n := 1; n <= 12; n++ {
				idx.Put(catalog.Item{ID: fmt.Sprintf("p%d", n), Category: "Games", Available: true})
			}
			for _, it := range []string{"a1", "a2", "a3"} {
				idx.Put(catalog.Item{ID: it, Category: "Books", Available: true})
			}
			opt.Catalog = idx
		}
		sc := scorer.New(st, opt)
		lists, err := sc.Recommend(ctx, []string{"fan"})
		if err != nil {
			t.Fatal(err)
		}
		l := lists[0]
		if len(l.Items) != 8 {
			t.Fatalf("catalog %v: %d items, want 8: %+v", withCatalog, len(l.Items), l.Items)
		}
		if l.Items[0].Item != "a3" {
			t.Errorf("catalog %v: first %+v, want a3 (item-kNN)", withCatalog, l.Items[0])
		}
		want := "popular"
		if withCatalog {
			want = "popular in Games"
		}
		for _, it := range l.Items[1:] {
			if it.Source != scorer.SourcePopular || it.Reason != want || !strings.HasPrefix(it.Item, "p") {
				t.Errorf("catalog %v: %+v, want a popular item with reason %q", withCatalog, it, want)
			}
		}
		if l.Items[1].Item != "p12" {
			t.Errorf("catalog %v: second %s, want the most popular p12", withCatalog, l.Items[1].Item)
		}
	}
}

// The demo case: a user who clicked i2, i7 and i12 and bought i2. Every
// reason names the interaction the user had with the item it cites, and
// an item the user bought is cited only as bought.
func TestReasonsNameTheInteraction(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "d:" }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var ops []store.Op
	add := func(user, item string, typ event.Type) {
		ops = append(ops, store.Op{Offset: int64(len(ops)), User: user, Item: item, Type: typ, TS: start + int64(len(ops))*1000})
	}
	for u := 0; u < 4; u++ {
		v := fmt.Sprintf("v%d", u)
		add(v, "i2", event.Browse)
		add(v, "i5", event.Browse)
		add(v, "i7", event.Browse)
		add(v, "i9", event.AddToCart)
	}
	add("demo", "i2", event.Click)
	add("demo", "i7", event.Click)
	add("demo", "i12", event.Click)
	add("demo", "i2", event.Purchase)
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	for _, exclude := range []bool{false, true} {
		sc := scorer.New(st, testopts.Scorer(func(o *scorer.Options) {
			o.WeightItemKNN = 1
			o.WeightUserKNN = 1
			o.WeightPopular = 0.05
			o.ExcludeSeen = exclude
			o.NeighbourTTL = -1
			o.DegreeTTL = -1
		}))
		lists, err := sc.Recommend(ctx, []string{"demo"})
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, it := range lists[0].Items {
			if it.Item == "i2" {
				t.Errorf("exclude_seen %v: the bought i2 is listed: %+v", exclude, it)
			}
			reasons[it.Reason] = true
			if strings.Contains(it.Reason, "i2") && it.Reason != "because you bought i2" {
				t.Errorf("exclude_seen %v: %s: reason %q cites the bought i2 without saying so", exclude, it.Item, it.Reason)
			}
			for _, wrong := range []string{"viewed i7", "viewed i12", "bought i7", "bought i12"} {
				if strings.Contains(it.Reason, wrong) {
					t.Errorf("exclude_seen %v: %s: reason %q (the user clicked i7 and i12)", exclude, it.Item, it.Reason)
				}
			}
		}
		if !reasons["because you bought i2"] {
			t.Errorf("exclude_seen %v: no reason cites the purchase of i2: %+v", exclude, lists[0].Items)
		}
	}
}

// The item-kNN depth: item_neighbours items of each seed's row at least,
// and a user with few seeds reads deeper, up to the budget shared among
// the seeds; a negative depth reads whole rows.
func TestItemNeighbourDepth(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "n:" }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var ops []store.Op
	add := func(user, item string) {
		ops = append(ops, store.Op{Offset: int64(len(ops)), User: user, Item: item, Type: event.Browse, TS: start + int64(len(ops))*1000})
	}
	// a1's row holds b1..b8 and a2, a2's row c1..c8 and a1 ("two" viewed
	// both last: a2 heads a1's row and a1 heads a2's, forward decay
	// weighing later co-occurrence more). Counted: the b and c candidates.
	for k := 1; k <= 8; k++ {
		for _, p := range []string{"a", "c"} {
			u := fmt.Sprintf("o%s%d", p, k)
			seed := map[string]string{"a": "a1", "c": "a2"}[p]
			add(u, seed)
			add(u, fmt.Sprintf("%s%d", map[string]string{"a": "b", "c": "c"}[p], k))
		}
	}
	add("one", "a1")
	add("two", "a1")
	add("two", "a2")
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	count := func(user string, n, budget int) int {
		sc := scorer.New(st, testopts.Scorer(func(o *scorer.Options) {
			o.WeightItemKNN = 1
			o.ItemNeighbours = n
			o.ItemNeighbourBudget = budget
			o.NeighbourTTL = -1
			o.DegreeTTL = -1
		}))
		us, err := sc.Score(ctx, []string{user})
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, x := range us[0].Candidates() {
			if _, ok := x.Sources.Get(scorer.SourceItemKNN); ok && (strings.HasPrefix(x.Item, "b") || strings.HasPrefix(x.Item, "c")) {
				c++
			}
		}
		return c
	}
	for _, tt := range []struct {
		user      string
		n, budget int
		want      int
	}{
		{"one", 2, 0, 1},   // depth 2: a2 and the strongest b
		{"one", 2, 6, 5},   // one seed: the budget of 6
		{"one", 2, 100, 8}, // the whole row
		{"two", 2, 6, 4},   // two seeds: 3 each
		{"two", 4, 6, 6},   // item_neighbours is the floor
		{"two", 0, 0, 16},  // whole rows
		{"two", -1, 0, 16}, // whole rows too
	} {
		if got := count(tt.user, tt.n, tt.budget); got != tt.want {
			t.Errorf("%s, item_neighbours %d, budget %d: %d co-occurring candidates, want %d", tt.user, tt.n, tt.budget, got, tt.want)
		}
	}
}
