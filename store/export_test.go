package store

// FailAfterUsers makes the next Apply return an error after its user phase,
// as a crash between the two phases would.
func (s *Store) FailAfterUsers() { s.failAfterUsers = true }

// SetFoldHook makes FoldCooc call f between reading the rows and writing
// their folds, as a slow process would.
func (s *Store) SetFoldHook(f func()) { s.foldHook = f }

// SetItemChunk sets how many item scripts ApplyItems sends per pipeline
// until the returned function restores it.
func SetItemChunk(n int) (restore func()) {
	old := itemChunk
	itemChunk = n
	return func() { itemChunk = old }
}

// OwnedSum is what the events of an ItemWork add to one item, for the
// item-owner benchmark.
type OwnedSum struct {
	Pop, Deg float64
	Row      map[string]float64
}

// TakeSums returns, per item, what every event of w adds to it, and
// empties w.
func (w *ItemWork) TakeSums() map[string]OwnedSum {
	order, touch := w.index()
	out := make(map[string]OwnedSum, len(order))
	for it, g := range w.sums(order, nil, touch) {
		s := OwnedSum{Pop: g.pop, Deg: g.deg}
		if len(g.co.ids) > 0 {
			s.Row = g.co.row(w.names).val
		}
		out[w.names[it]] = s
	}
	w.reset()
	return out
}

// EncodeRow returns the row entry of items, ranked highest first (a
// folded row, as readers sum it).
func EncodeRow(items []Scored) string { return encodeCoocRow(items) }

// Add adds an event's item half to w as ApplyUsers would, for the
// item-owner benchmark's in-memory user half.
func (w *ItemWork) Add(op Op, weight, decay float64, isNew bool, hist []string) {
	w.add(op, weight, decay, isNew, hist, nil)
}

// row returns the sums by name, in the order first met.
func (c *coSum) row(names []string) *coocRow {
	r := newCoocRowSized(len(c.ids))
	for k, id := range c.ids {
		r.add(names[id], c.vals[k])
	}
	return r
}

// FailBeforeTrending makes the next Flush return an error after the item
// writes, before trending is written, as a crash between them would.
func (o *ItemOwner) FailBeforeTrending() { o.failBeforeTrend = true }

// EncodeUserState encodes a user's state blob (userblob.go).
func EncodeUserState(weights, bought map[string]float64, log []string) []byte {
	return encodeUserBlob(weights, bought, log)
}

// SetHeap makes the memory checks of s read the given live heap, memory
// limit and collection count instead of the Go runtime's.
func (s *Store) SetHeap(live, limit, cycles uint64) {
	s.heap = func() heapReading { return heapReading{live: live, limit: limit, cycles: cycles} }
}
