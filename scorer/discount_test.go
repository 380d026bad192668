package scorer_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// Impression discounting: a candidate shown k times since the user last
// clicked it scores factor^k times its undiscounted score; a click resets
// k, and the other candidates keep their scores.
func TestImpressionDiscount(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix, o.Attribution.Window = "d:", time.Hour }))
	g := loadgen.New(loadgen.Options{Users: 30, Items: 40, Seed: 5, Start: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Step: time.Second})
	var ops []store.Op
	for i := 0; i < 1500; i++ {
		ev := g.Next()
		ops = append(ops, store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS})
	}
	ctx := context.Background()
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	user := loadgen.UserID(3)
	opt := wide("cosine")
	opt.ExcludeSeen = true
	base, err := scorer.New(st, opt).Score(ctx, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	cands := base[0].Candidates()
	if len(cands) < 4 {
		t.Fatalf("%d candidates", len(cands))
	}
	shown := []string{cands[0].Item, cands[1].Item, cands[2].Item}
	ts := ops[len(ops)-1].TS
	off := int64(len(ops))
	add := func(op store.Op) {
		op.Offset, op.User = off, user
		off++
		if _, err := st.Apply(ctx, 0, []store.Op{op}); err != nil {
			t.Fatal(err)
		}
	}
	// Shown three times; then the second item clicked and shown once more.
	for k := 0; k < 3; k++ {
		add(store.Op{Type: event.Impression, TS: ts + int64(k), Shown: &event.Shown{Items: shown}})
	}
	add(store.Op{Type: event.Click, Item: shown[1], TS: ts + 10})
	add(store.Op{Type: event.Impression, TS: ts + 11, Shown: &event.Shown{Items: shown[1:2]}})

	counts, err := st.ShownCounts(ctx, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{shown[0]: 3, shown[1]: 1, shown[2]: 3}; len(counts[0]) != 3 || counts[0][shown[0]] != 3 || counts[0][shown[1]] != 1 || counts[0][shown[2]] != 3 {
		t.Fatalf("shown counts %v, want %v", counts[0], want)
	}
	undiscounted, err := scorer.New(st, opt).Score(ctx, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	opt.ImpressionDiscount, opt.Shown = 0.5, st.ShownCounts
	got, err := scorer.New(st, opt).Score(ctx, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range undiscounted[0].Candidates() {
		want := c.Score * math.Pow(0.5, float64(counts[0][c.Item]))
		d := got[0].Candidate(c.Item)
		if d == nil || math.Abs(d.Score-want) > 1e-12 {
			t.Errorf("%s: discounted score %v, want %v (shown %d times)", c.Item, d, want, counts[0][c.Item])
		}
	}
}
