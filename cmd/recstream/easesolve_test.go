package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// TestEASEChildSolver fits the EASE model of real user vectors through
// `recstream ease-solve` as a child process and checks it against the fit
// solved in this process.
func TestEASEChildSolver(t *testing.T) {
	ctx := context.Background()
	st := store.New(redistest.Start(t).Client(t), testopts.Store(nil))
	g := loadgen.New(loadgen.Options{Users: 60, Items: 80, Seed: 3, Start: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Step: time.Minute})
	var ops []store.Op
	for i := range 1500 {
		ev := g.Next()
		ops = append(ops, store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS})
	}
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	opts := func(solver func(context.Context, []byte) ([]byte, error)) scorer.EASEOptions {
		return testopts.EASE(func(o *scorer.EASEOptions) { o.Lambda, o.RowItems, o.Solver = 5, 20, solver })
	}
	calls := 0
	child := easeChildSolver(os.Args[0], append(os.Environ(), "RECSTREAM_TEST_MAIN=1"))
	elsewhere := scorer.NewEASE(opts(func(ctx context.Context, req []byte) ([]byte, error) {
		calls++
		blob, err := child(ctx, req)
		if err != nil {
			t.Errorf("child: %v", err)
		}
		return blob, err
	}))
	here := scorer.NewEASE(opts(nil))
	for _, e := range []*scorer.EASE{elsewhere, here} {
		if err := e.Refresh(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 || here.Items() == 0 || elsewhere.Items() != here.Items() {
		t.Fatalf("%d child calls; items %d here, %d in the child", calls, here.Items(), elsewhere.Items())
	}
	nonzero := 0
	for i := range 80 {
		for j := range 80 {
			a, b := loadgen.ItemID(i), loadgen.ItemID(j)
			w := here.Weight(a, b)
			if got := elsewhere.Weight(a, b); got != w {
				t.Fatalf("B[%s][%s]: child %g, here %g", a, b, got, w)
			}
			if w != 0 {
				nonzero++
			}
		}
	}
	if nonzero == 0 {
		t.Fatal("no weights")
	}
	if code, _, errOut := recstream(t, "ease-solve", "extra"); code != 2 || errOut == "" {
		t.Errorf("ease-solve with an argument: exit %d, stderr %q", code, errOut)
	}
}
