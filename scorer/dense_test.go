package scorer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/recstream/recstream/store"
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

// candidateUsers picks the CandidateUsers users sharing the most seeds,
// ties by name, as sorting all of them would: random recent-user lists
// against a brute-force reference, for limits below, at and above the
// number of users met.
func TestCandidateUsersMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		nUsers := 1 + rng.IntN(400)
		names := make([]string, nUsers)
		for i := range names {
			// Names out of number order, so that ties test the names.
			names[i] = fmt.Sprintf("u%05d", rng.IntN(100000)*nUsers+i)
		}
		nSeeds := 1 + rng.IntN(30)
		seeds := make([]store.Scored, nSeeds)
		sd := seedsOf{at: make(map[string]int, nSeeds), users: make([][]int32, nSeeds)}
		for j := range seeds {
			seeds[j] = store.Scored{ID: fmt.Sprintf("i%d", j), Score: 1}
			sd.at[seeds[j].ID] = j
			// Recent users of an item are distinct.
			for _, v := range rng.Perm(nUsers)[:rng.IntN(min(nUsers, 60)+1)] {
				sd.users[j] = append(sd.users[j], int32(v))
			}
		}
		self := int32(rng.IntN(nUsers))
		k := []int{1, 5, 100, nUsers, nUsers + 3}[trial%5]
		s := New(nil, testOptions(func(o *Options) { o.CandidateUsers = k }))
		sc := new(scratch)
		sc.fitUsers(nUsers)
		ord := nameOrder{names: names}
		for _, n := range names {
			ord.keys = append(ord.keys, sortKey(n))
		}
		got := s.candidateUsers(self, seeds, &sd, ord, sc)

		shared := make(map[int32]int)
		for _, us := range sd.users {
			for _, v := range us {
				if v != self {
					shared[v]++
				}
			}
		}
		var want []int32
		for v := range shared {
			want = append(want, v)
		}
		slices.SortFunc(want, func(a, b int32) int {
			if shared[a] != shared[b] {
				return shared[b] - shared[a]
			}
			return strings.Compare(names[a], names[b])
		})
		want = want[:min(k, len(want))]
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (k=%d, %d users): got %v, want %v", trial, k, len(shared), got, want)
		}
		for v, n := range sc.shared {
			if n != 0 {
				t.Fatalf("trial %d: scratch count of user %d left at %d", trial, v, n)
			}
		}
	}
}

// nameOrder orders numbers as their names order, whatever the names share:
// short names, prefixes of each other, the first 8 bytes, bytes past 0x7f.
func TestNameOrderMatchesStrings(t *testing.T) {
	names := []string{"", "a", "ab", "abcdefgh", "abcdefghi", "abcdefgha", "abcdefgg", "abcdefgh\x01",
		"b", "u1", "u10", "u2", "u100000", "u99999", "\xc3\xa9t\xc3\xa9", "z\xff", "z", "zz", "0", "10", "9"}
	rng := rand.New(rand.NewPCG(9, 10))
	for range 300 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = "ab\x00\xff"[rng.IntN(4)]
		}
		names = append(names, string(b))
	}
	tb := newTable()
	ids := make([]int32, len(names))
	tb.number(names, ids)
	ord := tb.order()
	for i, a := range names {
		for j, b := range names {
			if got, want := ord.compare(ids[i], ids[j]), strings.Compare(a, b); got != want {
				t.Fatalf("compare(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// BenchmarkTableNumber numbers 200 names drawn from 200,000 numbered
// ones, as a scorer numbers a read neighbour vector or row.
func BenchmarkTableNumber(b *testing.B) {
	tb := newTable()
	all := make([]string, 200000)
	for k := range all {
		all[k] = fmt.Sprintf("i%d", k)
	}
	ids := make([]int32, len(all))
	tb.number(all, ids)
	rng := rand.New(rand.NewPCG(1, 2))
	batches := make([][]string, 1024)
	for k := range batches {
		batches[k] = make([]string, 200)
		for i := range batches[k] {
			// a copy, as a reply's names are
			batches[k][i] = strings.Clone(all[rng.IntN(len(all))])
		}
	}
	out := make([]int32, 200)
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		tb.number(batches[k%len(batches)], out)
		k++
	}
}
