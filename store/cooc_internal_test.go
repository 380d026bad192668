package store

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// benchRow is a co-occurrence row as writers leave it: one folded entry
// of model.cooc_cap (200) items and deltas entries of 10 items each (half
// of them already in the row).
func benchRow(deltas int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	id := func(k int) string { return "i" + strconv.Itoa(10000+k) }
	folded := make([]Scored, 200)
	for k := range folded {
		folded[k] = Scored{ID: id(k * 7), Score: float64(200 - k)}
	}
	entries := []string{encodeCoocRow(folded)}
	names := make([]string, 5000)
	for k := range names {
		names[k] = id(k)
	}
	for e := 0; e < deltas; e++ {
		var c coSum
		for k := 0; k < 10; k++ {
			if k%2 == 0 {
				c.add(uint32(rng.IntN(200)*7), rng.Float64())
			} else {
				c.add(uint32(2000+rng.IntN(3000)), rng.Float64())
			}
		}
		entries = append(entries, deltaEntry(3, int64(e*100), int64(e*100+99), &c, names))
	}
	return entries
}

// BenchmarkFoldCooc folds a row of 32 deltas as folding does: ranks it
// and encodes the top 200.
func BenchmarkFoldCooc(b *testing.B) {
	entries := benchRow(32)
	b.ReportAllocs()
	for b.Loop() {
		r, bad, err := foldCooc(entries)
		if bad != 0 || err != nil {
			b.Fatal(bad, err)
		}
		if encodeCoocRow(r.top(200)) == "" {
			b.Fatal("empty row")
		}
	}
}

// BenchmarkRowTop reads a row's top 50 as the scorer does (item-kNN's
// neighbours), by folding the whole row (fold) and with rowTop, for rows
// with 0, 8 and 32 deltas after their folded entry; rowTopDeep reads the
// top 8,000 with rowTop, the whole row, as the scorer does with
// deploy/profiles/deep-rows.yaml's scorer.item_neighbour_budget.
func BenchmarkRowTop(b *testing.B) {
	for _, deltas := range []int{0, 8, 32} {
		entries := benchRow(deltas)
		b.Run(fmt.Sprintf("deltas=%d/fold", deltas), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, _, _ := foldCooc(entries)
				if len(r.top(50)) != 50 {
					b.Fatal("short row")
				}
			}
		})
		b.Run(fmt.Sprintf("deltas=%d/rowTop", deltas), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if top, ok := rowTop(entries, 50); !ok || len(top) != 50 {
					b.Fatal("not answered")
				}
			}
		})
		b.Run(fmt.Sprintf("deltas=%d/rowTopDeep", deltas), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if top, ok := rowTop(entries, 8000); !ok || len(top) < 200 {
					b.Fatal("not answered")
				}
			}
		})
	}
}

// An item erased from a row and met again afterwards is ranked once, with
// what it gained since.
func TestCoocTopErasedThenMetAgain(t *testing.T) {
	names := []string{"x", "y"}
	delta := func(first int64, items map[string]float64, order ...string) string {
		var c coSum
		for _, it := range order {
			c.add(uint32(slices.Index(names, it)), items[it])
		}
		return deltaEntry(0, first, first, &c, names)
	}
	entries := []string{
		delta(1, map[string]float64{"x": 2, "y": 5}, "x", "y"),
		erasureEntry("u1", []string{"x"}, map[string]float64{"x": 2}),
		delta(2, map[string]float64{"x": 3}, "x"),
	}
	r, bad, err := foldCooc(entries)
	if bad != 0 || err != nil {
		t.Fatal(bad, err)
	}
	got := r.top(0)
	want := []Scored{{ID: "y", Score: 5}, {ID: "x", Score: 3}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("top = %v, want %v", got, want)
	}
}

// coSum gives the sums and first-met order a row by name gives, below and
// past the size where it switches from scanning to a map.
func TestCoSumMatchesRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := make([]string, 60)
	for k := range names {
		names[k] = "i" + strconv.Itoa(k)
	}
	for _, distinct := range []int{1, coSumScan, coSumScan + 1, 60} {
		var c coSum
		want := newCoocRowSized(0)
		for n := 0; n < 400; n++ {
			id := uint32(rng.IntN(distinct))
			d := rng.Float64()
			c.add(id, d)
			want.add(names[id], d)
		}
		got := c.row(names)
		if !slices.Equal(got.order, want.order) {
			t.Fatalf("%d items: order %v, want %v", distinct, got.order, want.order)
		}
		for it, v := range want.val {
			if got.val[it] != v {
				t.Fatalf("%d items: %s = %v, want %v", distinct, it, got.val[it], v)
			}
		}
		// The entry folds back to the same row.
		back, bad, err := foldCooc([]string{deltaEntry(1, 5, 9, &c, names)})
		if bad != 0 || err != nil || !slices.Equal(back.order, want.order) {
			t.Fatalf("%d items: entry folds to %v (%d bad, %v)", distinct, back.order, bad, err)
		}
		for it, v := range want.val {
			if back.val[it] != v {
				t.Fatalf("%d items: entry gives %s = %v, want %v", distinct, it, back.val[it], v)
			}
		}
	}
}

