package loadgen_test

import (
	"slices"
	"testing"

	"github.com/recstream/recstream/loadgen"
)

// The sequential log has the shape it promises: every user's sequence of
// MinLen to MaxLen events in time order, a long tail of items, and the
// planted successors following their antecedents about Follow of the time,
// the first successor most often.
func TestSequenceShape(t *testing.T) {
	g := loadgen.NewSequence(loadgen.SequenceOptions{Users: 3000, Seed: 4})
	o := g.Options()
	evs := g.Events()
	perUser := map[string][]string{}
	count := map[string]int{}
	for i, e := range evs {
		if i > 0 && e.TS < evs[i-1].TS {
			t.Fatal("events not in time order")
		}
		perUser[e.UserID] = append(perUser[e.UserID], e.ItemID)
		count[e.ItemID]++
	}
	if len(perUser) != o.Users {
		t.Fatalf("%d users, want %d", len(perUser), o.Users)
	}
	for u, seq := range perUser {
		if len(seq) < o.MinLen || len(seq) > o.MaxLen {
			t.Fatalf("user %s: %d events, want %d to %d", u, len(seq), o.MinLen, o.MaxLen)
		}
	}
	// Long tail: many items are met at most twice, a few very often.
	rare, top := 0, 0
	for _, n := range count {
		if n <= 2 {
			rare++
		}
		top = max(top, n)
	}
	if rare < len(count)/3 || top < 50*len(evs)/len(count) {
		t.Errorf("%d of %d items met at most twice, most met %d times: not a long tail", rare, len(count), top)
	}
	// Planted transitions.
	after, followed, first := 0, 0, 0
	for _, seq := range perUser {
		for k := 0; k+1 < len(seq); k++ {
			succ := g.Successors(seq[k])
			if succ == nil {
				continue
			}
			after++
			if slices.Contains(succ, seq[k+1]) {
				followed++
			}
			if seq[k+1] == succ[0] {
				first++
			}
		}
	}
	share := float64(followed) / float64(after)
	if after < 1000 || share < o.Follow-0.05 || share > o.Follow+0.05 {
		t.Errorf("%d of %d events after an antecedent are its successors (%.2f), want about %.2f", followed, after, share, o.Follow)
	}
	if first*10 < followed*4 {
		t.Errorf("first successor %d of %d followed, want about half", first, followed)
	}
	if len(g.Antecedents()) != o.Antecedents || g.Successors("nope") != nil {
		t.Error("antecedents or successors misreported")
	}
}
