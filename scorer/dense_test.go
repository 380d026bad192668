package scorer

import (
	"fmt"
	"sync"
	"testing"
)

// Concurrent callers get one number per name, numbers 0…n-1 with no gaps,
// and the names by number match.
func TestTableNumbersConcurrently(t *testing.T) {
	tb := newTable()
	const workers, names = 8, 500
	got := make([][]int32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]string, names)
			for i := range in {
				in[i] = fmt.Sprintf("i%d", (i*7+w*13)%names)
			}
			got[w] = make([]int32, names)
			tb.number(in, got[w])
			for i, id := range got[w] {
				if tb.snapshot()[id] != in[i] {
					t.Errorf("worker %d: %s numbered %d, which names %s", w, in[i], id, tb.snapshot()[id])
				}
			}
		}()
	}
	wg.Wait()
	if tb.len() != names {
		t.Fatalf("%d numbers for %d names", tb.len(), names)
	}
	for i, n := range tb.snapshot() {
		if tb.lookup(n) != int32(i) || tb.id(n) != int32(i) {
			t.Fatalf("%s: lookup %d id %d, want %d", n, tb.lookup(n), tb.id(n), i)
		}
	}
	if tb.lookup("absent") != -1 {
		t.Fatal("an absent name has a number")
	}
}

func TestBitset(t *testing.T) {
	b := make(bitset, 3)
	for _, id := range []int32{0, 63, 64, 130} {
		b.add(id)
	}
	for id := int32(0); id < 192; id++ {
		want := id == 0 || id == 63 || id == 64 || id == 130
		if b.has(id) != want {
			t.Fatalf("has(%d) = %v", id, b.has(id))
		}
	}
	b.remove(64)
	if b.has(64) || !b.has(63) {
		t.Fatal("remove")
	}
}
