package store

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/topk"
)

// An item's co-occurrence row is a list of entries ({i:<id>}:cl), folded
// in order by whoever reads it: first, optionally, the row folded so far
// ('s'), then deltas ('d', the summed contributions of a source
// partition's offsets), per-event entries ('c', written by versions before
// deltas, still read) and erasures ('e'); entry.go has their formats.
//
// item.lua appends the sum of a batch's contributions to the row as one
// entry (fenced per source partition, so each once) instead of updating a
// sorted set: Redis then does no arithmetic and parses no number per pair,
// which was most of its work per event. A list
// that grows past Options.CoocFold entries is folded by the processor that
// saw it grow: it reads the list, folds it into one row entry trimmed to
// the cap, and replaces the entries it folded with it (lua/cooc_fold.lua),
// only if they are still the list's first.

var (
	//go:embed lua/cooc_fold.lua
	coocFoldLua    string
	coocFoldScript = redis.NewScript(coocFoldLua)
)

// coocRow is a folded row: values by item, and the items in the order
// they were first met (so that ties and output do not depend on map order).
type coocRow struct {
	val   map[string]float64
	order []string
	// erased is set once an erasure removed an item: order may then hold
	// an item twice (removed, then met again).
	erased bool
}

// newCoocRowSized returns an empty row with room for n items.
func newCoocRowSized(n int) *coocRow {
	return &coocRow{val: make(map[string]float64, n), order: make([]string, 0, n)}
}

func (r *coocRow) add(item string, d float64) {
	v, ok := r.val[item]
	if !ok {
		r.order = append(r.order, item)
	}
	r.val[item] = v + d
}

// foldCooc folds a row's entries, in order. A malformed entry (only a bug
// or a hand edit makes one) is left out: err tells the first, bad how many.
// Blocking the row's readers and writers on it would stop ingest or
// scoring; the next fold of the row drops it.
func foldCooc(entries []string) (r *coocRow, bad int, err error) {
	// Room for the binary entries' pairs, counted first.
	n, most := 0, 0
	for _, e := range entries {
		k := countPairs(e)
		n += k
		most = max(most, k)
	}
	r = newCoocRowSized(n)
	w := rowWorkPool.Get().(*rowWork)
	defer w.put()
	buf := slices.Grow(w.pairs[:0], most)
	for i, e := range entries {
		var eerr error
		if buf, eerr = r.fold(i, e, buf[:0]); eerr != nil {
			bad++
			if err == nil {
				err = eerr
			}
		}
	}
	w.pairs = buf // cleared by put
	return r, bad, err
}

// fold applies entry i of a row, or nothing when it is malformed; buf is
// room for a binary entry's pairs, returned for the next entry.
func (r *coocRow) fold(i int, e string, buf []Scored) ([]Scored, error) {
	switch entryKind(e) {
	case 0:
		return buf, errors.New("empty co-occurrence entry")
	case rowFolded, rowDelta:
		var err error
		if e[0] == rowFolded {
			if i != 0 {
				return buf, errors.New("co-occurrence row entry not first")
			}
			buf, err = parseFolded(e, buf)
		} else {
			var d rowDeltaEntry
			d, err = parseDelta(e, buf)
			buf = d.Pairs
		}
		if err != nil {
			return buf, err // checked whole first, so that a malformed entry adds nothing
		}
		for _, p := range buf {
			r.add(p.ID, p.Score)
		}
	case rowEvent:
		c, err := parseEvent(e, nil)
		if err != nil {
			return buf, err
		}
		for _, it := range c.Items {
			r.add(it, c.Value)
		}
	case rowErasure:
		x, err := parseErasure(e, nil)
		if err != nil {
			return buf, err
		}
		r.erased = true
		for _, sub := range x.Pairs {
			if cur, ok := r.val[sub.ID]; ok {
				if v := cur - sub.Score; v <= 1e-9*cur {
					delete(r.val, sub.ID) // as if it never co-occurred
				} else {
					r.val[sub.ID] = v
				}
			}
		}
	default:
		return buf, fmt.Errorf("unknown co-occurrence entry %.40q", e)
	}
	return buf, nil
}

// top returns the row's n highest items (all when n <= 0), highest first;
// equal values in reverse name order, as ZREVRANGE orders them. It
// consumes r.
func (r *coocRow) top(n int) []Scored {
	out := make([]Scored, 0, len(r.val))
	for _, it := range r.order {
		if v, ok := r.val[it]; ok {
			out = append(out, Scored{ID: it, Score: v})
			if r.erased {
				delete(r.val, it) // an item met twice (erased, then again) once
			}
		}
	}
	if n <= 0 {
		n = len(out)
	}
	// A reader wants the top 50 of rows of 200 and more: a bounded heap,
	// not a sort of the whole row.
	return topk.Best(out, n, byRank)
}

