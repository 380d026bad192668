package scorer_test

import (
	"context"
	"math"
	"sort"
	"testing"

	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/scorer"
)

// TestEASE refreshes the EASE model from the live user vectors in Redis and
// checks it against the closed form computed here by Gauss-Jordan
// inversion, and that the scorer blends it as the "ease" source.
func TestEASE(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	e := scorer.NewEASE(testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.MaxItems, o.UserItems = 5, 1000, 100000 }))
	if e.Items() != 0 {
		t.Fatal("model before refresh")
	}
	if err := e.Refresh(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	// X: binary user-item matrix of every user vector.
	idx := map[string]int{}
	var items []string
	var rows [][]int
	for _, u := range f.users {
		var row []int
		for it := range f.vector(t, u) {
			i, ok := idx[it]
			if !ok {
				i = len(items)
				idx[it] = i
				items = append(items, it)
			}
			row = append(row, i)
		}
		rows = append(rows, row)
	}
	n := len(items)
	if e.Items() != n {
		t.Fatalf("model has %d items, the vectors %d", e.Items(), n)
	}
	a := make([][]float64, n)
	for i := range a {
		a[i] = make([]float64, 2*n)
		a[i][i] += 5
		a[i][n+i] = 1
	}
	for _, r := range rows {
		for _, i := range r {
			for _, j := range r {
				a[i][j]++
			}
		}
	}
	for c := 0; c < n; c++ { // Gauss-Jordan with partial pivoting
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		d := a[c][c]
		for k := range a[c] {
			a[c][k] /= d
		}
		for r := 0; r < n; r++ {
			if r != c && a[r][c] != 0 {
				m := a[r][c]
				for k := range a[r] {
					a[r][k] -= m * a[c][k]
				}
			}
		}
	}
	P := func(i, j int) float64 { return a[i][n+j] }
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			want := 0.0
			if i != j {
				want = -P(i, j) / P(j, j)
			}
			// The model keeps B in float32: 2^-24 relative.
			if got := e.Weight(items[i], items[j]); math.Abs(got-want) > 1e-7*math.Max(1, math.Abs(want)) {
				t.Fatalf("B[%s][%s] = %g, want %g", items[i], items[j], got, want)
			}
		}
	}

	sc := scorer.New(f.st, testopts.Scorer(func(o *scorer.Options) { o.WeightEASE, o.EASE, o.ExcludeSeen = 1, e, true }))
	us, err := sc.Score(ctx, f.users[:5])
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		got := 0
		for _, c := range u.Candidates() {
			if c.Sources.Of(scorer.SourceEASE) > 0 && c.Source == scorer.SourceEASE && c.Reason != "" {
				got++
			}
		}
		if got == 0 {
			t.Errorf("user %s: no ease candidates", u.Profile.User)
		}
	}
	// Against x·B computed here: every EASE score equals it, and the
	// model's 4·TopN best items beyond the user's own are candidates.
	capped := scorer.New(f.st, testopts.Scorer(func(o *scorer.Options) { o.WeightEASE, o.EASE, o.TopN = 1, e, 3 }))
	us, err = capped.Score(ctx, f.users[:20])
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		x := scorer.NormalisedVector(u.Profile.Items)
		want := map[string]float64{}
		var pos []string
		for _, j := range items {
			v := 0.0
			for i, w := range x {
				v += w * e.Weight(i, j)
			}
			if v > 0 {
				want[j] = v
				pos = append(pos, j)
			}
		}
		got := map[string]float64{}
		for _, c := range u.Candidates() {
			if v := c.Sources.Of(scorer.SourceEASE); v > 0 {
				got[c.Item] = v
				if math.Abs(v-want[c.Item]) > 1e-6*math.Max(1, math.Abs(want[c.Item])) {
					t.Fatalf("user %s item %s: ease %g, want %g", u.Profile.User, c.Item, v, want[c.Item])
				}
			}
		}
		sort.Slice(pos, func(a, b int) bool { return want[pos[a]] > want[pos[b]] })
		k := min(len(pos), 4*3+len(u.Profile.Items))
		for _, j := range pos[:k] {
			// Float32 weights: an item tied with the last kept may swap.
			if _, ok := got[j]; !ok && want[j] > want[pos[k-1]]*(1+1e-6) {
				t.Fatalf("user %s: ease's item %s (%g) is not a candidate", u.Profile.User, j, want[j])
			}
		}
		if len(pos) > 2*k && len(got) >= len(pos) {
			t.Fatalf("user %s: all %d items with an ease score are candidates, want about %d", u.Profile.User, len(got), k)
		}
	}
	// The item cap keeps the items with the most users.
	small := scorer.NewEASE(testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.MaxItems = 5, 10 }))
	if err := small.Refresh(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	if small.Items() != 10 {
		t.Errorf("capped model has %d items", small.Items())
	}
}
