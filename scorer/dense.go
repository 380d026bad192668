package scorer

import (
	"strings"
	"sync"

	"github.com/recstream/recstream/store"
)

// table numbers ids (items, or users) 0, 1, 2, … for as long as it lives,
// so that the per-user work indexes slices instead of hashing ids, and what
// is cached of other entities (co-occurrence rows, neighbour vectors, the
// recent users of items) is numbered once, when it is read, instead of in
// every Score call that uses it. Numbers only grow; a table is dropped with
// the caches that hold its numbers (see numbered).
type table struct {
	mu    sync.RWMutex
	ids   map[string]int32
	names []string
	keys  []uint64 // sortKey of each name, by number
}

func newTable() *table { return &table{ids: make(map[string]int32)} }

// number sets out[i] to the number of names[i], numbering the new ones:
// one read lock for them all, and the write lock only when some are new.
func (t *table) number(names []string, out []int32) {
	missing := false
	t.mu.RLock()
	for i, n := range names {
		id, ok := t.ids[n]
		if !ok {
			id, missing = -1, true
		}
		out[i] = id
	}
	t.mu.RUnlock()
	if !missing {
		return
	}
	t.mu.Lock()
	for i, n := range names {
		if out[i] >= 0 {
			continue
		}
		out[i] = t.numberLocked(n)
	}
	t.mu.Unlock()
}

// numberLocked returns name's number, numbering it when it has none; the
// caller holds the write lock.
func (t *table) numberLocked(name string) int32 {
	if id, ok := t.ids[name]; ok {
		return id
	}
	id := int32(len(t.names))
	t.ids[name] = id
	t.names = append(t.names, name)
	t.keys = append(t.keys, sortKey(name))
	return id
}

// sortKey is the first 8 bytes of name, big-endian, padded with zeros:
// names in order have keys in order (a shorter name's padding is the least
// byte), so two different keys order their names, and only equal keys
// need the names compared.
func sortKey(name string) uint64 {
	var k uint64
	for i := range 8 {
		k <<= 8
		if i < len(name) {
			k |= uint64(name[i])
		}
	}
	return k
}

// nameOrder orders numbers by their names: by sortKey, by name when the
// keys are equal. Ranking users by name compared strings, which was most
// of the work of picking candidate neighbours.
type nameOrder struct {
	names []string
	keys  []uint64
}

// compare returns -1, 0 or +1 as the name of a sorts before, with or after
// the name of b.
func (o nameOrder) compare(a, b int32) int {
	return o.compareKeyed(o.keys[a], o.keys[b], a, b)
}

// compareKeyed is compare with the sort keys of a and b (ka, kb) at hand.
func (o nameOrder) compareKeyed(ka, kb uint64, a, b int32) int {
	if ka != kb {
		if ka < kb {
			return -1
		}
		return 1
	}
	return strings.Compare(o.names[a], o.names[b])
}

// order returns the names and sort keys numbered so far, by number.
func (t *table) order() nameOrder {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return nameOrder{t.names, t.keys}
}

// id returns name's number, numbering it when it has none.
func (t *table) id(name string) int32 {
	if id := t.lookup(name); id >= 0 {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.numberLocked(name)
}

// lookup returns name's number, -1 when it has none.
func (t *table) lookup(name string) int32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id, ok := t.ids[name]; ok {
		return id
	}
	return -1
}

// snapshot returns the names numbered so far, by number. Names are only
// appended, so the slice stays valid while the table grows.
func (t *table) snapshot() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.names
}

// namesOf returns the names of numbers ids.
func (t *table) namesOf(ids []int32) []string {
	all := t.snapshot()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = all[id]
	}
	return out
}

func (t *table) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.names)
}

// defaultMaxNumbered is how many items (or users) a table numbers before
// it is replaced, with the caches that hold its numbers: it bounds the
// tables and the scratch slices indexed by item number (about 30 bytes per
// item and worker).
const defaultMaxNumbered = 1 << 18

// numbered is what the scorer keeps by number: the item and user tables
// and the caches whose values hold their numbers. A Score call works with
// the one current when it starts; when a table has grown past its bound
// the next call starts a new one, so that a cached value is never read with
// another table's numbers.
type numbered struct {
	items, users *table
	rows         *readCache[[]entry]          // co-occurrence rows, by item
	itemUsers    *readCache[[]int32]          // recent users of items, by item
	vectors      *readCache[*neighbourVector] // neighbour vectors, by user
	degrees      *readCache[float64]          // item degrees
	next         *readCache[[]nextEntry]      // next-item rows, by item
}

func newNumbered(opt Options) *numbered {
	return &numbered{items: newTable(), users: newTable(),
		rows:      newReadCache[[]entry](opt.NeighbourTTL, readCacheMax),
		itemUsers: newReadCache[[]int32](opt.NeighbourTTL, readCacheMax),
		vectors:   newReadCache[*neighbourVector](opt.NeighbourTTL, readCacheMax),
		degrees:   newReadCache[float64](opt.DegreeTTL, 500000),
		next:      newReadCache[[]nextEntry](opt.NeighbourTTL, readCacheMax)}
}

