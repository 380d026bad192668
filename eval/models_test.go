package eval_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/eval"
)

// pairs builds one click per "user:item".
func pairs(ps ...string) []eval.Interaction {
	var out []eval.Interaction
	for n, p := range ps {
		u, i, _ := strings.Cut(p, ":")
		out = append(out, eval.Interaction{User: u, Item: i, Type: eval.TypeClick, TS: int64(n), Value: 1})
	}
	return out
}

// smallLog: u1{a,b} u2{a,b,c} u3{a,c} u4{b}; n_a=3 n_b=3 n_c=2,
// c_ab=2 c_ac=2 c_bc=1.
func smallLog() []eval.Interaction {
	return pairs("u1:a", "u1:b", "u2:a", "u2:b", "u2:c", "u3:a", "u3:c", "u4:b")
}

func TestItemKNNSimilarities(t *testing.T) {
	ctx := context.Background()
	s6 := math.Sqrt(6)
	cases := []struct {
		cfg        eval.ItemKNNConfig
		ab, ac, bc float64
	}{
		{eval.ItemKNNConfig{Similarity: "cosine"}, 2.0 / 3, 2 / s6, 1 / s6},
		{eval.ItemKNNConfig{Similarity: "cosine", Shrink: 1}, 2.0 / 4, 2 / (s6 + 1), 1 / (s6 + 1)},
		{eval.ItemKNNConfig{Similarity: "jaccard"}, 0.5, 2.0 / 3, 0.25},
		{eval.ItemKNNConfig{Similarity: "lift"}, 2.0 / 9, 2.0 / 6, 1.0 / 6},
		{eval.ItemKNNConfig{Similarity: "cooccurrence"}, 2, 2, 1},
	}
	for _, c := range cases {
		m := eval.NewBatchItemKNN(c.cfg)
		if err := m.Fit(ctx, smallLog()); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			i, j string
			want float64
		}{{"a", "b", c.ab}, {"b", "a", c.ab}, {"a", "c", c.ac}, {"c", "b", c.bc}} {
			if got := m.Similarity(p.i, p.j); !near(got, p.want) {
				t.Errorf("%s sim(%s,%s) = %v, want %v", m.Name(), p.i, p.j, got, p.want)
			}
		}
		// u4 has only b: score(a) = sim(a,b), score(c) = sim(c,b).
		got, err := m.Score(ctx, "u4", []string{"a", "c", "zz"})
		if err != nil {
			t.Fatal(err)
		}
		if !near(got[0], c.ab) || !near(got[1], c.bc) || !math.IsInf(got[2], -1) {
			t.Errorf("%s scores %v", m.Name(), got)
		}
	}
	// Weighted history: a_uj = Σ type weights (u4 browsed b twice and bought it).
	log := append(smallLog(), eval.Interaction{User: "u4", Item: "b", Type: eval.TypePurchase, TS: 100})
	log = append(log, eval.Interaction{User: "u4", Item: "b", Type: eval.TypeBrowse, TS: 101})
	m := eval.NewBatchItemKNN(eval.ItemKNNConfig{Weighting: eval.Weighting{Weights: eval.DefaultWeights()}})
	if err := m.Fit(ctx, log); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Score(ctx, "u4", []string{"a"})
	if want := (2.0 + 8 + 1) * 2 / 3; !near(got[0], want) { // click 2 + purchase 8 + browse 1
		t.Errorf("weighted score %v, want %v", got[0], want)
	}
}

func TestItemKNNNeighbourhoodOfTarget(t *testing.T) {
	// K=1: N(a)={c} (2/√6 > 2/3), N(b)={a}, N(c)={a}. u4 has b only; b is in
	// neither N(a) nor N(c), so both score 0.
	ctx := context.Background()
	m := eval.NewBatchItemKNN(eval.ItemKNNConfig{K: 1})
	if err := m.Fit(ctx, smallLog()); err != nil {
		t.Fatal(err)
	}
	if nb := m.Neighbours("a"); len(nb) != 1 || nb[0].ID != "c" {
		t.Fatalf("N(a) = %v", nb)
	}
	got, _ := m.Score(ctx, "u4", []string{"a", "c"})
	if got[0] != 0 || got[1] != 0 {
		t.Fatalf("scores %v", got)
	}
	// u3 {a,c}: score(b) = sim(b,a) = 2/3 (a is b's neighbour).
	got, _ = m.Score(ctx, "u3", []string{"b"})
	if !near(got[0], 2.0/3) {
		t.Fatalf("score(u3,b) %v", got)
	}
	top, _ := m.TopK(ctx, "u3", 5, map[string]bool{"a": true, "c": true})
	if !reflect.DeepEqual(top, []string{"b"}) {
		t.Fatalf("topk %v", top)
	}
}

