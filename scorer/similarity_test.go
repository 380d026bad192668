package scorer_test

import (
	"math"
	"testing"

	"github.com/recstream/recstream/scorer"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestCosineHandComputed(t *testing.T) {
	a := map[string]float64{"x": 1, "y": 2}
	b := map[string]float64{"y": 2, "z": 1}
	// dot 4, |a| = |b| = √5
	if got := scorer.Cosine(a, b); !near(got, 4.0/5) {
		t.Fatalf("cosine %v, want 0.8", got)
	}
	if got := scorer.Cosine(a, map[string]float64{"q": 1}); got != 0 {
		t.Fatalf("disjoint cosine %v", got)
	}
}

func TestPearsonHandComputed(t *testing.T) {
	a := map[string]float64{"x": 1, "y": 2, "z": 3}
	b := map[string]float64{"x": 2, "y": 4, "z": 6, "w": 4}
	// means 2 and 4; common items centred: a (-1,0,1), b (-2,0,2): r = 1
	if got := scorer.Pearson(a, b); !near(got, 1) {
		t.Fatalf("pearson %v, want 1", got)
	}
	c := map[string]float64{"x": 3, "y": 2, "z": 1}
	if got := scorer.Pearson(a, c); !near(got, -1) {
		t.Fatalf("pearson %v, want -1", got)
	}
	if got := scorer.Pearson(a, map[string]float64{"x": 1}); got != 0 {
		t.Fatalf("pearson on one common item %v, want 0", got)
	}
}

func TestItemSimilarityHandComputed(t *testing.T) {
	for _, tc := range []struct {
		kind      string
		c, ni, nj float64
		shrink    float64
		want      float64
	}{
		{"cosine", 2, 4, 9, 0, 2.0 / 6},
		{"cosine", 2, 4, 9, 4, 2.0 / 10},
		{"jaccard", 2, 4, 9, 0, 2.0 / 11},
		{"lift", 2, 4, 9, 0, 2.0 / 36},
		{"cosine", 0, 4, 9, 0, 0},
	} {
		if got := scorer.ItemSimilarity(tc.kind, tc.c, tc.ni, tc.nj, tc.shrink); !near(got, tc.want) {
			t.Errorf("%s(%v,%v,%v,%v) = %v, want %v", tc.kind, tc.c, tc.ni, tc.nj, tc.shrink, got, tc.want)
		}
	}
}
