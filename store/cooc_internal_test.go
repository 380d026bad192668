package store

import (
	"math/rand/v2"
	"strconv"
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
	for e := 0; e < 32; e++ {
		r := newCoocRow()
		for k := 0; k < 10; k++ {
			if k%2 == 0 {
				r.add(id(rng.IntN(200)*7), rng.Float64())
			} else {
				r.add(id(2000+rng.IntN(3000)), rng.Float64())
			}
		}
		entries = append(entries, deltaEntry("3", int64(e*100), int64(e*100+99), r))
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
	delta := func(first int64, items map[string]float64, order ...string) string {
		r := newCoocRow()
		for _, it := range order {
			r.add(it, items[it])
		}
		return deltaEntry("0", first, first, r)
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
