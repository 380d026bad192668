package scorer

import (
	"slices"
	"strings"

	"github.com/recstream/recstream/internal/topk"
)

// ranked returns up to n of the user's candidates, best first, after the
// filters: purchased items, seen items when ExcludeSeen, items the catalog
// or the stored record (unavailable) marks unavailable, and the diversity
// cap of at most MaxPerCategory items of one category (an item's own,
// most specific category; items without a category are not capped). A
// candidate over the cap is skipped, not deferred: a list may be shorter
// than n when the candidates are too concentrated.
func (s *Scorer) ranked(us UserScores, unavailable map[string]bool, n int) []*Candidate {
	out, slots := s.rankedPlaces(us, unavailable, n)
	cands := func(ks []int32) []*Candidate {
		cs := make([]*Candidate, len(ks))
		for i, k := range ks {
			cs[i] = us.cand(k)
		}
		return cs
	}
	return markSlots(cands(out), cands(slots))
}

// rankedPlaces is ranked by place: the list's candidates, and the
// new-arrival slots among them (placed, not ranked).
func (s *Scorer) rankedPlaces(us UserScores, unavailable map[string]bool, n int) (out, slots []int32) {
	if us.len() == 0 {
		return nil, nil
	}
	rows := us.t.rows
	// The user's own items (Score marks them) are left out first; the
	// other filters look items up by name, so only the best few are.
	seen := func(k int32) bool { return s.opt.ExcludeSeen && rows[k].own }
	excluded := func(k int32) bool {
		id := us.item(int(k))
		return seen(k) || us.Profile.Purchased[id] || unavailable[id] || !s.available(id)
	}
	// Higher score first, ties by item name; candidates by place.
	rank := func(a, b int32) int {
		x, y := rows[a].score, rows[b].score
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		case x != y: // NaN: neither ranks first
			return 0
		}
		return strings.Compare(us.item(int(a)), us.item(int(b)))
	}
	slotsOn := s.opt.NewSlots > 0 && s.opt.WeightNew > 0
	plain := !slotsOn && (s.opt.MaxPerCategory <= 0 || s.opt.Catalog == nil)
	// The new-arrival candidates come from all candidates, ranked by their
	// new-arrival score, then as the list ranks them.
	var fresh []int32
	if slotsOn {
		for k := range rows {
			if r := &rows[k]; r.has&(1<<srcNew) != 0 && r.vals[srcNew] >= NewMinScore && !excluded(int32(k)) {
				fresh = append(fresh, int32(k))
			}
		}
		slices.SortFunc(fresh, func(a, b int32) int {
			if x, y := rows[a].vals[srcNew], rows[b].vals[srcNew]; x != y {
				if x > y {
					return -1
				}
				return 1
			}
			return rank(a, b)
		})
	}
	item := func(k int32) string { return us.item(int(k)) }
	// A candidate no source scored (an item to rank, or a trending item
	// the popular prior had no degree for yet) carries no evidence and
	// no reason: it is not listed.
	all := make([]int32, 0, len(rows))
	for k := range rows {
		if !seen(int32(k)) && rows[k].has != 0 {
			all = append(all, int32(k))
		}
	}
	// Usually the best few times n candidates fill the list, even after
	// the filters and the diversity cap skip some: rank only those (a
	// bounded heap) and look only them up in the filters. The filtered
	// best m are then the head of the filtered ranking of all candidates,
	// so when they fill the list it is the list all of them would give;
	// otherwise every candidate is filtered and ranked.
	m := n + len(us.Profile.Purchased) + len(unavailable)
	if !plain {
		m += 3*n + s.opt.NewSlots
	}
	if len(all) > 2*m {
		top := topk.Best(slices.Clone(all), m, rank)
		kept := top[:0]
		for _, k := range top {
			if !excluded(k) {
				kept = append(kept, k)
			}
		}
		if len(kept) >= n {
			if plain {
				return kept[:n], nil
			}
			if out, slots := place(s, kept, fresh, n, item); len(out) == n {
				return out, slots
			}
		}
	}
	kept := all[:0]
	for _, k := range all {
		if !excluded(k) {
			kept = append(kept, k)
		}
	}
	if plain {
		return topk.Best(kept, n, rank), nil
	}
	slices.SortFunc(kept, rank)
	return place(s, kept, fresh, n, item)
}

// markSlots names the new-arrival source and reason on the slots placed.
func markSlots(out, slots []*Candidate) []*Candidate {
	for _, c := range slots {
		c.Source, c.Reason = SourceNew, c.reason(SourceNew)
	}
	return out
}

// place fills up to n places from the ranked candidates (item names
// them): new-arrival slots (from fresh) last, the diversity cap applied. It
// may return fewer than n when cands run out. slots are the new arrivals
// placed.
func place[C comparable](s *Scorer, cands, fresh []C, n int, item func(C) string) (out, slots []C) {
	// New-arrival slots: the best new arrivals (raw score >= NewMinScore)
	// not already ranked high enough move up to the last NewSlots places.
	if k := s.opt.NewSlots; k > 0 && s.opt.WeightNew > 0 {
		inTop := map[C]bool{}
		for i, c := range cands {
			if i >= n {
				break
			}
			inTop[c] = true
		}
		for _, c := range fresh {
			if len(slots) >= k {
				break
			}
			if inTop[c] {
				k-- // already listed on its own merit
				continue
			}
			slots = append(slots, c)
		}
	}
	isSlot := map[C]bool{}
	for _, c := range slots {
		isSlot[c] = true
	}
	maxPer := s.opt.MaxPerCategory
	capped := maxPer > 0 && s.opt.Catalog != nil
	per := map[string]int{}
	out = make([]C, 0, n)
	take := func(c C) bool {
		if capped {
			if cat := s.opt.Catalog.Category(item(c)); cat != "" {
				if per[cat] >= maxPer {
					return false
				}
				per[cat]++
			}
		}
		out = append(out, c)
		return true
	}
	for _, c := range slots {
		if len(out) < n {
			take(c)
		}
	}
	reserved := len(out)
	for _, c := range cands {
		if len(out) >= n {
			break
		}
		if !isSlot[c] {
			take(c)
		}
	}
	// Slots go last: they are placed, not ranked.
	if reserved > 0 {
		out = append(out[reserved:], out[:reserved]...)
	}
	return out, slots
}

// NewMinScore is the smallest raw new-arrival score (profile cosine ×
// remaining freshness) that earns a new-arrival slot.
const NewMinScore = 0.5
