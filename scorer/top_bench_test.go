package scorer

import (
	"strconv"
	"testing"

	"github.com/recstream/recstream/store"
)

// BenchmarkTop is the top-N selection of one user's candidates: 2,000
// candidates (about what user-kNN and item-kNN give at default settings),
// purchased and seen items dropped, the best 20 kept.
func BenchmarkTop(b *testing.B) {
	s := New(nil, Options{ExcludeSeen: true})
	us := UserScores{Profile: store.Profile{User: "u1", Purchased: map[string]bool{"i7": true}}}
	for i := 0; i < 50; i++ {
		us.Profile.Items = append(us.Profile.Items, store.Scored{ID: "i" + strconv.Itoa(i*3), Score: 1})
	}
	for i := 0; i < 2000; i++ {
		id := "i" + strconv.Itoa(i)
		addCandidate(&us, id, float64((i*7919)%2003))
	}
	b.ReportAllocs()
	for b.Loop() {
		if got := s.top(us); len(got) != s.opt.TopN {
			b.Fatalf("%d items", len(got))
		}
	}
}