// callItems is one Score call's view of the item table: the names of the
// numbers it met, refreshed when it numbers a new item.
type callItems struct {
	t     *table
	names []string
}

// id returns item's number, numbering it when it has none.
func (c *callItems) id(item string) int32 {
	id := c.t.id(item)
	if int(id) >= len(c.names) {
		c.names = c.t.snapshot()
	}
	return id
}

// known returns id, a number of c.t, after making sure names covers it.
func (c *callItems) known(id int32) int32 {
	if int(id) >= len(c.names) {
		c.names = c.t.snapshot()
	}
	return id
}

// entry is an item by number with a score.
type entry struct {
	id    int32
	score float64
}

// numbers numbers the ids of a sorted set read from the store.
func (t *table) numbers(z []store.Scored) []int32 {
	ids := make([]int32, len(z))
	t.numberInto(z, func(i int) *int32 { return &ids[i] })
	return ids
}

// entries numbers a sorted set read from the store.
func (t *table) entries(z []store.Scored) []entry {
	out := make([]entry, len(z))
	for i, x := range z {
		out[i].score = x.Score
	}
	t.numberInto(z, func(i int) *int32 { return &out[i].id })
	return out
}

// numberInto writes the number of z[i].ID to *at(i) for every i, under
// one read lock when every id has a number, numbering the others under
// the write lock.
func (t *table) numberInto(z []store.Scored, at func(i int) *int32) {
	missing := false
	t.mu.RLock()
	for i, x := range z {
		id, ok := t.ids[x.ID]
		if !ok {
			id, missing = -1, true
		}
		*at(i) = id
	}
	t.mu.RUnlock()
	if missing {
		t.mu.Lock()
		for i := range z {
			if p := at(i); *p < 0 {
				*p = t.numberLocked(z[i].ID)
			}
		}
		t.mu.Unlock()
	}
}

// scratch is one Score call's per-item working memory, indexed by item
// number. Between users every slot is back to zero: each
// user's pass clears what it set (the candidates it made, the items it
// touched), so nothing is cleared in full per user.
type scratch struct {
	slot  []int32   // candidate of the current user: index+1 in UserScores.list, 0 none
	uval  []float64 // user-kNN: the user's normalised weight
	umark bitset    // user-kNN: the user has the item (tested for every neighbour entry: a bit each keeps it in cache)
	acc   []float64 // user-kNN: Σ sim·r over the neighbours
	amark []bool    // user-kNN: acc was touched
	order []int32   // user-kNN: items in the order first touched
	deg   []float64 // item-kNN: the degrees of the call's seeds and row items
	dmark []bool    // deg was set

	// by user number
	shared []int32            // candidate neighbours: seeds shared with the user
	vorder []int32            // candidate neighbours in the order first met
	cmark  []bool             // a candidate neighbour of some user of the call
	vecs   []*neighbourVector // the vectors of the call's candidate neighbours
	hist   []int32            // candidate neighbours per number of shared seeds

	touched float64 // user-kNN: what touching the vectors read (kept, so that the reads stay)
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// fit makes every slice cover n item numbers.
func (sc *scratch) fit(n int) {
	if n <= len(sc.slot) {
		return
	}
	n = max(n, 2*len(sc.slot))
	grow := func(s []float64) []float64 { return append(s, make([]float64, n-len(s))...) }
	growB := func(s []bool) []bool { return append(s, make([]bool, n-len(s))...) }
	sc.slot = append(sc.slot, make([]int32, n-len(sc.slot))...)
	sc.uval, sc.acc, sc.deg = grow(sc.uval), grow(sc.acc), grow(sc.deg)
	sc.amark, sc.dmark = growB(sc.amark), growB(sc.dmark)
	sc.umark = append(sc.umark, make(bitset, (n+63)/64-len(sc.umark))...)
}

// fitUsers makes the per-user slices cover n user numbers.
func (sc *scratch) fitUsers(n int) {
	if n > len(sc.shared) {
		sc.shared = append(sc.shared, make([]int32, max(n, 2*len(sc.shared))-len(sc.shared))...)
		sc.cmark = append(sc.cmark, make([]bool, len(sc.shared)-len(sc.cmark))...)
		sc.vecs = append(sc.vecs, make([]*neighbourVector, len(sc.shared)-len(sc.vecs))...)
	}
}

// bitset is a set of item numbers.
type bitset []uint64

func (b bitset) has(id int32) bool { return b[id>>6]&(1<<(id&63)) != 0 }
func (b bitset) add(id int32)      { b[id>>6] |= 1 << (id & 63) }
func (b bitset) remove(id int32)   { b[id>>6] &^= 1 << (id & 63) }