func TestUserKNN(t *testing.T) {
	ctx := context.Background()
	// Cosine on binary vectors: sim(u1,u2)=2/√6, sim(u1,u3)=1/2, sim(u1,u4)=1/√2.
	m := eval.NewBatchUserKNN(eval.UserKNNConfig{K: 2})
	if err := m.Fit(ctx, smallLog()); err != nil {
		t.Fatal(err)
	}
	s12, s14 := 2/math.Sqrt(6), 1/math.Sqrt(2)
	nb := m.Neighbours("u1")
	if len(nb) != 2 || nb[0].ID != "u2" || !near(nb[0].Sim, s12) || nb[1].ID != "u4" || !near(nb[1].Sim, s14) {
		t.Fatalf("N(u1) = %v", nb)
	}
	got, err := m.Score(ctx, "u1", []string{"c", "a", "b", "zz"})
	if err != nil {
		t.Fatal(err)
	}
	den := s12 + s14
	want := []float64{s12 / den, s12 / den, (s12 + s14) / den}
	for i, w := range want {
		if !near(got[i], w) {
			t.Errorf("score[%d] = %v, want %v", i, got[i], w)
		}
	}
	if !math.IsInf(got[3], -1) {
		t.Errorf("unknown item scored %v", got[3])
	}
	// Unknown users score 0 on known items.
	got, _ = m.Score(ctx, "nobody", []string{"a"})
	if got[0] != 0 {
		t.Errorf("unknown user %v", got)
	}

	// Pearson on ratings (UseValue): u1 a5 b1 c3 (μ 3); u2 a4 b2 c3 d5 (μ 3.5);
	// u3 a1 b5 (μ 3). Over co-rated items sim(u1,u2) = 4/√22, sim(u1,u3) = −1
	// (dropped: positive similarities only).
	rate := func(u, i string, v float64) eval.Interaction {
		return eval.Interaction{User: u, Item: i, Type: eval.TypeClick, Value: v}
	}
	log := []eval.Interaction{
		rate("u1", "a", 5), rate("u1", "b", 1), rate("u1", "c", 3),
		rate("u2", "a", 4), rate("u2", "b", 2), rate("u2", "c", 3), rate("u2", "d", 5),
		rate("u3", "a", 1), rate("u3", "b", 5),
	}
	p := eval.NewBatchUserKNN(eval.UserKNNConfig{Similarity: "pearson", Weighting: eval.Weighting{UseValue: true}})
	if err := p.Fit(ctx, log); err != nil {
		t.Fatal(err)
	}
	nb = p.Neighbours("u1")
	if len(nb) != 1 || nb[0].ID != "u2" || !near(nb[0].Sim, 4/math.Sqrt(22)) {
		t.Fatalf("pearson N(u1) = %v", nb)
	}
	got, _ = p.Score(ctx, "u1", []string{"d"})
	if !near(got[0], 5) {
		t.Fatalf("pearson score %v", got)
	}
	if err := eval.NewBatchUserKNN(eval.UserKNNConfig{Similarity: "nope"}).Fit(ctx, log); err == nil {
		t.Error("unknown similarity: want error")
	}
}

// invert returns the inverse of a small dense matrix by Gauss-Jordan.
func invert(a [][]float64) [][]float64 {
	n := len(a)
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, 2*n)
		copy(m[i], a[i])
		m[i][n+i] = 1
	}
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		m[c], m[p] = m[p], m[c]
		d := m[c][c]
		for k := range m[c] {
			m[c][k] /= d
		}
		for r := range n {
			if r != c && m[r][c] != 0 {
				f := m[r][c]
				for k := range m[r] {
					m[r][k] -= f * m[c][k]
				}
			}
		}
	}
	out := make([][]float64, n)
	for i := range out {
		out[i] = m[i][n:]
	}
	return out
}

