package catalog

import (
	"math"
	"sort"
	"strconv"
	"sync"
)

// Feature weights of an item's attribute vector (see Features).
const (
	WeightCategory = 1.0 // the item's own category
	WeightParent   = 0.5 // each parent category
	WeightBrand    = 1.0
	WeightPrice    = 0.5 // the price band
	WeightTag      = 0.5 // each tag
)

// Features returns the sparse attribute vector of an item: "c:<path>" for
// its category and every parent, "b:<brand>", "p:<band>" and "t:<tag>".
func Features(it Item) map[string]float64 {
	f := make(map[string]float64, 6+len(it.Tags))
	for k, c := range Ancestors(it.Category) {
		w := WeightParent
		if k == 0 {
			w = WeightCategory
		}
		f["c:"+c] = w
	}
	if it.Brand != "" {
		f["b:"+it.Brand] = WeightBrand
	}
	if b := PriceBand(it.Price); b >= 0 {
		f["p:"+strconv.Itoa(b)] = WeightPrice
	}
	for _, t := range it.Tags {
		f["t:"+t] = WeightTag
	}
	return f
}

type entry struct {
	item  Item
	feats map[string]float64
	norm  float64
}

type group struct {
	ids    map[string]struct{}
	sorted []string // newest first, rebuilt when dirty
	dirty  bool
}

// Index is the in-memory catalog of one process: item attributes, items by
// category (every level of the path) and by brand, newest first, and
// availability. It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	items   map[string]*entry
	byCat   map[string]*group
	byBrand map[string]*group
	version uint64
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{items: make(map[string]*entry), byCat: make(map[string]*group), byBrand: make(map[string]*group)}
}

// Put inserts or replaces an item. Unavailable items stay in the index
// (their attributes still describe users' profiles) but are never returned
// as candidates.
func (x *Index) Put(it Item) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.version++
	if old, ok := x.items[it.ID]; ok {
		x.unlink(old.item)
	}
	f := Features(it)
	n := 0.0
	for _, v := range f {
		n += v * v
	}
	x.items[it.ID] = &entry{item: it, feats: f, norm: math.Sqrt(n)}
	if !it.Available {
		return
	}
	for _, c := range Ancestors(it.Category) {
		link(x.byCat, c, it.ID)
	}
	if it.Brand != "" {
		link(x.byBrand, it.Brand, it.ID)
	}
}

func (x *Index) unlink(it Item) {
	for _, c := range Ancestors(it.Category) {
		unlink(x.byCat, c, it.ID)
	}
	if it.Brand != "" {
		unlink(x.byBrand, it.Brand, it.ID)
	}
}

func link(m map[string]*group, k, id string) {
	g := m[k]
	if g == nil {
		g = &group{ids: make(map[string]struct{})}
		m[k] = g
	}
	g.ids[id] = struct{}{}
	g.dirty = true
}

func unlink(m map[string]*group, k, id string) {
	g := m[k]
	if g == nil {
		return
	}
	delete(g.ids, id)
	g.dirty = true
	if len(g.ids) == 0 {
		delete(m, k)
	}
}

// Get returns an item's attributes.
func (x *Index) Get(id string) (Item, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.items[id]
	if !ok {
		return Item{}, false
	}
	return e.item, true
}

// Vector returns an item's attribute vector and its Euclidean norm; ok is
// false for an item not in the catalog.
func (x *Index) Vector(id string) (f map[string]float64, norm float64, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.items[id]
	if !ok {
		return nil, 0, false
	}
	return e.feats, e.norm, true
}

// Available reports whether an item may be recommended: items missing from
// the catalog are available (the catalog is optional), items marked
// unavailable are not.
func (x *Index) Available(id string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.items[id]
	return !ok || e.item.Available
}

// Category returns the category path of an item ("" when unknown).
func (x *Index) Category(id string) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.items[id]; ok {
		return e.item.Category
	}
	return ""
}

// InCategory returns up to n available items of a category (any level of
// the path), newest first.
func (x *Index) InCategory(cat string, n int) []Item { return x.newest(x.byCat, cat, n) }

// ByBrand returns up to n available items of a brand, newest first.
func (x *Index) ByBrand(brand string, n int) []Item { return x.newest(x.byBrand, brand, n) }

func (x *Index) newest(m map[string]*group, k string, n int) []Item {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := m[k]
	if g == nil {
		return nil
	}
	if g.dirty {
		g.sorted = g.sorted[:0]
		for id := range g.ids {
			g.sorted = append(g.sorted, id)
		}
		sort.Slice(g.sorted, func(a, b int) bool {
			ta, tb := x.items[g.sorted[a]].item.CreatedAt, x.items[g.sorted[b]].item.CreatedAt
			if ta != tb {
				return ta > tb
			}
			return g.sorted[a] < g.sorted[b]
		})
		g.dirty = false
	}
	out := make([]Item, 0, min(n, len(g.sorted)))
	for _, id := range g.sorted {
		if len(out) >= n {
			break
		}
		out = append(out, x.items[id].item)
	}
	return out
}

// Categories returns every category path with at least one available item,
// sorted.
func (x *Index) Categories() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.byCat))
	for c := range x.byCat {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Len returns the number of items known (available or not).
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.items)
}

// Version increases on every Put.
func (x *Index) Version() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.version
}
