package scorer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/store"
)

// ranked gives the n best candidates that pass the filters, the same as
// filtering every candidate and sorting them, whether the purchased and
// unavailable items are few (only the best few are filtered) or many
// among the best (every candidate is filtered).
func TestRankedMatchesFilterAllThenSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := New(nil, testOptions(nil))
	for trial := range 200 {
		var us UserScores
		nc := 1 + rng.IntN(600)
		for i := range nc {
			// Coarse scores, so that ties are broken by item.
			addCandidate(&us, fmt.Sprintf("i%04d", i), float64(rng.IntN(50)))
		}
		unavailable, excl := exclude(rng, &us, trial)
		n := 1 + rng.IntN(30)
		var want []*Candidate
		for _, c := range us.list {
			if !us.Profile.Purchased[c.Item] && !unavailable[c.Item] && len(c.Sources) > 0 {
				want = append(want, c)
			}
		}
		slices.SortFunc(want, byScore)
		want = want[:min(n, len(want))]
		got := s.ranked(us, unavailable, n)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d candidates, %d excluded, n %d):\n got %v\nwant %v", trial, nc, excl, n, items(got), items(want))
		}
	}
}

// exclude marks random candidates of us purchased or unavailable (the
// returned set): a few in even trials, up to all of them in odd ones.
func exclude(rng *rand.Rand, us *UserScores, trial int) (unavailable map[string]bool, n int) {
	us.Profile = store.Profile{Purchased: map[string]bool{}}
	unavailable = map[string]bool{}
	all := us.Candidates()
	n = rng.IntN(len(all) + 1)
	if trial%2 == 0 {
		n = rng.IntN(10)
	}
	for range n {
		it := all[rng.IntN(len(all))].Item
		if rng.IntN(2) == 0 {
			us.Profile.Purchased[it] = true
		} else {
			unavailable[it] = true
		}
	}
	return unavailable, n
}

// addCandidate adds a candidate of item with a blended score to us, as
// Score leaves it, and returns its row.
func addCandidate(us *UserScores, item string, score float64) *candRow {
	if us.t == nil {
		us.t = new(candTable)
	}
	us.names = append(us.names, item)
	r := candRow{id: int32(len(us.names) - 1), score: score, seed: -1, top: -1}
	if score > 0 {
		// scored by a source; a candidate of score 0 is one no source
		// scored (an item to rank, a trending item without a degree)
		r.vals[srcPopular], r.has = score, 1<<srcPopular
	}
	us.t.rows = append(us.t.rows, r)
	return &us.t.rows[len(us.t.rows)-1]
}

// byScore is the lists' order: score descending, then item.
func byScore(a, b *Candidate) int {
	if a.Score != b.Score {
		if a.Score > b.Score {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Item, b.Item)
}

func items(cs []*Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s:%g", c.Item, c.Score)
	}
	return out
}

// The same with the diversity cap and new-arrival slots: ranking and
// filtering the best few gives the list that filtering, ranking and
// placing every candidate gives.
func TestRankedWithDiversityMatchesFilterAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		idx := catalog.NewIndex()
		nc := 1 + rng.IntN(600)
		var us UserScores
		for i := range nc {
			id := fmt.Sprintf("i%04d", i)
			idx.Put(catalog.Item{ID: id, Category: fmt.Sprintf("c%d", rng.IntN(8)), Available: rng.IntN(20) > 0})
			r := addCandidate(&us, id, float64(rng.IntN(50)))
			if rng.IntN(10) == 0 {
				r.vals[srcNew], r.has = 0.4+rng.Float64()/2, r.has|1<<srcNew
			}
		}
		unavailable, excl := exclude(rng, &us, trial)
		s := New(nil, testOptions(func(o *Options) {
			o.WeightUserKNN, o.WeightItemKNN, o.WeightTrending = 0, 0, 0
			o.MaxPerCategory = 1 + rng.IntN(4)
			o.NewSlots = rng.IntN(3)
			o.WeightNew = 0.3
			o.Catalog = idx
		}))
		n := 1 + rng.IntN(30)
		var all []*Candidate
		for _, c := range us.list {
			if !us.Profile.Purchased[c.Item] && !unavailable[c.Item] && idx.Available(c.Item) && len(c.Sources) > 0 {
				all = append(all, c)
			}
		}
		var fresh []*Candidate
		for _, c := range all {
			if c.Sources.Of(SourceNew) >= NewMinScore {
				fresh = append(fresh, c)
			}
		}
		slices.SortFunc(fresh, func(a, b *Candidate) int {
			if x, y := a.Sources.Of(SourceNew), b.Sources.Of(SourceNew); x != y {
				if x > y {
					return -1
				}
				return 1
			}
			return byScore(a, b)
		})
		slices.SortFunc(all, byScore)
		want, _ := place(s, all, fresh, n, func(c *Candidate) string { return c.Item })
		got := s.ranked(us, unavailable, n)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d candidates, %d excluded, n %d):\n got %v\nwant %v", trial, nc, excl, n, items(got), items(want))
		}
	}
}
