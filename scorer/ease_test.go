package scorer_test

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// TestEASE refreshes the EASE model from the live user vectors in Redis and
// checks it against the closed form computed here by Gauss-Jordan
// inversion, that a model keeping RowItems weights per item keeps the
// largest in magnitude, and that the scorer blends it as the "ease" source.
func TestEASE(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	e := scorer.NewEASE(testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.MaxItems, o.RowItems, o.UserItems = 5, 1000, 1000, 100000 }))
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

	// Pruned rows: the rowItems weights largest in magnitude, equal to
	// the closed form, the rest 0.
	const rowItems = 7
	pruned := scorer.NewEASE(testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.MaxItems, o.RowItems, o.UserItems = 5, 1000, rowItems, 100000 }))
	if err := pruned.Refresh(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var row []int
		for j := 0; j < n; j++ {
			if j != i && P(i, j) != 0 {
				row = append(row, j)
			}
		}
		mag := func(j int) float64 { return math.Abs(P(i, j) / P(j, j)) }
		sort.Slice(row, func(a, b int) bool { return mag(row[a]) > mag(row[b]) })
		kept := 0
		for _, j := range row {
			if got := pruned.Weight(items[i], items[j]); got != 0 {
				kept++
				if want := e.Weight(items[i], items[j]); got != want {
					t.Fatalf("pruned B[%s][%s] = %g, the full model %g", items[i], items[j], got, want)
				}
			}
		}
		if want := min(rowItems, len(row)); kept != want {
			t.Fatalf("row %s keeps %d weights, want %d", items[i], kept, want)
		}
		if len(row) > rowItems {
			last := mag(row[rowItems-1])
			for _, j := range row {
				kept := pruned.Weight(items[i], items[j]) != 0
				// Float32 weights: values within 1e-6 of the cut may swap.
				if m := mag(j); (m > last*(1+1e-6) && !kept) || (m < last*(1-1e-6) && kept) {
					t.Fatalf("row %s: B[%s] = %g kept %v, the %dth largest is %g", items[i], items[j], m, kept, rowItems, last)
				}
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
				// The reason names the user's item of the largest
				// contribution x_ui·B_ij.
				best, seed := 0.0, ""
				for _, it := range u.Profile.Items {
					if v := it.Score * e.Weight(it.ID, c.Item); v > best {
						best, seed = v, it.ID
					}
				}
				if !strings.HasSuffix(c.Reason, " "+seed) && !strings.Contains(c.Reason, " "+seed+" ") {
					t.Fatalf("user %s item %s: reason %q, want it to name %s", u.Profile.User, c.Item, c.Reason, seed)
				}
			}
		}
		if got == 0 {
			t.Errorf("user %s: no ease candidates", u.Profile.User)
		}
	}
	// Against x·B computed here, with the pruned model: every EASE score
	// equals it, and the model's 4·TopN best items beyond the user's own
	// are candidates.
	e = pruned
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

