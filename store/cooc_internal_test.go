package store

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkFoldCooc folds a co-occurrence row as writers and readers do:
// one folded entry of model.cooc_cap (200) items and 32 delta entries of
// 10 items each (half of them already in the row), then ranks it and
// encodes the top 200.
func BenchmarkFoldCooc(b *testing.B) {
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
	for e := 0; e < 32; e++ {
		var c coSum
		for k := 0; k < 10; k++ {
			if k%2 == 0 {
				c.add(uint32(rng.IntN(200)*7), rng.Float64())
			} else {
				c.add(uint32(2000+rng.IntN(3000)), rng.Float64())
			}
		}
		entries = append(entries, deltaEntry("3", int64(e*100), int64(e*100+99), &c, names))
	}
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

// An item erased from a row and met again afterwards is ranked once, with
// what it gained since.
func TestCoocTopErasedThenMetAgain(t *testing.T) {
	names := []string{"x", "y"}
	delta := func(first int64, items map[string]float64, order ...string) string {
		var c coSum
		for _, it := range order {
			c.add(uint32(slices.Index(names, it)), items[it])
		}
		return deltaEntry("0", first, first, &c, names)
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
		back, bad, err := foldCooc([]string{deltaEntry("1", 5, 9, &c, names)})
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
