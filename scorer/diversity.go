package scorer

import (
	"slices"
	"sort"
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
	var seen map[string]bool
	if s.opt.ExcludeSeen {
		seen = make(map[string]bool, len(us.Profile.Items))
		for _, it := range us.Profile.Items {
			seen[it.ID] = true
		}
	}
	excluded := func(c *Candidate) bool {
		id := c.Item
		return us.Profile.Purchased[id] || seen[id] || unavailable[id] || !s.available(id)
	}
	// Higher score first, ties by item name.
	rank := func(a, b *Candidate) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		case a.Score != b.Score: // NaN: neither ranks first
			return 0
		}
		return strings.Compare(a.Item, b.Item)
	}
	better := func(a, b *Candidate) bool { return rank(a, b) < 0 }
	slotsOn := s.opt.NewSlots > 0 && s.opt.WeightNew > 0
	plain := !slotsOn && (s.opt.MaxPerCategory <= 0 || s.opt.Catalog == nil)
	// The new-arrival candidates come from all candidates, ranked by their
	// new-arrival score, then as the list ranks them.
	var fresh []*Candidate
	if slotsOn {
		for _, c := range us.list {
			if c.Sources.Of(SourceNew) >= NewMinScore && !excluded(c) {
				fresh = append(fresh, c)
			}
		}
		sort.Slice(fresh, func(a, b int) bool {
			x, y := fresh[a].Sources.Of(SourceNew), fresh[b].Sources.Of(SourceNew)
			if x != y {
				return x > y
			}
			return better(fresh[a], fresh[b])
		})
	}
	// Usually the best few times n candidates fill the list, even after
	// the filters and the diversity cap skip some: rank only those (a
	// bounded heap) and look only them up in the filters. The filtered
	// best m are then the head of the filtered ranking of all candidates,
	// so when they fill the list it is the list all of them would give;
	// otherwise every candidate is filtered and ranked.
	m := n + len(us.Profile.Purchased) + len(seen) + len(unavailable)
	if !plain {
		m += 3*n + s.opt.NewSlots
	}
	if len(us.list) > 2*m {
		top := topk.Best(slices.Clone(us.list), m, rank)
		kept := top[:0]
		for _, c := range top {
			if !excluded(c) {
				kept = append(kept, c)
			}
		}
		if len(kept) >= n {
			if plain {
				return kept[:n]
			}
			if out, slots := s.place(kept, fresh, n); len(out) == n {
				return markSlots(out, slots)
			}
		}
	}
	cands := make([]*Candidate, 0, len(us.list))
	for _, c := range us.list {
		if !excluded(c) {
			cands = append(cands, c)
		}
	}
	if plain {
		return topk.Best(cands, n, rank)
	}
	sort.Slice(cands, func(a, b int) bool { return better(cands[a], cands[b]) })
	return markSlots(s.place(cands, fresh, n))
}

// markSlots names the new-arrival source and reason on the slots placed.
func markSlots(out, slots []*Candidate) []*Candidate {
	for _, c := range slots {
		c.Source, c.Reason = SourceNew, c.reason(SourceNew)
	}
	return out
}

// place fills up to n places from the ranked candidates: new-arrival
// slots (from fresh) last, the diversity cap applied. It may return fewer
// than n when cands run out. slots are the new arrivals placed.
func (s *Scorer) place(cands, fresh []*Candidate, n int) (out, slots []*Candidate) {
	// New-arrival slots: the best new arrivals (raw score >= NewMinScore)
	// not already ranked high enough move up to the last NewSlots places.
	if k := s.opt.NewSlots; k > 0 && s.opt.WeightNew > 0 {
		inTop := map[string]bool{}
		for i, c := range cands {
			if i >= n {
				break
			}
			inTop[c.Item] = true
		}
		for _, c := range fresh {
			if len(slots) >= k {
				break
			}
			if inTop[c.Item] {
				k-- // already listed on its own merit
				continue
			}
			slots = append(slots, c)
		}
	}
	isSlot := map[string]bool{}
	for _, c := range slots {
		isSlot[c.Item] = true
	}
	maxPer := s.opt.MaxPerCategory
	capped := maxPer > 0 && s.opt.Catalog != nil
	per := map[string]int{}
	out = make([]*Candidate, 0, n)
	take := func(c *Candidate) bool {
		if capped {
			if cat := s.opt.Catalog.Category(c.Item); cat != "" {
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
		if !isSlot[c.Item] {
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
