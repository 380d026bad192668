package scorer

import (
	"sync"

	"github.com/recstream/recstream/store"
)

// chunkItems numbers the items one Score call meets (seeds, co-occurrence
// rows, neighbour vectors, trending, the users' own items) 0, 1, 2, …, so
// that the per-user work indexes slices instead of hashing item ids: the
// rows and vectors one chunk shares are numbered once, and each of the
// chunk's users then looks up, accumulates and collects candidates by
// number. The numbers mean nothing outside the call.
type chunkItems struct {
	ids   map[string]int32
	names []string
}

// newChunkItems returns an empty numbering with room for about hint items.
func newChunkItems(hint int) *chunkItems {
	return &chunkItems{ids: make(map[string]int32, hint), names: make([]string, 0, hint)}
}

// id returns item's number, giving it the next one when it has none.
func (c *chunkItems) id(item string) int32 {
	if id, ok := c.ids[item]; ok {
		return id
	}
	id := int32(len(c.names))
	c.ids[item] = id
	c.names = append(c.names, item)
	return id
}

// entry is an item by number with a score.
type entry struct {
	id    int32
	score float64
}

// entries numbers a sorted set read from the store.
func (c *chunkItems) entries(z []store.Scored) []entry {
	out := make([]entry, len(z))
	for i, x := range z {
		out[i] = entry{c.id(x.ID), x.Score}
	}
	return out
}

// scratch is one Score call's per-item working memory, indexed by the
// chunk's item numbers. Between users every slot is back to zero: each
// user's pass clears what it set (the candidates it made, the items it
// touched), so nothing is cleared in full per user.
type scratch struct {
	slot  []int32   // candidate of the current user: index+1 in UserScores.list, 0 none
	best  []float64 // item-kNN: the largest single contribution so far
	uval  []float64 // user-kNN: the user's normalised weight
	umark []bool    // user-kNN: the user has the item
	acc   []float64 // user-kNN: Σ sim·r over the neighbours
	amark []bool    // user-kNN: acc was touched
	order []int32   // user-kNN: items in the order first touched

	// by the call's user numbers
	shared []int32 // candidate neighbours: seeds shared with the user
	vorder []int32 // candidate neighbours in the order first met
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
	sc.best, sc.uval, sc.acc = grow(sc.best), grow(sc.uval), grow(sc.acc)
	sc.umark, sc.amark = growB(sc.umark), growB(sc.amark)
}

// fitUsers makes the per-user slices cover n user numbers.
func (sc *scratch) fitUsers(n int) {
	if n > len(sc.shared) {
		sc.shared = append(sc.shared, make([]int32, max(n, 2*len(sc.shared))-len(sc.shared))...)
	}
}
