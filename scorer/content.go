package scorer

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/store"
)

// Sources that need the catalog.
const (
	SourceContent = "content"
	SourceNew     = "new"
)

// Catalog is what the scorer needs of the item catalog; *catalog.Index
// satisfies it.
type Catalog interface {
	Get(id string) (catalog.Item, bool)
	Vector(id string) (map[string]float64, float64, bool)
	Available(id string) bool
	Category(id string) string
	Len() int
	Categories() []string
	InCategory(cat string, n int) []catalog.Item
	ByBrand(brand string, n int) []catalog.Item
}

var _ Catalog = (*catalog.Index)(nil)

// ContentOptions configures the content-based and new-arrival sources.
type ContentOptions struct {
	Categories int           // the profile's strongest categories whose items are candidates
	Brands     int           // the profile's strongest brands whose items are candidates
	PerGroup   int           // newest available items read per category or brand
	NewWindow  time.Duration // an item created less than this ago is a new arrival
}

func (o *ContentOptions) check() {
	bad := func(name string, v any) {
		panic(fmt.Sprintf("scorer.New: Options.Content.%s is %v; build the options with OptionsFromConfig", name, v))
	}
	switch {
	case o.Categories <= 0:
		bad("Categories", o.Categories)
	case o.Brands <= 0:
		bad("Brands", o.Brands)
	case o.PerGroup <= 0:
		bad("PerGroup", o.PerGroup)
	case o.NewWindow <= 0:
		bad("NewWindow", o.NewWindow)
	}
}

// ContentProfile is a user's attribute profile: Σ_j w_uj·f(j) over the
// items j of the user's (decayed, fenced) weight vector, with the weights
// normalised so that the strongest is 1.
type ContentProfile struct {
	Vector     map[string]float64
	Norm       float64
	Categories []store.Scored // leaf categories by Σ w_uj, strongest first
	Brands     []store.Scored // brands by Σ w_uj, strongest first
}

// Profile computes the content profile of a user's weighted items.
func Profile(cat Catalog, items []store.Scored) ContentProfile {
	p := ContentProfile{Vector: make(map[string]float64)}
	w := NormalisedVector(items)
	cats, brands := map[string]float64{}, map[string]float64{}
	for _, it := range items {
		f, _, ok := cat.Vector(it.ID)
		if !ok {
			continue
		}
		wj := w[it.ID]
		for k, v := range f {
			p.Vector[k] += wj * v
		}
		if a, ok := cat.Get(it.ID); ok {
			if a.Category != "" {
				cats[a.Category] += wj
			}
			if a.Brand != "" {
				brands[a.Brand] += wj
			}
		}
	}
	for _, v := range p.Vector {
		p.Norm += v * v
	}
	p.Norm = math.Sqrt(p.Norm)
	p.Categories, p.Brands = ranked(cats), ranked(brands)
	return p
}