// byRank orders a row's items as top does: value descending, equal
// values by name descending (ZREVRANGE's order).
func byRank(a, b Scored) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// rowTop returns the n highest items of a row's entries without folding
// the whole row, when the entries are a folded entry (ranked, as folding
// writes it) followed by delta entries only, all well formed; ok is false
// otherwise (erasures, old per-event entries, a malformed or unranked
// entry, n <= 0), and the row has to be folded. (An item named twice in
// the folded entry, which folding never writes, is not looked for unless
// a delta names it.)
//
// Contributions only add, so an item no delta names keeps its place in
// the folded entry: the n highest of the row are among the first n such
// items and the items the deltas name. Those are summed in the order
// foldCooc sums them (the folded value first, then each delta in order),
// so values are the same to the bit, and ranked as top ranks them.
func rowTop(entries []string, n int) ([]Scored, bool) {
	if n <= 0 || len(entries) == 0 {
		return nil, false
	}
	w := rowWorkPool.Get().(*rowWork)
	defer w.put()
	var folded string
	deltas := entries
	if entryKind(entries[0]) == rowFolded {
		folded, deltas = entries[0], entries[1:]
	}
	// The items the deltas name, each with a slot for its sum, and the
	// deltas' pairs in order by slot.
	for _, e := range deltas {
		if entryKind(e) != rowDelta {
			return nil, false
		}
		d, err := parseDelta(e, w.pairs)
		if err != nil {
			return nil, false // malformed: nothing is answered before the end
		}
		w.pairs = d.Pairs
	}
	for _, p := range w.pairs {
		k, seen := w.at[p.ID]
		if !seen {
			k = int32(len(w.named))
			w.at[p.ID] = k
			w.named = append(w.named, Scored{ID: p.ID})
			w.inFolded = append(w.inFolded, false)
		}
		w.adds = append(w.adds, rowAdd{k, p.Score})
	}
	// The first n items of the folded entry the deltas do not name, ranked;
	// the folded values of those they name. (Its pairs are read in place:
	// most of a row is its folded entry.)
	out, named := w.out, w.named
	var prev Scored
	for i, body := 0, strings.TrimPrefix(folded, string(rowFolded)); len(body) > 0; i++ {
		id, v, rest, ok := nextPair(body)
		if !ok {
			return nil, false
		}
		cur := Scored{ID: id, Score: v}
		if i > 0 && byRank(prev, cur) >= 0 {
			return nil, false // not ranked: not written by folding
		}
		prev = cur
		if k, isNamed := w.at[id]; isNamed {
			if w.inFolded[k] {
				return nil, false
			}
			w.inFolded[k] = true
			named[k].Score = v
		} else if len(out) < n {
			out = append(out, cur)
		}
		body = rest
	}
	w.out = out
	for _, a := range w.adds {
		named[a.slot].Score += a.v
	}
	// A named item below the n-th of out cannot be in the n highest (n
	// items of out rank before it), so only the few others are ranked and
	// merged in.
	kept := named[:0]
	for _, x := range named {
		if len(out) < n || !(x.Score < out[n-1].Score) { // NaN: kept, and ranked
			kept = append(kept, x)
		}
	}
	slices.SortFunc(kept, byRank)
	merged := make([]Scored, 0, min(n, len(out)+len(kept)))
	i, j := 0, 0
	for len(merged) < cap(merged) {
		if j == len(kept) || i < len(out) && byRank(out[i], kept[j]) < 0 {
			merged = append(merged, out[i])
			i++
		} else {
			merged = append(merged, kept[j])
			j++
		}
	}
	return merged, true
}

// rowWork is rowTop's working memory, reused: of what it allocates for a
// row only the answer is not (foldCooc reuses its pairs).
type rowWork struct {
	at       map[string]int32 // slot of each item the deltas name
	named    []Scored         // by slot: the item and its sum
	inFolded []bool           // by slot: met in the folded entry
	adds     []rowAdd         // the deltas' pairs by slot, in order
	pairs    []Scored         // the deltas' pairs, in order
	out      []Scored         // the folded entry's first items the deltas do not name
}

type rowAdd struct {
	slot int32
	v    float64
}

var rowWorkPool = sync.Pool{New: func() any { return &rowWork{at: make(map[string]int32)} }}

// put clears w (it must not keep a read row's strings alive) and returns it
// to the pool.
func (w *rowWork) put() {
	clear(w.at)
	clear(w.named)
	clear(w.pairs)
	clear(w.out)
	w.named, w.inFolded, w.adds, w.pairs, w.out = w.named[:0], w.inFolded[:0], w.adds[:0], w.pairs[:0], w.out[:0]
	rowWorkPool.Put(w)
}

// encodeCoocRow returns the folded row entry of the (already ranked) items.
func encodeCoocRow(items []Scored) string {
	n := 1
	for _, it := range items {
		n += binary.MaxVarintLen64 + len(it.ID) + 8
	}
	return string(appendFolded(make([]byte, 0, n), items))
}

