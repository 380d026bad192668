package scorer_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// A variant refresh writes lists exactly as the plain scorer does: a user
// with no state (erased, or never seen) gets no list back, in either
// variant, and is not counted in the variant metrics.
func TestVariantRefreshSkipsUserWithoutState(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1500)
	o := wide("cosine")
	o.WeightTrending, o.TrendingSize = 0.1, 20
	erased, kept := f.users[0], f.users[1]
	if _, err := f.st.Forget(ctx, erased, store.ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	ob := o
	ob.WeightItemKNN = 3
	reg := prometheus.NewRegistry()
	v, err := scorer.NewVariants("salt1", []scorer.Variant{
		{Name: "a", Share: 1, Scorer: scorer.New(f.st, o)},
		{Name: "b", Share: 1, Scorer: scorer.New(f.st, ob)},
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	// Users without state in both variants.
	var ghosts []string
	for i := 0; len(ghosts) < 4; i++ {
		g := "ghost" + string(rune('a'+i))
		if (len(ghosts) < 2) == (v.Assign(g) == "a") {
			ghosts = append(ghosts, g)
		}
	}
	users := append([]string{erased, kept}, ghosts...)
	plain, err := scorer.New(f.st, o).Refresh(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := v.Refresh(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 1 || plain[0].User != kept {
		t.Fatalf("plain scorer wrote lists for %v, want only %s", listUsers(plain), kept)
	}
	if len(lists) != 1 || lists[0].User != kept || len(lists[0].Items) == 0 {
		t.Fatalf("variants wrote lists for %v, want only %s", listUsers(lists), kept)
	}
	for _, u := range append([]string{erased}, ghosts...) {
		if l, found, err := f.st.ReadList(ctx, u); err != nil || found {
			t.Fatalf("user %s without state: stored list %+v found %v err %v", u, l, found, err)
		}
	}
	total := testutil.ToFloat64(vecCounter(t, reg, "a")) + testutil.ToFloat64(vecCounter(t, reg, "b"))
	if total != 1 {
		t.Fatalf("variant lists counted %v, want 1", total)
	}
}

func listUsers(ls []store.List) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.User
	}
	return out
}