func ranked(m map[string]float64) []store.Scored {
	out := make([]store.Scored, 0, len(m))
	for k, v := range m {
		out = append(out, store.Scored{ID: k, Score: v})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Score != out[b].Score {
			return out[a].Score > out[b].Score
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Similarity is the cosine between the profile and an item's attribute
// vector (0 for items not in the catalog).
func (p ContentProfile) Similarity(cat Catalog, item string) float64 {
	f, n, ok := cat.Vector(item)
	if !ok || n == 0 || p.Norm == 0 {
		return 0
	}
	dot := 0.0
	for k, v := range f {
		dot += p.Vector[k] * v
	}
	return dot / (n * p.Norm)
}

// content adds the content-based and new-arrival sources: candidates are
// the newest available items of the profile's strongest categories and
// brands plus every candidate the other sources found; each scores the
// cosine between profile and item. New arrivals (created within NewWindow)
// of those categories and brands score cosine·(1 − age/NewWindow).
func (s *Scorer) content(us *UserScores) {
	cat := s.opt.Catalog
	if cat == nil || len(us.Profile.Items) == 0 || (s.opt.WeightContent <= 0 && s.opt.WeightNew <= 0) {
		return
	}
	p := Profile(cat, us.Profile.Items)
	if p.Norm == 0 {
		return
	}
	co := s.opt.Content
	topBrand := map[string]bool{}
	cands := map[string]catalog.Item{}
	for k, c := range p.Categories {
		if k >= co.Categories {
			break
		}
		for _, it := range cat.InCategory(c.ID, co.PerGroup) {
			cands[it.ID] = it
		}
	}
	for k, b := range p.Brands {
		if k >= co.Brands {
			break
		}
		topBrand[b.ID] = true
		for _, it := range cat.ByBrand(b.ID, co.PerGroup) {
			cands[it.ID] = it
		}
	}
	for k := range us.len() {
		item := us.item(k)
		if _, ok := cands[item]; !ok {
			if it, ok := cat.Get(item); ok {
				cands[item] = it
			}
		}
	}
	now := s.opt.Now().UnixMilli()
	window := float64(co.NewWindow.Milliseconds())
	for id, it := range cands {
		sim := p.Similarity(cat, id)
		if sim <= 0 {
			continue
		}
		if s.opt.WeightContent > 0 {
			reason := "because you like " + it.Category
			if topBrand[it.Brand] {
				reason = "because you like " + it.Brand + " in " + it.Category
			}
			if it.Category == "" {
				reason = "because you like " + it.Brand
			}
			us.setReason(id, SourceContent, sim, reason)
		}
		if age := float64(now - it.CreatedAt); s.opt.WeightNew > 0 && it.CreatedAt > 0 && age >= 0 && age < window {
			reason := "new in " + it.Category
			if it.Brand != "" {
				reason += " from " + it.Brand
			}
			us.setReason(id, SourceNew, sim*(1-age/window), reason)
		}
	}
}

// contentOn reports whether the content source runs.
func (s *Scorer) contentOn() bool {
	return s.opt.Catalog != nil && s.opt.WeightContent > 0
}

// contentPopularity weighs each content score (the cosine between the
// user's attribute profile and the item) by the item's decayed popularity
// (its degree): among the items that match the user's attributes equally,
// the ones more users chose come first. Attributes alone order a genre's
// items by how many genres they share with the profile, whatever their
// merit; weighed so, content orders them as popularity within the user's
// categories does, refined by the attribute match.
func (s *Scorer) contentPopularity(us *UserScores, deg []float64) {
	if us.t == nil || !s.contentOn() {
		return
	}
	for k := range us.t.rows {
		r := &us.t.rows[k]
		if r.has&(1<<srcContent) != 0 {
			r.vals[srcContent] *= deg[r.id]
			if r.vals[srcContent] <= 0 {
				r.has &^= 1 << srcContent
			}
		}
	}
}

// trendingReason names the item's category when the catalog knows it.
func (s *Scorer) trendingReason(item string) string {
	if s.opt.Catalog != nil {
		if it, ok := s.opt.Catalog.Get(item); ok && it.Category != "" {
			return "trending in " + it.Category
		}
	}
	return "trending now"
}

// available reports whether the in-memory catalog allows the item.
func (s *Scorer) available(item string) bool {
	return s.opt.Catalog == nil || s.opt.Catalog.Available(item)
}

// checkAvailability reads, for the items that could make each user's top
// N, whether the stored catalog record marks them unavailable, so that no
// list written after a withdrawal is stored holds the item, even when this
// process's index has not caught up yet. One pipelined round trip for the
// whole batch. With an empty catalog (the score role starts scoring only
// once its index has loaded the topic) there is nothing to check.
func (s *Scorer) checkAvailability(ctx context.Context, scores []UserScores) error {
	if s.opt.Catalog == nil || s.opt.Catalog.Len() == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, us := range scores {
		out, _ := s.rankedPlaces(us, nil, 2*s.opt.TopN+10)
		for _, k := range out {
			set[us.item(int(k))] = true
		}
	}
	un, err := s.st.Unavailable(ctx, keys(set))
	if err != nil {
		return err
	}
	for i := range scores {
		scores[i].Unavailable = un
	}
	return nil
}

// indexLists records which users' lists hold which items. Lists are
// rewritten on every refresh with mostly the same items, so only the items
// that entered a list since this process last wrote it are recorded: the
// previous items of each user are kept in a bounded in-memory cache (a
// miss records every item, which is always correct).
func (s *Scorer) indexLists(ctx context.Context, lists []store.List) error {
	if s.opt.Catalog == nil || s.opt.Catalog.Len() == 0 {
		return nil
	}
	delta := make([]store.List, 0, len(lists))
	s.listMu.Lock()
	if s.listItems == nil || len(s.listItems) > 200000 {
		s.listItems = make(map[string]map[string]bool)
	}
	for _, l := range lists {
		if l.User == "" {
			continue
		}
		prev := s.listItems[l.User]
		cur := make(map[string]bool, len(l.Items))
		d := store.List{User: l.User, GeneratedAt: l.GeneratedAt}
		for _, it := range l.Items {
			cur[it.Item] = true
			if !prev[it.Item] {
				d.Items = append(d.Items, it)
			}
		}
		s.listItems[l.User] = cur
		if len(d.Items) > 0 {
			delta = append(delta, d)
		}
	}
	s.listMu.Unlock()
	if err := s.st.IndexListItems(ctx, delta, s.opt.ListTTL); err != nil {
		s.listMu.Lock()
		for _, l := range lists {
			delete(s.listItems, l.User) // record them in full next time
		}
		s.listMu.Unlock()
		return err
	}
	return nil
}

// categoryLists writes one anonymous list per category (every level of
// the path): the global trending items of that category, in trending order.
func (s *Scorer) categoryLists(ctx context.Context, tr []store.Scored) error {
	if s.opt.Catalog == nil || len(tr) == 0 {
		return nil
	}
	now := s.opt.Now().UnixMilli()
	lists := map[string]store.List{}
	for _, t := range tr {
		it, ok := s.opt.Catalog.Get(t.ID)
		if !ok || !it.Available {
			continue
		}
		for _, c := range catalog.Ancestors(it.Category) {
			l, ok := lists[c]
			if !ok {
				l = store.List{GeneratedAt: now, Model: "trending:" + c}
			}
			if len(l.Items) >= s.opt.TopN {
				continue
			}
			score := t.Score / tr[0].Score
			l.Items = append(l.Items, store.ListItem{Item: t.ID, Score: score, Source: SourceTrending, Reason: "trending in " + c})
			lists[c] = l
		}
	}
	if err := s.st.WriteCategoryLists(ctx, lists, s.opt.ListTTL); err != nil {
		return err
	}
	return s.newArrivalLists(ctx)
}

// newArrivalLists writes one anonymous list per category (every level of
// the path) holding its available items created within NewWindow, newest
// first, scored 1 − age/NewWindow. Categories without new items get none.
func (s *Scorer) newArrivalLists(ctx context.Context) error {
	if s.opt.Catalog == nil || s.opt.Catalog.Len() == 0 {
		return nil
	}
	now := s.opt.Now().UnixMilli()
	window := float64(s.opt.Content.NewWindow.Milliseconds())
	lists := map[string]store.List{}
	for _, c := range s.opt.Catalog.Categories() {
		var l store.List
		for _, it := range s.opt.Catalog.InCategory(c, s.opt.TopN) {
			age := float64(now - it.CreatedAt)
			if it.CreatedAt <= 0 || age < 0 || age >= window {
				break // newest first: the rest is older
			}
			reason := "new in " + c
			if it.Brand != "" {
				reason += " from " + it.Brand
			}
			l.Items = append(l.Items, store.ListItem{Item: it.ID, Score: 1 - age/window, Source: SourceNew, Reason: reason})
		}
		if len(l.Items) > 0 {
			l.GeneratedAt, l.Model = now, "new:"+c
			lists[c] = l
		}
	}
	return s.st.WriteNewArrivalLists(ctx, lists, s.opt.ListTTL)
}
