package store_test

import (
	"context"
	"maps"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// itemState reads every item's recent users, co-occurrence and next-item rows, degree and
// popularity, and the trending zset, under a store's prefix, dropping zero
// entries, so that "never there" and "subtracted to zero" compare equal.
func itemState(t *testing.T, rdb *redis.Client, st *store.Store, items []string) map[string]map[string]float64 {
	t.Helper()
	ctx := context.Background()
	k := st.Keys()
	out := map[string]map[string]float64{}
	put := func(key, f string, v float64) {
		if math.Abs(v) < 1e-6 {
			return
		}
		if out[key] == nil {
			out[key] = map[string]float64{}
		}
		out[key][f] = v
	}
	for _, z := range rdb.ZRangeWithScores(ctx, k.Trending(), 0, -1).Val() {
		put("trend", z.Member.(string), z.Score)
	}
	for _, it := range items {
		for _, z := range rdb.ZRangeWithScores(ctx, k.ItemUsers(it), 0, -1).Val() {
			put(it+":u", z.Member.(string), z.Score)
		}
		rows, err := st.ItemNeighbours(ctx, []string{it}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range rows[it] {
			put(it+":co", z.ID, z.Score)
		}
		next, err := st.NextItems(ctx, []string{it}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range next[it] {
			put(it+":nx", z.ID, z.Score)
			put(it+":nx", z.ID+" bought", z.Bought)
		}
		for f, s := range rdb.HGetAll(ctx, k.ItemMeta(it)).Val() {
			if f == "n" || f == "pop" {
				x, _ := strconv.ParseFloat(s, 64)
				put(it+":m", f, x)
			}
		}
	}
	return out
}

// TestForgetEqualsNeverSeen applies a log to two stores, one of them without
// the events of one user, erases that user from the other, and checks that
// every item's index, co-occurrence row, degree and popularity, and the
// trending zset, then match the store that never saw the user (the user log
// held the whole history: the exact case). In the second case the item half
// of the last 500 events (the user's among them) is still collected in an
// ingest item window when the erasure starts, and written while it waits
// (ForgetOptions.InFlight).
func TestForgetEqualsNeverSeen(t *testing.T) {
	for _, inFlight := range []bool{false, true} {
		t.Run(map[bool]string{false: "written", true: "item_window_in_flight"}[inFlight], func(t *testing.T) {
			forgetEqualsNeverSeen(t, inFlight)
		})
	}
}

// erasureLog is the fixture of the erasure tests: two stores on one
// Redis (prefixes a: and b:) with large caps, a random log, its items
// sorted, the user with the most events (target, most) and the log
// without that user.
type erasureLog struct {
	rdb          *redis.Client
	a, b         *store.Store
	ops, without []store.Op
	items        []string
	target       string
	most         int
}

func newErasureLog(t *testing.T) erasureLog {
	t.Helper()
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	opt := testopts.Store(func(o *store.Options) {
		o.UserLogCap = 1000
		o.UserItemsCap = 1000
		o.ItemUsersCap = 1000
		o.CoocCap = 1000
		o.CoocHistory = 5
	})
	optA, optB := opt, opt
	optA.Prefix, optB.Prefix = "a:", "b:"
	e := erasureLog{rdb: rdb, a: store.New(rdb, optA), b: store.New(rdb, optB)}
	for _, st := range []*store.Store{e.a, e.b} {
		if err := st.LoadScripts(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gen := loadgen.New(loadgen.Options{Users: 30, Items: 40, Clusters: 3, Seed: 3})
	count := map[string]int{}
	itemSet := map[string]bool{}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 3000; i++ {
		ev := gen.Next()
		ts += 7
		e.ops = append(e.ops, store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ts})
		count[ev.UserID]++
		itemSet[ev.ItemID] = true
	}
	e.items = slices.Sorted(maps.Keys(itemSet))
	for u, c := range count {
		if c > e.most || (c == e.most && u < e.target) {
			e.target, e.most = u, c
		}
	}
	for _, op := range e.ops {
		if op.User != e.target {
			e.without = append(e.without, op)
		}
	}
	return e
}

// sameItemState reports every field of want that got holds otherwise
// (after the erasure against never having seen the user) and every field
// only got holds.
func sameItemState(t *testing.T, got, want map[string]map[string]float64) {
	t.Helper()
	diffs := 0
	for key, fw := range want {
		for f, x := range fw {
			y := got[key][f]
			if math.Abs(x-y) > 1e-6*math.Max(1, math.Abs(x)) {
				if diffs < 10 {
					t.Errorf("%s %s: %v after the erasure, %v never having seen the user", key, f, y, x)
				}
				diffs++
			}
		}
	}
	for key, fg := range got {
		for f, y := range fg {
			if _, ok := want[key][f]; !ok {
				if diffs < 10 {
					t.Errorf("%s %s: %v remains after the erasure", key, f, y)
				}
				diffs++
			}
		}
	}
}

func forgetEqualsNeverSeen(t *testing.T, inFlight bool) {
	e := newErasureLog(t)
	rdb, a, b, ops, without, items, target, most := e.rdb, e.a, e.b, e.ops, e.without, e.items, e.target, e.most
	ctx := context.Background()
	apply := func(st *store.Store, ops []store.Op) {
		for i := 0; i < len(ops); i += 250 {
			if _, err := st.Apply(ctx, 0, ops[i:min(i+250, len(ops))]); err != nil {
				t.Fatal(err)
			}
		}
	}
	fopt := store.ForgetOptions{Sweep: true, Source: "test", Request: "T-1"}
	var wrote chan error
	if inFlight {
		cut := len(ops) - 500
		apply(a, ops[:cut])
		w := store.NewItemWork(0)
		if _, err := a.ApplyUsers(ctx, 0, ops[cut:], w); err != nil {
			t.Fatal(err)
		}
		fopt.InFlight = 500 * time.Millisecond
		wrote = make(chan error, 1)
		go func() {
			time.Sleep(100 * time.Millisecond) // the erasure has begun
			wrote <- a.ApplyItems(ctx, w)
		}()
	} else {
		apply(a, ops)
	}
	apply(b, without)
	if len(userState(t, rdb, a.Keys(), target).Weights) == 0 {
		t.Fatal("the user has no state blob to erase")
	}

	res, err := a.Forget(ctx, target, fopt)
	if err != nil {
		t.Fatal(err)
	}
	if wrote != nil {
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("forgot %s: %+v, %d neighbours", target, res, len(res.Neighbours))
	if !res.WindowComplete || res.Events != int64(most) || res.LoggedEvents != most || res.KeysDeleted < 2 || res.Trending == 0 { // the state blob and the meta hash at least
		t.Fatalf("result %+v, want the whole history of %d events", res, most)
	}
	if len(res.Neighbours) == 0 {
		t.Errorf("no neighbours to rescore")
	}
	sameItemState(t, itemState(t, rdb, a, items), itemState(t, rdb, b, items))
	// The user's keys are gone; only the tombstone (fences and erasure time)
	// remains, with a TTL.
	k := a.Keys()
	for _, key := range []string{k.UserState(target), k.UserWeights(target), k.UserLog(target), k.UserPurchased(target), k.UserList(target)} {
		if rdb.Exists(ctx, key).Val() != 0 {
			t.Errorf("%s still exists", key)
		}
	}
	tomb := rdb.HGetAll(ctx, k.UserMeta(target)).Val()
	if tomb["gone"] == "" || tomb["n"] != "" || rdb.TTL(ctx, k.UserMeta(target)).Val() <= 0 {
		t.Errorf("tombstone %v ttl %v", tomb, rdb.TTL(ctx, k.UserMeta(target)).Val())
	}
	// The audit record names a digest, not the id.
	xs := rdb.XRange(ctx, k.AuditStream(), "-", "+").Val()
	if len(xs) != 1 || xs[0].Values["request"] != "T-1" || xs[0].Values["subject_sha256"] == "" || xs[0].Values["trending"] != strconv.Itoa(res.Trending) {
		t.Fatalf("audit stream %v", xs)
	}
	for f, v := range xs[0].Values {
		if v == target {
			t.Errorf("audit field %s holds the user id", f)
		}
	}

	// A replay of the user's events (a batch in flight, a rebalance) is
	// dropped: nothing comes back.
	r, err := a.Apply(ctx, 0, ops[len(ops)-250:])
	if err != nil {
		t.Fatal(err)
	}
	if r.Erased == 0 || r.Users[target] != 0 {
		t.Errorf("replay after the erasure: %+v", r)
	}
	if n := rdb.Exists(ctx, k.UserState(target), k.UserWeights(target), k.UserLog(target)).Val(); n != 0 {
		t.Errorf("replay recreated %d user keys", n)
	}
	for _, it := range items {
		if _, err := rdb.ZScore(ctx, k.ItemUsers(it), target).Result(); err == nil {
			t.Errorf("replay put the user back into the index of %s", it)
		}
	}
	// A second erasure finds nothing left to subtract.
	before := itemState(t, rdb, a, items)
	if _, err := a.Forget(ctx, target, store.ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	after := itemState(t, rdb, a, items)
	for key, fb := range before {
		for f, x := range fb {
			if after[key][f] != x {
				t.Errorf("second erasure changed %s %s: %v -> %v", key, f, x, after[key][f])
			}
		}
	}
	// New activity after the erasure is new data and is applied.
	later := store.Op{Offset: int64(len(ops)), User: target, Item: items[0], Type: event.Click, TS: time.Now().Add(time.Minute).UnixMilli()}
	if r, err := a.Apply(ctx, 0, []store.Op{later}); err != nil || r.Applied != 1 {
		t.Fatalf("event after the erasure: %+v %v", r, err)
	}
	if len(userState(t, rdb, k, target).Weights) != 1 {
		t.Errorf("event after the erasure was not applied")
	}
}

// TestForgetTruncatedLogLeavesOlderEvents erases a user whose log (2 ·
// UserLogCap entries) no longer holds their oldest events, and checks
// trending and popularity against a brute force: after the erasure they
// equal a store that never saw the user plus exactly the weight·decay of
// the user's events older than the log window, and nothing of the logged
// ones.
func TestForgetTruncatedLogLeavesOlderEvents(t *testing.T) {
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	ctx := context.Background()
	opt := testopts.Store(func(o *store.Options) {
		o.UserLogCap = 8
		o.UserItemsCap = 1000
		o.ItemUsersCap = 1000
		o.CoocCap = 1000
		o.CoocHistory = 5
	})
	optA, optB := opt, opt
	optA.Prefix, optB.Prefix = "a:", "b:"
	a, b := store.New(rdb, optA), store.New(rdb, optB)
	gen := loadgen.New(loadgen.Options{Users: 20, Items: 30, Clusters: 3, Seed: 9})
	var ops, without, mine []store.Op
	ts := time.Now().Add(-30 * 24 * time.Hour).UnixMilli() // weights spread over two half-lives
	const target = "victim"
	for i := 0; i < 2000; i++ {
		ev := gen.Next()
		ts += int64(20 * time.Minute / time.Millisecond)
		op := store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ts}
		if i%25 == 0 { // 80 events of the erased user
			op.User = target
			mine = append(mine, op)
		} else {
			without = append(without, op)
		}
		ops = append(ops, op)
	}
	for i := 0; i < len(ops); i += 100 {
		if _, err := a.Apply(ctx, 0, ops[i:min(i+100, len(ops))]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(without); i += 100 {
		if _, err := b.Apply(ctx, 0, without[i:min(i+100, len(without))]); err != nil {
			t.Fatal(err)
		}
	}
	res, err := a.Forget(ctx, target, store.ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	window := 2 * opt.UserLogCap
	if res.WindowComplete || res.LoggedEvents != window || res.Events != int64(len(mine)) {
		t.Fatalf("result %+v, want %d of %d events logged", res, window, len(mine))
	}
	// Brute force: what remains is the events older than the log window.
	w := opt.Weights
	older := map[string]float64{}
	for _, op := range mine[:len(mine)-window] {
		older[op.Item] += w[op.Type] * a.Decay(op.TS)
	}
	got, never := itemState(t, rdb, a, nil), itemState(t, rdb, b, nil)
	ka, kb := a.Keys(), b.Keys()
	checked := 0
	items := map[string]bool{}
	for _, op := range ops {
		items[op.Item] = true
	}
	for it := range items {
		for _, c := range []struct {
			what      string
			got, want float64
		}{
			{"trending", got["trend"][it], never["trend"][it] + older[it]},
			{"popularity", hgetFloat(rdb, ka.ItemMeta(it), "pop"), hgetFloat(rdb, kb.ItemMeta(it), "pop") + older[it]},
		} {
			if math.Abs(c.got-c.want) > 1e-9*math.Max(1, math.Abs(c.want)) {
				t.Errorf("%s of %s: %v after the erasure, want %v (never seen %v + older events %v)", c.what, it, c.got, c.want, c.want-older[it], older[it])
			}
			checked++
		}
	}
	if len(older) == 0 || res.Trending == 0 {
		t.Fatalf("nothing to check: %d items with older events, %d trending entries corrected", len(older), res.Trending)
	}
	t.Logf("%d of %d events logged; %d items keep older contributions; %d values checked", res.LoggedEvents, res.Events, len(older), checked)
}

func hgetFloat(rdb *redis.Client, key, field string) float64 {
	s, err := rdb.HGet(context.Background(), key, field).Result()
	if err != nil {
		return 0
	}
	x, _ := strconv.ParseFloat(s, 64)
	return x
}
