package scorer

import "sort"

// ranked returns up to n of the user's candidates, best first, after the
// filters: purchased items, seen items when ExcludeSeen, items the catalog
// or the stored record (unavailable) marks unavailable, and the diversity
// cap of at most MaxPerCategory items of one category (an item's own,
// most specific category; items without a category are not capped). A
// candidate over the cap is skipped, not deferred: a list may be shorter
// than n when the candidates are too concentrated.
func (s *Scorer) ranked(us UserScores, unavailable map[string]bool, n int) []*Candidate {
	seen := make(map[string]bool, len(us.Profile.Items))
	if s.opt.ExcludeSeen {
		for _, it := range us.Profile.Items {
			seen[it.ID] = true
		}
	}
	cands := make([]*Candidate, 0, len(us.Candidates))
	for id, c := range us.Candidates {
		if us.Profile.Purchased[id] || seen[id] || unavailable[id] || !s.available(id) {
			continue
		}
		cands = append(cands, c)
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].Score != cands[b].Score {
			return cands[a].Score > cands[b].Score
		}
		return cands[a].Item < cands[b].Item
	})
	maxPer := s.opt.MaxPerCategory
	if maxPer <= 0 || s.opt.Catalog == nil {
		if len(cands) > n {
			cands = cands[:n]
		}
		return cands
	}
	per := map[string]int{}
	out := make([]*Candidate, 0, n)
	for _, c := range cands {
		if len(out) >= n {
			break
		}
		if cat := s.opt.Catalog.Category(c.Item); cat != "" {
			if per[cat] >= maxPer {
				continue
			}
			per[cat]++
		}
		out = append(out, c)
	}
	return out
}
