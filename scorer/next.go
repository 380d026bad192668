package scorer

import (
	"context"

	"github.com/recstream/recstream/store"
)

// SourceNextItem is the next-item source: the items shoppers moved to
// after the user's latest items (store/next.go keeps the transitions).
const SourceNextItem = "next_item"

// nextEntry is one transition of a next-item row, its item numbered.
type nextEntry struct {
	id     int32
	score  float64
	bought float64 // the part of score purchases made
}

// readNext reads next-item rows and numbers their items.
func (nb *numbered) readNext(st Store) func(context.Context, []int32, int) (map[int32][]nextEntry, error) {
	return readByNumber(nb.items, st.NextItems, func(row []store.Next) []nextEntry {
		names := make([]string, len(row))
		for i, x := range row {
			names[i] = x.ID
		}
		ids := make([]int32, len(row))
		nb.items.number(names, ids)
		out := make([]nextEntry, len(row))
		for i, x := range row {
			out[i] = nextEntry{ids[i], x.Score, x.Bought}
		}
		return out
	})
}

// nextSeeds returns the items the next-item source starts from: the
// NextSeeds latest distinct items of the user (among the items of the
// RecentEvents latest events), newest first.
func (s *Scorer) nextSeeds(p store.Profile) []string {
	return p.Recent[:min(len(p.Recent), s.opt.NextSeeds)]
}

// nextItem scores the items users moved to after the user's latest items:
//
//	score(j) = Σ_pos 1/(pos+1) · T(r_pos → j) / max_j' T(r_pos → j')
//
// over the user's latest distinct items r_0 (newest), r_1, …, each row
// read highest first (rows[i] of the seed at place at[r]). The reason names
// the seed of the largest single contribution, and whether the
// transitions into the item were mostly purchases.
func (s *Scorer) nextItem(us *UserScores, seeds []string, at map[string]int, rows [][]nextEntry) {
	if s.opt.WeightNext <= 0 || len(seeds) == 0 {
		return
	}
	touched := false
	for pos, seed := range seeds {
		i, ok := at[seed]
		if !ok || len(rows[i]) == 0 {
			continue
		}
		row := rows[i]
		mx := row[0].score
		if mx <= 0 {
			continue
		}
		w := 1 / float64(pos+1)
		for _, x := range row {
			c := w * x.score / mx
			if c <= 0 {
				continue
			}
			k := us.at(x.id)
			r := &us.t.rows[k]
			if c > r.best {
				r.best = c
				r.nseed = int8(min(pos, 127))
				r.nbuy = 2*x.bought >= x.score
			}
			r.vals[srcNext] += c
			r.has |= 1 << srcNext
			touched = true
		}
	}
	us.nextSeeds = seeds
	if touched {
		us.clearBest()
	}
}

// nextReason is the reason the next-item source gives a candidate.
func (us *UserScores) nextReason(k int32) string {
	r := &us.t.rows[k]
	if r.nseed < 0 || int(r.nseed) >= len(us.nextSeeds) {
		return ""
	}
	if r.nbuy {
		return "often bought after " + us.nextSeeds[r.nseed]
	}
	return "often viewed after " + us.nextSeeds[r.nseed]
}