// deltaEntry returns the row entry of partition p's contributions of
// offsets first..last, summed in c (items numbered in names, in the order
// first met).
func deltaEntry(p int32, first, last int64, c *coSum, names []string) string {
	d := rowDeltaEntry{Partition: p, First: first, Last: last, Pairs: make([]Scored, len(c.ids))}
	n := 32
	for k, id := range c.ids {
		d.Pairs[k] = Scored{ID: names[id], Score: c.vals[k]}
		n += binary.MaxVarintLen64 + len(names[id]) + 8
	}
	return string(appendDelta(make([]byte, 0, n), d))
}

// CoocEntries folds a co-occurrence row's entries (as LRANGE returns them)
// into its items and values: what a reader of the row sees.
func CoocEntries(entries []string) (map[string]float64, error) {
	r, _, err := foldCooc(entries)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(r.val))
	for _, s := range r.top(0) {
		out[s.ID] = s.Score
	}
	return out, nil
}

// readCooc reads the entries of the co-occurrence rows of items, one
// pipelined LRANGE each.
func (s *Store) readCooc(ctx context.Context, items []string) ([][]string, error) {
	return s.readRows(ctx, s.keys.ItemCooc, items)
}

// readRows reads the entries of the rows (co-occurrence or next-item, by
// key) of items, one pipelined LRANGE each.
func (s *Store) readRows(ctx context.Context, key func(string) string, items []string) ([][]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(items))
	for i, it := range items {
		cmds[i] = pipe.LRange(ctx, key(it), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([][]string, len(items))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// rowTop returns the n highest items of item's row entries (all when
// n <= 0): without folding the row when rowTop can, else folded, with
// malformed entries counted and reported as what happened to them.
func (s *Store) rowTop(item string, entries []string, n int, what string) []Scored {
	if top, ok := rowTop(entries, n); ok {
		return top
	}
	return s.foldRow(item, entries, what).top(n)
}

// foldRow folds item's row entries; malformed ones are counted and
// reported as what happened to them (left out, dropped).
func (s *Store) foldRow(item string, entries []string, what string) *coocRow {
	r, bad, err := foldCooc(entries)
	if bad > 0 {
		s.opt.CoocMetrics.Malformed.Add(float64(bad))
		s.warn.Warn("co-occurrence row: malformed entries "+what, "item", item, "entries", bad, "err", err)
	}
	return r
}

// erasureEntry is an erasure's row entry: each of items (in this order)
// loses amount[item].
func erasureEntry(erasure string, items []string, amount map[string]float64) string {
	x := rowErasureEntry{Erasure: erasure, Pairs: make([]Scored, len(items))}
	for i, it := range items {
		x.Pairs[i] = Scored{ID: it, Score: amount[it]}
	}
	return string(appendErasure(nil, x))
}

// FoldCooc folds the co-occurrence rows of items into one entry each,
// trimmed to the cap; a row that another process folded meanwhile is left
// as that process wrote it.
func (s *Store) FoldCooc(ctx context.Context, items []string) error {
	for start := 0; start < len(items); start += itemChunk {
		if err := s.foldChunk(ctx, s.keys.ItemCooc, s.opt.CoocCap, items[start:min(start+itemChunk, len(items))]); err != nil {
			return err
		}
	}
	return nil
}

// foldChunk folds the rows (co-occurrence or next-item, by key) of one
// chunk of items, each trimmed to its cap highest names: the rows read,
// folded and written at once.
func (s *Store) foldChunk(ctx context.Context, key func(string) string, cap int, items []string) error {
	if len(items) == 0 {
		return nil
	}
	reads, err := s.readRows(ctx, key, items)
	if err != nil {
		return fmt.Errorf("folding co-occurrence: %w", err)
	}
	type fold struct {
		item  string
		n     int
		first string
		last  string
		row   string
	}
	var folds []fold
	for i, it := range items {
		es := reads[i]
		if len(es) < 2 {
			continue // nothing to fold
		}
		row := ""
		if top := s.rowTop(it, es, cap, "dropped by folding"); len(top) > 0 {
			row = encodeCoocRow(top)
		}
		folds = append(folds, fold{item: it, n: len(es), first: es[0], last: es[len(es)-1], row: row})
	}
	if len(folds) == 0 {
		return nil
	}
	if s.foldHook != nil {
		s.foldHook()
	}
	cmds, err := s.runScripts(ctx, coocFoldScript, len(folds), func(pipe redis.Pipeliner, k int) *redis.Cmd {
		f := folds[k]
		return coocFoldScript.EvalSha(ctx, pipe, []string{key(f.item)}, f.n, f.first, f.last, f.row)
	})
	if err != nil {
		return fmt.Errorf("folding co-occurrence: %w", err)
	}
	for _, c := range cmds {
		if n, _ := c.Int64(); n == 1 {
			s.opt.CoocMetrics.Folds.WithLabelValues("written").Inc()
		} else {
			s.opt.CoocMetrics.Folds.WithLabelValues("lost").Inc()
		}
	}
	return nil
}
