package loadgen_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/recstream/recstream/eval"
	"github.com/recstream/recstream/loadgen"
)

func TestShopShape(t *testing.T) {
	opt := loadgen.ShopOptions{Users: 3000, Seed: 3}
	raw := loadgen.NewShop(opt).Events()
	if again := loadgen.NewShop(opt).Events(); !reflect.DeepEqual(raw, again) {
		t.Fatal("the same options and seed gave another log")
	}
	// The 5-core filter `recstream eval --synthetic-shop` applies.
	all := make([]eval.Interaction, len(raw))
	for i, e := range raw {
		all[i] = eval.Interaction{User: e.UserID, Item: e.ItemID, TS: e.TS}
	}
	evs := eval.FilterMinCounts(all, 5, 5)
	perUser := map[string]map[string]bool{}
	perItem := map[string]int{}
	var last int64
	for _, e := range evs {
		if e.TS < last {
			t.Fatalf("not in time order at %+v", e)
		}
		last = e.TS
		if perUser[e.User] == nil {
			perUser[e.User] = map[string]bool{}
		}
		if perUser[e.User][e.Item] {
			t.Fatalf("user %s has item %s twice", e.User, e.Item)
		}
		perUser[e.User][e.Item] = true
		perItem[e.Item]++
	}
	short := 0
	for _, items := range perUser {
		if len(items) < 5 {
			short++
		}
	}
	mean := float64(len(evs)) / float64(len(perUser))
	if len(perUser) < 2000 || mean < 6 || mean > 12 {
		t.Fatalf("%d users with %.1f items each on average, want most of 3000 with 6 to 12", len(perUser), mean)
	}
	if short != 0 {
		t.Fatalf("%d users with fewer than 5 items after the filter", short)
	}
	// A long tail: the most popular tenth of the items has a large share
	// of the events, and the median item few users.
	counts := make([]int, 0, len(perItem))
	for _, n := range perItem {
		counts = append(counts, n)
	}
	top, total := 0, 0
	for _, n := range counts {
		total += n
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	for _, n := range counts[:len(counts)/10] {
		top += n
	}
	if share := float64(top) / float64(total); share < 0.4 {
		t.Fatalf("the top tenth of the items has %.2f of the events, want a long tail (≥ 0.4)", share)
	}
	if med := counts[len(counts)/2]; med > 20 {
		t.Fatalf("the median item has %d users, want a sparse log", med)
	}
}