// top(n) is the head of the row in ZREVRANGE's order (value descending,
// equal values by name descending), for n below, at and past the row's
// length, ties included.
func TestCoocRowTop(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{0, 1, 7, 120, 260} {
		for _, n := range []int{0, 1, 50, 120, 300} {
			r := newCoocRowSized(size)
			for range size {
				r.add("i"+strconv.Itoa(rng.IntN(1000)), float64(rng.IntN(8))) // many ties
			}
			want := make([]Scored, 0, len(r.val))
			for it, v := range r.val {
				want = append(want, Scored{ID: it, Score: v})
			}
			slices.SortFunc(want, func(a, b Scored) int {
				if a.Score != b.Score {
					return cmp.Compare(b.Score, a.Score)
				}
				return strings.Compare(b.ID, a.ID)
			})
			if n > 0 && len(want) > n {
				want = want[:n]
			}
			if got := r.top(n); !slices.Equal(got, want) {
				t.Fatalf("%d items, top %d: %v, want %v", size, n, got, want)
			}
		}
	}
}

// rowTop's head of a row without folding it equals the folded row's top
// (items, order and values to the bit) on rows folded and grown as
// writers grow them, ties included; rows it cannot answer are left to the
// fold.
func TestRowTopMatchesFold(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	names := make([]string, 400)
	for k := range names {
		names[k] = "i" + strconv.Itoa(k)
	}
	delta := func(items int) string {
		var c coSum
		for range 1 + rng.IntN(items) {
			// halves and random values: many ties, and sums whose order matters
			d := float64(1+rng.IntN(4)) / 2
			if rng.IntN(3) == 0 {
				d = rng.Float64()
			}
			c.add(uint32(rng.IntN(len(names))), d)
		}
		return deltaEntry(int32(rng.IntN(4)), 1, 2, &c, names)
	}
	fast := 0
	for trial := range 300 {
		cap := []int{5, 30, 200}[trial%3]
		var entries []string
		for range rng.IntN(40) {
			entries = append(entries, delta(1+rng.IntN(20)))
			if rng.IntN(12) == 0 { // a fold, as foldChunk writes it
				r, _, _ := foldCooc(entries)
				entries = []string{encodeCoocRow(r.top(cap))}
			}
		}
		for _, n := range []int{1, 5, 30, 200, 1000} {
			r, bad, err := foldCooc(entries)
			if bad != 0 || err != nil {
				t.Fatal(bad, err)
			}
			want := r.top(n)
			got, ok := rowTop(entries, n)
			if !ok {
				if len(entries) > 0 {
					t.Fatalf("trial %d, n %d: rowTop declined a row of %d entries", trial, n, len(entries))
				}
				continue
			}
			fast++
			if len(got) != len(want) {
				t.Fatalf("trial %d, n %d: %d items, want %d", trial, n, len(got), len(want))
			}
			for k := range want {
				if got[k].ID != want[k].ID || math.Float64bits(got[k].Score) != math.Float64bits(want[k].Score) {
					t.Fatalf("trial %d, n %d: item %d = %v, want %v", trial, n, k, got[k], want[k])
				}
			}
		}
	}
	if fast < 1000 {
		t.Errorf("rowTop answered %d rows only", fast)
	}

	// Rows it must leave to the fold.
	ranked := encodeCoocRow([]Scored{{ID: "b", Score: 3}, {ID: "a", Score: 1}})
	for name, es := range map[string][]string{
		"unranked folded entry":  {encodeCoocRow([]Scored{{ID: "a", Score: 1}, {ID: "b", Score: 3}})},
		"equal items":            {encodeCoocRow([]Scored{{ID: "a", Score: 1}, {ID: "a", Score: 1}})},
		"named twice":            {encodeCoocRow([]Scored{{ID: "a", Score: 3}, {ID: "a", Score: 1}}), "d0:1-1|" + string(appendPair(nil, "a", 1))},
		"erasure":                {ranked, erasureEntry("u1", []string{"a"}, map[string]float64{"a": 1})},
		"per-event entry":        {ranked, "c0:1|0.5|a"},
		"folded entry not first": {"d0:1-1|" + string(appendPair(nil, "a", 1)), ranked},
		"malformed delta":        {ranked, "d0:4-9|\x05ab"},
		"delta without header":   {ranked, "d0:4-9" + string(appendPair(nil, "c", 1))},
		"malformed folded entry": {"s\x05ab"},
		"empty entry":            {ranked, ""},
	} {
		if _, ok := rowTop(es, 10); ok {
			t.Errorf("%s: rowTop answered", name)
		}
	}
	if _, ok := rowTop([]string{ranked}, 0); ok {
		t.Error("n = 0: rowTop answered")
	}
}
