package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/recstream/recstream/event"
)

// An item's next-item row ({i:<id>}:nx) holds the directed transitions
// from the item to the items users moved to after it: for each applied
// event of a user on item j, each of the user's NextWindow most recent
// distinct earlier items i (i ≠ j, newest first, i at distance k = 1, 2,
// …) gains
//
//	w(type)·decay(ts) / k
//
// for j in i's row, and, when the event is a purchase, the same under j's
// purchase name (boughtName, entry.go): the part of the transition
// that purchases made, which names the interaction in the reason
// ("often bought after i"). The earlier items are those the co-occurrence
// history reads (history.go): the user's last UserLogCap events, so the
// answer does not depend on batching.
//
// The row is a list of entries in the co-occurrence row's format
// (cooc.go): appended by item.lua under the item's fences in the same
// script as the co-occurrence entry, folded past Options.CoocFold entries into one
// entry of the NextCap highest names (item and purchase names together),
// reduced by erasure entries. One mechanism serves both kinds of row.

// closeness is the weight of a transition from the earlier item at place k
// (0 = the latest distinct earlier item) of an event's window: 1/distance.
func closeness(k int) float64 { return 1 / float64(k+1) }

// ItemNext is the item's next-item row: a list of entries (transitions to
// the items users moved to after it) folded by its readers, see next.go.
func (k Keys) ItemNext(item string) string { return k.Prefix + "{i:" + item + "}:nx" }

// Next is one transition of a next-item row: the item moved to, its
// weight, and the part of the weight that purchases made.
type Next struct {
	ID     string
	Score  float64
	Bought float64
}

// NextItems reads the n strongest transitions of each item's next-item row
// (all when n <= 0), strongest first.
func (s *Store) NextItems(ctx context.Context, items []string, n int) (map[string][]Next, error) {
	out := make(map[string][]Next, len(items))
	if len(items) == 0 {
		return out, nil
	}
	rows, err := s.readRows(ctx, s.keys.ItemNext, items)
	if err != nil {
		return nil, fmt.Errorf("reading next-item rows: %w", err)
	}
	for i, it := range items {
		if len(rows[i]) == 0 {
			continue
		}
		// A purchase name's weight is at most its item's, so the 2n highest
		// names hold the n highest items with, mostly, their purchase parts.
		m := 2 * n
		if n <= 0 {
			m = 0
		}
		out[it] = nextOf(s.rowTop(it, rows[i], m, "left out"), n)
	}
	return out, nil
}

// nextOf splits a row's ranked names into its n highest items (all when
// n <= 0), each with its purchase part.
func nextOf(top []Scored, n int) []Next {
	var bought map[string]float64
	out := make([]Next, 0, len(top))
	for _, x := range top {
		if it, ok := cutBought(x.ID); ok {
			if bought == nil {
				bought = make(map[string]float64)
			}
			bought[it] = x.Score
			continue
		}
		if n <= 0 || len(out) < n {
			out = append(out, Next{ID: x.ID, Score: x.Score})
		}
	}
	for i := range out {
		out[i].Bought = min(bought[out[i].ID], out[i].Score)
	}
	return out
}

// FoldNext folds the next-item rows of items into one entry each, trimmed
// to NextCap names, as FoldCooc does co-occurrence rows.
func (s *Store) FoldNext(ctx context.Context, items []string) error {
	for start := 0; start < len(items); start += itemChunk {
		if err := s.foldChunk(ctx, s.keys.ItemNext, s.opt.NextCap, items[start:min(start+itemChunk, len(items))]); err != nil {
			return err
		}
	}
	return nil
}

// nextWindow returns the earlier items an event's transitions come from:
// the first NextWindow of hist (the event's co-occurrence history, when it
// has one and it is long enough: both are the user's distinct earlier
// items, newest first), else those history gives.
func (s *Store) nextWindow(hist []string, isNew bool, history func(m int) []string) []string {
	w := s.opt.NextWindow
	if w <= 0 {
		return nil
	}
	if isNew && w <= s.opt.CoocHistory {
		return hist[:min(w, len(hist))]
	}
	return history(w)
}

// forgetNext calls add for each transition the event entries[0] added:
// from each of its NextWindow latest distinct earlier items among the
// UserLogCap entries after it (the log is newest first) to its item, of
// weight w (its type's weight times its decay) times closeness, and to the
// item's purchase name when it is a purchase.
func (s *Store) forgetNext(entries []LoggedEvent, w float64, add func(from, to string, v float64)) {
	if s.opt.NextWindow <= 0 || len(entries) == 0 {
		return
	}
	e := entries[0]
	buy := e.Type == event.Purchase.String()
	var met []string
	for _, h := range entries[1:min(len(entries), 1+s.opt.UserLogCap)] {
		if len(met) >= s.opt.NextWindow {
			break
		}
		if h.Item == e.Item || slices.Contains(met, h.Item) {
			continue
		}
		v := w * closeness(len(met))
		met = append(met, h.Item)
		add(h.Item, e.Item, v)
		if buy {
			add(h.Item, boughtName(e.Item), v)
		}
	}
}