func TestEASEMatchesClosedForm(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	const nu, ni, lambda = 30, 8, 3.0
	var log []eval.Interaction
	x := make([][]float64, nu)
	for u := range nu {
		x[u] = make([]float64, ni)
		for i := range ni {
			if rng.Float64() < 0.35 || i == u%ni { // every item used
				x[u][i] = 1
				log = append(log, eval.Interaction{User: fmt.Sprint("u", u), Item: fmt.Sprint("i", i), Type: eval.TypeClick, Value: 1})
			}
		}
	}
	g := make([][]float64, ni)
	for i := range ni {
		g[i] = make([]float64, ni)
		for j := range ni {
			for u := range nu {
				g[i][j] += x[u][i] * x[u][j]
			}
		}
		g[i][i] += lambda
	}
	p := invert(g)
	m := eval.NewEASE(eval.EASEConfig{Lambda: lambda})
	if err := m.Fit(ctx, log); err != nil {
		t.Fatal(err)
	}
	for i := range ni {
		for j := range ni {
			want := 0.0
			if i != j {
				want = -p[i][j] / p[j][j]
			}
			if got := m.Weight(fmt.Sprint("i", i), fmt.Sprint("i", j)); math.Abs(got-want) > 1e-9 {
				t.Fatalf("B[%d][%d] = %v, want %v", i, j, got, want)
			}
		}
	}
	// score(u, j) = Σ_i x_ui B_ij.
	cands := []string{"i0", "i3", "i7", "nope"}
	got, err := m.Score(ctx, "u5", cands)
	if err != nil {
		t.Fatal(err)
	}
	for n, j := range []int{0, 3, 7} {
		want := 0.0
		for i := range ni {
			if i != j {
				want += x[5][i] * -p[i][j] / p[j][j]
			}
		}
		if math.Abs(got[n]-want) > 1e-9 {
			t.Errorf("score(u5,i%d) = %v, want %v", j, got[n], want)
		}
	}
	if !math.IsInf(got[3], -1) {
		t.Error("unknown item not -Inf")
	}
	small := eval.NewEASE(eval.EASEConfig{MaxItems: 4})
	if err := small.Fit(ctx, log); err == nil {
		t.Error("MaxItems: want error")
	}
}

func TestPopularityOrder(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	p := eval.NewPopularity()
	counts := map[string]int{}
	var warm []eval.Interaction
	for range 50 {
		it := eval.Interaction{Item: fmt.Sprint("i", rng.IntN(20))}
		warm = append(warm, it)
		counts[it.Item]++
	}
	if err := p.Fit(ctx, warm); err != nil {
		t.Fatal(err)
	}
	for step := range 2000 {
		it := eval.Interaction{Item: fmt.Sprint("i", rng.IntN(60))}
		counts[it.Item]++
		if err := p.Observe(ctx, it); err != nil {
			t.Fatal(err)
		}
		var all []int
		for _, c := range counts {
			all = append(all, c)
		}
		slices.Sort(all)
		slices.Reverse(all)
		// Exclude one of the most popular items: the list must hold the
		// next counts, in non-increasing order.
		var top1 string
		for i, c := range counts {
			if c == all[0] && (top1 == "" || i < top1) {
				top1 = i
			}
		}
		got, _ := p.TopK(ctx, "", 10, map[string]bool{top1: true})
		want := all[1:min(11, len(all))]
		var gotCounts []int
		for _, i := range got {
			if i == top1 {
				t.Fatalf("step %d: excluded item listed", step)
			}
			gotCounts = append(gotCounts, counts[i])
			if p.Count(i) != float64(counts[i]) {
				t.Fatalf("step %d: Count(%s) = %v, want %d", step, i, p.Count(i), counts[i])
			}
		}
		if !reflect.DeepEqual(gotCounts, want) {
			t.Fatalf("step %d: top counts %v, want %v", step, gotCounts, want)
		}
	}
	s, _ := p.Score(ctx, "", []string{"i1", "never"})
	if s[0] != float64(counts["i1"]) || !math.IsInf(s[1], -1) {
		t.Fatalf("score %v", s)
	}
	// Fit starts afresh.
	if err := p.Fit(ctx, pairs("u:a", "v:a", "u:b")); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.TopK(ctx, "", 5, nil); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("after refit: %v", got)
	}
}
