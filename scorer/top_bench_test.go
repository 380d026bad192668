package scorer

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/recstream/recstream/store"
)

// BenchmarkTop is the top-N selection of one user's candidates: 2,000
// candidates (about what user-kNN and item-kNN give at default settings),
// purchased and seen items dropped, the best 20 kept.
func BenchmarkTop(b *testing.B) {
	s := New(nil, testOptions(func(o *Options) { o.ExcludeSeen = true }))
	us := UserScores{Profile: store.Profile{User: "u1", Purchased: map[string]bool{"i7": true}}}
	for i := 0; i < 50; i++ {
		us.Profile.Items = append(us.Profile.Items, store.Scored{ID: "i" + strconv.Itoa(i*3), Score: 1})
	}
	for i := 0; i < 2000; i++ {
		id := "i" + strconv.Itoa(i)
		addCandidate(&us, id, float64((i*7919)%2003))
	}
	for i := 0; i < 50; i++ {
		us.t.rows[i*3].own = true // the user's own items, as Score marks them
	}
	b.ReportAllocs()
	for b.Loop() {
		if got := s.top(us); len(got) != s.opt.TopN {
			b.Fatalf("%d items", len(got))
		}
	}
}

// BenchmarkUserKNNSpread is user-kNN over 100 candidate neighbours drawn
// from 100,000 cached vectors of 50 items each (50,000 items): the
// vectors, allocated in random order, are too many for the CPU's caches,
// as in a deployment's scorer, so each candidate's vector is a cache miss.
// ns/op is per rescored user.
func BenchmarkUserKNNSpread(b *testing.B) {
	const users, items, vecLen, userLen, cands = 100000, 50000, 50, 200, 100
	rng := rand.New(rand.NewPCG(7, 8))
	item := func() int32 { // skewed, so that users and neighbours share items
		u := rng.Float64()
		return int32(float64(items) * u * u * u)
	}
	s := New(nil, testOptions(nil))
	vecs := make([]*neighbourVector, users)
	for _, v := range rng.Perm(users) {
		nv := &neighbourVector{ids: make([]int32, vecLen), vals: make([]float64, vecLen)}
		var ss float64
		for i := range nv.ids {
			nv.ids[i], nv.vals[i] = item(), rng.Float64()
			ss += nv.vals[i] * nv.vals[i]
		}
		nv.norm = math.Sqrt(ss)
		vecs[v] = nv
	}
	names := nameOrder{names: make([]string, users), keys: make([]uint64, users)}
	for v := range users {
		names.names[v] = "u" + strconv.Itoa(v)
		names.keys[v] = sortKey(names.names[v])
	}
	itemNames := make([]string, items)
	for i := range itemNames {
		itemNames[i] = "i" + strconv.Itoa(i)
	}
	sc := new(scratch)
	sc.fit(items)
	sc.fitUsers(users)
	ci := &callItems{names: itemNames}
	type user struct {
		p     store.Profile
		uids  []int32
		cands []int32
	}
	us := make([]user, 256)
	for k := range us {
		u := &us[k]
		has := map[int32]bool{}
		for len(u.uids) < userLen {
			if id := item(); !has[id] {
				has[id] = true
				u.uids = append(u.uids, id)
				u.p.Items = append(u.p.Items, store.Scored{ID: itemNames[id], Score: rng.Float64()})
			}
		}
		for _, v := range rng.Perm(users)[:cands] {
			u.cands = append(u.cands, int32(v))
		}
	}
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		u := &us[k%len(us)]
		k++
		for _, v := range u.cands {
			sc.vecs[v] = vecs[v]
		}
		x := UserScores{Profile: u.p, items: ci, sc: sc}
		s.userKNN(&x, u.uids, u.cands, names)
		x.release()
		x.recycle()
		for _, v := range u.cands {
			sc.vecs[v] = nil
		}
	}
}
