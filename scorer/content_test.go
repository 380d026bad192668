package scorer_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// catalogNow is the fixture's "now": the generated events of newFixture run
// from 2025-05-01 for n minutes.
var catalogNow = time.Date(2025, 5, 3, 0, 0, 0, 0, time.UTC)

// fixtureCatalog is the catalog consistent with newFixture's clusters.
func fixtureCatalog() (*catalog.Index, *loadgen.Generator) {
	g := loadgen.New(loadgen.Options{Users: 60, Items: 80, Seed: 3})
	idx := catalog.NewIndex()
	for _, it := range g.Catalog(catalogNow.Add(-30 * 24 * time.Hour)) {
		idx.Put(it)
	}
	return idx, g
}

func contentOpts(idx *catalog.Index) scorer.Options {
	o := wide("cosine")
	o.Catalog = idx
	o.WeightContent = 1
	o.WeightNew = 0.5
	o.NewSlots = 2
	o.WeightTrending = 0.05
	o.TrendingSize = 50
	o.Now = func() time.Time { return catalogNow }
	return o
}

// The content score of every candidate equals the cosine, computed from
// scratch, between Σ_j w_uj·f(j) over the user's stored weights and f(i),
// times the item's degree (its decayed distinct users).
func TestContentMatchesBruteForce(t *testing.T) {
	f := newFixture(t, 1500)
	idx, _ := fixtureCatalog()
	o := contentOpts(idx)
	o.WeightNew = 0
	sc := scorer.New(f.st, o)
	scores, err := sc.Score(context.Background(), f.users)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, us := range scores {
		w := f.vector(t, us.Profile.User)
		prof := map[string]float64{}
		for it, x := range w {
			c, _ := idx.Get(it)
			for k, v := range catalog.Features(c) {
				prof[k] += x * v
			}
		}
		for _, c := range us.Candidates() {
			id := c.Item
			got, ok := c.Sources.Get(scorer.SourceContent)
			if !ok {
				continue
			}
			it, _ := idx.Get(id)
			fi := catalog.Features(it)
			var dot, np, ni float64
			for k, v := range fi {
				dot += prof[k] * v
				ni += v * v
			}
			for _, v := range prof {
				np += v * v
			}
			deg, err := f.st.ItemDegrees(context.Background(), []string{id})
			if err != nil {
				t.Fatal(err)
			}
			want := dot / math.Sqrt(np*ni) * deg[id]
			if !relClose(got, want) {
				t.Fatalf("user %s item %s: content %v, brute force %v", us.Profile.User, id, got, want)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d content scores checked", checked)
	}
}

// A user with one event gets a personalised list at once (content and
// item-kNN, in that item's category); a user with none gets trending.
func TestColdStart(t *testing.T) {
	f := newFixture(t, 1500)
	idx, g := fixtureCatalog()
	ctx := context.Background()
	seed := g.ItemIn(2, 1)
	if _, err := f.st.Apply(ctx, 1, []store.Op{{Offset: 0, User: "newcomer", Item: seed, Type: event.Click, TS: catalogNow.UnixMilli()}}); err != nil {
		t.Fatal(err)
	}
	o := contentOpts(idx)
	o.TopN = 10
	sc := scorer.New(f.st, o)
	lists, err := sc.Recommend(ctx, []string{"newcomer", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	one, none := lists[0], lists[1]
	// Refresh stores only the list of a user with state: a user without
	// events reads the trending list (the web tier's fallback).
	written, err := sc.Refresh(ctx, []string{"newcomer", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 1 || written[0].User != "newcomer" {
		t.Fatalf("Refresh wrote %d lists, want the newcomer's only", len(written))
	}
	if len(one.Items) != 10 {
		t.Fatalf("one-event user: %d items", len(one.Items))
	}
	sources := map[string]int{}
	for _, it := range one.Items {
		sources[it.Source]++
		if g.Cluster(it.Item) != 2 {
			t.Errorf("one-event user: item %s (%s) outside the seed's cluster", it.Item, it.Reason)
		}
	}
	if sources[scorer.SourceContent]+sources[scorer.SourceItemKNN] < 8 {
		t.Errorf("one-event user: sources %v, want content and item-kNN to lead", sources)
	}
	if len(none.Items) == 0 {
		t.Fatal("user without events: empty list")
	}
	for _, it := range none.Items {
		if it.Source != scorer.SourceTrending || !strings.HasPrefix(it.Reason, "trending in c") {
			t.Fatalf("user without events: %+v, want trending with its category", it)
		}
	}
	t.Logf("one-event user: sources %v, first %+v", sources, one.Items[0])
}

// A brand-new item without interactions, in a user's favourite category
// and brand, is in the user's list after the next refresh.
func TestNewItemReachesMatchingUser(t *testing.T) {
	f := newFixture(t, 1500)
	idx, _ := fixtureCatalog()
	ctx := context.Background()
	o := contentOpts(idx)
	o.TopN = 10
	sc := scorer.New(f.st, o)
	user := f.users[0]
	prof, err := f.st.Profiles(ctx, []string{user}, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := scorer.Profile(idx, prof[0].Items)
	cat, brand := p.Categories[0].ID, p.Brands[0].ID
	before, err := sc.Refresh(ctx, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	idx.Put(catalog.Item{ID: "fresh", Category: cat, Brand: brand, Price: 20, Available: true, CreatedAt: catalogNow.Add(-time.Hour).UnixMilli()})
	for _, it := range before[0].Items {
		if it.Item == "fresh" {
			t.Fatal("new item listed before it existed")
		}
	}
	after, err := sc.Refresh(ctx, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range after[0].Items {
		if it.Item == "fresh" {
			t.Logf("new item in %s from %s: %+v", cat, brand, it)
			if !strings.Contains(it.Reason, cat) {
				t.Errorf("reason %q does not name the category %s", it.Reason, cat)
			}
			return
		}
	}
	t.Fatalf("new item in the user's favourite category %s and brand %s not listed: %+v", cat, brand, after[0].Items)
}

// At most MaxPerCategory items of one category in every list; without the
// cap the same lists exceed it.
func TestDiversityCap(t *testing.T) {
	f := newFixture(t, 1500)
	idx, _ := fixtureCatalog()
	ctx := context.Background()
	worst := func(maxPer int) int {
		o := contentOpts(idx)
		o.TopN = 12
		o.MaxPerCategory = maxPer
		lists, err := scorer.New(f.st, o).Recommend(ctx, f.users)
		if err != nil {
			t.Fatal(err)
		}
		w := 0
		for _, l := range lists {
			per := map[string]int{}
			for _, it := range l.Items {
				c := idx.Category(it.Item)
				per[c]++
				w = max(w, per[c])
			}
			if maxPer > 0 && len(l.Items) < 9 {
				t.Errorf("user %s: only %d items with the cap", l.User, len(l.Items))
			}
		}
		return w
	}
	if w := worst(0); w <= 3 {
		t.Fatalf("without a cap the most items of one category is %d; the test needs more than 3", w)
	}
	if w := worst(3); w > 3 {
		t.Fatalf("with max_per_category 3 a list holds %d items of one category", w)
	}
}

// An item withdrawn in the stored catalog is never listed, even while this
// process's index still marks it available; one withdrawn in the index is
// not listed either.
func TestUnavailableNeverListed(t *testing.T) {
	f := newFixture(t, 1500)
	idx, _ := fixtureCatalog()
	ctx := context.Background()
	o := contentOpts(idx)
	o.TopN = 10
	sc := scorer.New(f.st, o)
	lists, err := sc.Refresh(ctx, f.users)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, l := range lists {
		for _, it := range l.Items {
			count[it.Item]++
		}
	}
	var a, b string
	for it, n := range count {
		if a == "" || n > count[a] || (n == count[a] && it < a) {
			a = it
		}
	}
	for it, n := range count {
		if it != a && (b == "" || n > count[b] || (n == count[b] && it < b)) {
			b = it
		}
	}
	// a: withdrawn in Redis only.
	ia, _ := idx.Get(a)
	if _, err := f.st.WriteCatalog(ctx, 0, []store.CatalogRecord{{Offset: 1, Item: a, Category: ia.Category, Brand: ia.Brand, Available: false}}); err != nil {
		t.Fatal(err)
	}
	// b: withdrawn in the index only.
	ib, _ := idx.Get(b)
	ib.Available = false
	idx.Put(ib)
	// The item -> lists index names every user whose list held them.
	holders, err := f.st.ListHolders(ctx, a, 0)
	if err != nil || len(holders) != count[a] {
		t.Fatalf("holders of %s: %d (%v), want %d", a, len(holders), err, count[a])
	}
	lists, err = sc.Refresh(ctx, f.users)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		for _, it := range l.Items {
			if it.Item == a || it.Item == b {
				t.Fatalf("user %s: withdrawn item %s listed", l.User, it.Item)
			}
		}
		if len(l.Items) != 10 {
			t.Fatalf("user %s: %d items", l.User, len(l.Items))
		}
	}
	tl, err := sc.RefreshTrending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range tl.Items {
		if it.Item == a || it.Item == b {
			// The trending list filters with the index only; a is still
			// available there.
			if it.Item == b {
				t.Fatalf("trending list holds %s withdrawn in the index", b)
			}
		}
	}
	t.Logf("withdrew %s (in %d lists) and %s (in %d lists)", a, count[a], b, count[b])
}

// RefreshTrending writes one anonymous list per category, each holding
// only items of that category, in global trending order.
func TestCategoryTrendingLists(t *testing.T) {
	f := newFixture(t, 1500)
	idx, _ := fixtureCatalog()
	ctx := context.Background()
	o := contentOpts(idx)
	o.TopN = 5
	o.TrendingSize = 80
	sc := scorer.New(f.st, o)
	for k, age := range []time.Duration{2 * time.Hour, time.Hour, 10 * 24 * time.Hour} {
		idx.Put(catalog.Item{ID: "n" + strconv.Itoa(k), Category: "c2/s1", Brand: "b2-9", Available: true, CreatedAt: catalogNow.Add(-age).UnixMilli()})
	}
	if _, err := sc.RefreshTrending(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cat := range []string{"c2", "c2/s1"} {
		l, found, err := f.st.ReadNewArrivalList(ctx, cat)
		if err != nil || !found || len(l.Items) != 2 || l.Items[0].Item != "n1" || l.Items[1].Item != "n0" ||
			l.Items[0].Reason != "new in "+cat+" from b2-9" || !(l.Items[0].Score > l.Items[1].Score) {
			t.Fatalf("new arrivals of %s: %+v found %v err %v", cat, l, found, err)
		}
	}
	if _, found, _ := f.st.ReadNewArrivalList(ctx, "c3"); found {
		t.Fatal("a new-arrivals list for a category without new items")
	}
	tr, _ := f.st.TopTrending(ctx, 80)
	for _, cat := range []string{"c1", "c3/s0"} {
		l, found, err := f.st.ReadCategoryList(ctx, cat)
		if err != nil || !found || len(l.Items) != 5 {
			t.Fatalf("category %s: %+v found %v err %v", cat, l, found, err)
		}
		var want []string
		for _, x := range tr {
			if c := idx.Category(x.ID); c == cat || strings.HasPrefix(c, cat+"/") {
				want = append(want, x.ID)
			}
		}
		for i, it := range l.Items {
			if it.Item != want[i] || it.Reason != "trending in "+cat {
				t.Fatalf("category %s item %d: %+v, want %s", cat, i, it, want[i])
			}
		}
	}
}

// Users are assigned deterministically by salted hash; changing the
// shares moves only the users in the moved share; lists carry the variant
// and metrics count per variant.
func TestVariants(t *testing.T) {
	f := newFixture(t, 1500)
	idx, _ := fixtureCatalog()
	o := contentOpts(idx)
	mk := func(shareA, shareB float64, reg prometheus.Registerer) *scorer.Variants {
		ob := o
		ob.WeightContent, ob.WeightItemKNN = 3, 0.2
		v, err := scorer.NewVariants("salt1", []scorer.Variant{
			{Name: "control", Share: shareA, Scorer: scorer.New(f.st, o)},
			{Name: "content", Share: shareB, Scorer: scorer.New(f.st, ob)},
		}, reg)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v1, v2 := mk(50, 50, nil), mk(40, 60, nil)
	moved, toContent := 0, 0
	const n = 20000
	for i := 0; i < n; i++ {
		u := loadgen.UserID(i)
		a, b := v1.Assign(u), v2.Assign(u)
		if a != mk(50, 50, nil).Assign(u) && i < 50 {
			t.Fatal("assignment not deterministic")
		}
		if a == "content" {
			toContent++
		}
		if a != b {
			moved++
			if a != "control" || b != "content" {
				t.Fatalf("user %s moved from %s to %s", u, a, b)
			}
			if bk := scorer.Bucket("salt1", u); bk < 4000 || bk >= 5000 {
				t.Fatalf("user %s in bucket %d moved", u, bk)
			}
		}
	}
	if frac := float64(moved) / n; frac < 0.09 || frac > 0.11 {
		t.Fatalf("%.3f of users moved, want about 0.10", frac)
	}
	if frac := float64(toContent) / n; frac < 0.48 || frac > 0.52 {
		t.Fatalf("%.3f of users in the 50%% variant", frac)
	}
	reg := prometheus.NewRegistry()
	v := mk(50, 50, reg)
	lists, err := v.Refresh(context.Background(), f.users)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, l := range lists {
		if l.Variant != v.Assign(l.User) {
			t.Fatalf("user %s: list variant %q, assigned %q", l.User, l.Variant, v.Assign(l.User))
		}
		stored, _, _ := f.st.ReadList(context.Background(), l.User)
		if stored.Variant != l.Variant {
			t.Fatalf("stored variant %q", stored.Variant)
		}
		per[l.Variant]++
	}
	for name, c := range per {
		got := testutil.ToFloat64(vecCounter(t, reg, name))
		if int(got) != c {
			t.Fatalf("variant %s: metric %v, lists %d", name, got, c)
		}
	}
	if len(per) != 2 {
		t.Fatalf("variants used: %v", per)
	}
	t.Logf("moved %d of %d users (shares 50/50 -> 40/60); lists per variant %v", moved, n, per)
}

func vecCounter(t *testing.T, reg *prometheus.Registry, variant string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "recstream_variant_lists_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == variant {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("no metric for variant %s", variant)
	return nil
}
