package eval_test

import (
	"math"
	"testing"

	"github.com/recstream/recstream/eval"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRankTiesCountAgainst(t *testing.T) {
	inf := math.Inf(-1)
	cases := []struct {
		name   string
		target float64
		others []float64
		want   int
	}{
		{"best", 5, []float64{1, 2, 3}, 1},
		{"third", 2, []float64{3, 4, 1, 0}, 3},
		{"tie counts against", 2, []float64{2, 1}, 2},
		{"all tied", 0, []float64{0, 0, 0}, 4},
		{"unscorable target last", inf, []float64{inf, 0, -5}, 4},
		{"NaN target is -Inf", math.NaN(), []float64{-1}, 2},
		{"NaN other is -Inf", 0, []float64{math.NaN(), 1}, 2},
		{"no others", 1, nil, 1},
	}
	for _, c := range cases {
		if got := eval.Rank(c.target, c.others); got != c.want {
			t.Errorf("%s: Rank = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestMetricValues(t *testing.T) {
	cases := []struct {
		rank, k                    int
		hr, ndcg, prec, recall, rr float64
	}{
		{1, 10, 1, 1, 0.1, 1, 1},
		{3, 10, 1, 0.5, 0.1, 1, 1.0 / 3},
		{2, 10, 1, 1 / math.Log2(3), 0.1, 1, 0.5},
		{10, 10, 1, 1 / math.Log2(11), 0.1, 1, 0.1},
		{11, 10, 0, 0, 0, 0, 1.0 / 11},
		{7, 5, 0, 0, 0, 0, 1.0 / 7},
		{0, 10, 0, 0, 0, 0, 0}, // not found
	}
	for _, c := range cases {
		if got := eval.HitRate(c.rank, c.k); !near(got, c.hr) {
			t.Errorf("HR(%d,%d) = %v, want %v", c.rank, c.k, got, c.hr)
		}
		if got := eval.NDCG(c.rank, c.k); !near(got, c.ndcg) {
			t.Errorf("NDCG(%d,%d) = %v, want %v", c.rank, c.k, got, c.ndcg)
		}
		if got := eval.Precision(c.rank, c.k); !near(got, c.prec) {
			t.Errorf("Precision(%d,%d) = %v, want %v", c.rank, c.k, got, c.prec)
		}
		if got := eval.Recall(c.rank, c.k); !near(got, c.recall) {
			t.Errorf("Recall(%d,%d) = %v, want %v", c.rank, c.k, got, c.recall)
		}
		if got := eval.ReciprocalRank(c.rank); !near(got, c.rr) {
			t.Errorf("RR(%d) = %v, want %v", c.rank, got, c.rr)
		}
	}
	if eval.MetricKey("hr", 10) != "hr@10" || eval.MetricKey("mrr", 0) != "mrr" {
		t.Error("MetricKey")
	}
}
