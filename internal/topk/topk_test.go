package topk

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// Best agrees with a full sort for every size and k, ties included.
func TestTopKMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type c struct {
		score float64
		id    int
	}
	better := func(a, b c) bool {
		if a.score != b.score {
			return a.score > b.score
		}
		return a.id < b.id
	}
	for _, n := range []int{0, 1, 2, 5, 20, 41, 100, 1000} {
		for _, k := range []int{0, 1, 3, 20, 50, 2000} {
			xs := make([]c, n)
			for i := range xs {
				xs[i] = c{float64(rng.IntN(30)), i} // many ties
			}
			want := slices.Clone(xs)
			slices.SortFunc(want, func(a, b c) int {
				if better(a, b) {
					return -1
				}
				return 1
			})
			want = want[:min(k, n)]
			got := Best(slices.Clone(xs), k, func(a, b c) int {
				if better(a, b) {
					return -1
				}
				return 1
			})
			if !slices.Equal(got, want) {
				t.Fatalf("n=%d k=%d: got %v, want %v", n, k, got, want)
			}
		}
	}
}