// TestEASESharedModel checks that score roles share one fit through Redis:
// the first Update fits and writes the model, another process's Update
// loads an equal model without fitting, concurrent Updates of a stale
// model fit once, and a damaged blob is refused with the model kept.
func TestEASESharedModel(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	opts := func(interval time.Duration) scorer.EASEOptions {
		return testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.RowItems, o.Interval = 5, 20, interval })
	}
	a, b := scorer.NewEASE(opts(time.Hour)), scorer.NewEASE(opts(time.Hour))
	// A process without the score role loads but never fits.
	if fitted, err := b.Update(ctx, f.st, false); err != nil || fitted || b.Items() != 0 {
		t.Fatalf("update without fit: fitted %v, %d items, %v", fitted, b.Items(), err)
	}
	if fitted, err := a.Update(ctx, f.st, true); err != nil || !fitted {
		t.Fatalf("first update: fitted %v, %v", fitted, err)
	}
	if fitted, err := b.Update(ctx, f.st, true); err != nil || fitted {
		t.Fatalf("second process: fitted %v, %v; want the shared model loaded", fitted, err)
	}
	if fitted, err := a.Update(ctx, f.st, true); err != nil || fitted {
		t.Fatalf("a fresh model was fitted again: %v, %v", fitted, err)
	}
	var items []string
	for _, u := range f.users {
		for it := range f.vector(t, u) {
			items = append(items, it)
		}
	}
	if a.Items() == 0 || a.Items() != b.Items() {
		t.Fatalf("items: fitted %d, loaded %d", a.Items(), b.Items())
	}
	nonzero := 0
	for _, i := range items {
		for _, j := range items {
			wa, wb := a.Weight(i, j), b.Weight(i, j)
			if wa != wb {
				t.Fatalf("B[%s][%s]: fitted %g, loaded %g", i, j, wa, wb)
			}
			if wa != 0 {
				nonzero++
			}
		}
	}
	if nonzero == 0 {
		t.Fatal("the model has no weights")
	}

	// A stale model: of several processes updating at once, one fits.
	const procs = 4
	short := make([]*scorer.EASE, procs)
	for i := range short {
		short[i] = scorer.NewEASE(opts(50 * time.Millisecond))
	}
	time.Sleep(60 * time.Millisecond) // past the fresh-enough time
	if err := f.rdb.Del(ctx, store.Keys{Prefix: "s:"}.EASELease()).Err(); err != nil {
		t.Fatal(err)
	}
	var fits atomic.Int32
	var wg sync.WaitGroup
	for _, e := range short {
		wg.Go(func() {
			fitted, err := e.Update(ctx, f.st, true)
			if err != nil {
				t.Error(err)
			}
			if fitted {
				fits.Add(1)
			}
		})
	}
	wg.Wait()
	if n := fits.Load(); n != 1 {
		t.Fatalf("%d of %d processes fitted a stale model, want 1", n, procs)
	}

	// A damaged blob, newer than b's model, is refused; b keeps its model.
	key := store.Keys{Prefix: "s:"}.EASEModel()
	for _, blob := range []string{"garbage", "\x96\x01\x00\x91\xa1x\x92\x00\x05\x90\x90"} {
		if err := f.rdb.HSet(ctx, key, "built", time.Now().Add(time.Hour).UnixMilli(), "model", blob).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Update(ctx, f.st, true); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("blob %q: update error %v, want malformed", blob, err)
		}
		if b.Items() != a.Items() {
			t.Fatalf("blob %q replaced the model: %d items", blob, b.Items())
		}
	}
}

// TestEASESolver checks a fit solved through EASEOptions.Solver (the
// request and the model's blob crossing as bytes, as to and from
// `recstream ease-solve`) against one solved here, and that a failing
// solver leaves the fit to this process.
func TestEASESolver(t *testing.T) {
	f := newFixture(t, 1500)
	ctx := context.Background()
	opts := func(solver func(context.Context, []byte) ([]byte, error)) scorer.EASEOptions {
		return testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.RowItems, o.Solver = 5, 20, solver })
	}
	here := scorer.NewEASE(opts(nil))
	calls := 0
	elsewhere := scorer.NewEASE(opts(func(ctx context.Context, req []byte) ([]byte, error) {
		calls++
		return scorer.SolveEASERequest(ctx, req)
	}))
	failing := scorer.NewEASE(opts(func(context.Context, []byte) ([]byte, error) { return nil, errors.New("no child") }))
	damaged := scorer.NewEASE(opts(func(context.Context, []byte) ([]byte, error) { return []byte("garbage"), nil }))
	for _, e := range []*scorer.EASE{here, elsewhere, failing, damaged} {
		if err := e.Refresh(ctx, f.st); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("solver called %d times", calls)
	}
	var items []string
	for _, u := range f.users {
		for it := range f.vector(t, u) {
			items = append(items, it)
		}
	}
	nonzero := 0
	for _, i := range items {
		for _, j := range items {
			w := here.Weight(i, j)
			if w != 0 {
				nonzero++
			}
			for name, e := range map[string]*scorer.EASE{"solver": elsewhere, "failing solver": failing, "damaged answer": damaged} {
				if got := e.Weight(i, j); got != w {
					t.Fatalf("%s: B[%s][%s] = %g, here %g", name, i, j, got, w)
				}
			}
		}
	}
	if nonzero == 0 || elsewhere.Items() != here.Items() {
		t.Fatalf("%d weights, items %d / %d", nonzero, elsewhere.Items(), here.Items())
	}
	if _, err := scorer.SolveEASERequest(ctx, []byte("\x97\x01")); err == nil {
		t.Fatal("a truncated request was solved")
	}
}
