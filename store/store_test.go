package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// refModel is the brute-force batch reference of the store's state: it
// replays the events one at a time with plain maps, no caps binding.
type refModel struct {
	opt       store.Options
	userW     map[string]map[string]float64
	userLog   map[string][]string // the items of the user's events, oldest first
	purchased map[string]map[string]int64
	itemUsers map[string]map[string]int64
	itemPop   map[string]float64
	itemN     map[string]float64
	cooc      map[string]map[string]float64
	next      map[string]map[string]float64 // item -> next item -> transition weight; "<item> bought" its purchase part
	trending  map[string]float64
	decay     func(int64) float64
}

func newRef(opt store.Options, decay func(int64) float64) *refModel {
	return &refModel{opt: opt, decay: decay,
		userW: map[string]map[string]float64{}, userLog: map[string][]string{}, purchased: map[string]map[string]int64{},
		itemUsers: map[string]map[string]int64{}, itemPop: map[string]float64{}, itemN: map[string]float64{},
		cooc: map[string]map[string]float64{}, next: map[string]map[string]float64{}, trending: map[string]float64{}}
}

func addf(m map[string]map[string]float64, a, b string, x float64) {
	if m[a] == nil {
		m[a] = map[string]float64{}
	}
	m[a][b] += x
}

func (r *refModel) apply(op store.Op) {
	d := r.decay(op.TS)
	w := r.opt.Weights[op.Type] * d
	_, seen := r.userW[op.User][op.Item]
	addf(r.userW, op.User, op.Item, w)
	if op.Type == event.Purchase {
		if r.purchased[op.User] == nil {
			r.purchased[op.User] = map[string]int64{}
		}
		r.purchased[op.User][op.Item] = op.TS
	}
	if r.itemUsers[op.Item] == nil {
		r.itemUsers[op.Item] = map[string]int64{}
	}
	r.itemUsers[op.Item][op.User] = op.TS
	r.itemPop[op.Item] += w
	r.trending[op.Item] += w
	log := r.userLog[op.User]
	// transitions: from the distinct other items among the user's last
	// user_log_cap events, newest first, at most next_window, weighted
	// 1/distance
	met := map[string]bool{}
	for k := len(log) - 1; k >= 0 && k >= len(log)-r.opt.UserLogCap && len(met) < r.opt.NextWindow; k-- {
		j := log[k]
		if j == op.Item || met[j] {
			continue
		}
		met[j] = true
		v := w / float64(len(met))
		addf(r.next, j, op.Item, v)
		if op.Type == event.Purchase {
			addf(r.next, j, op.Item+" bought", v)
		}
	}
	if !seen {
		// the distinct other items among the user's last user_log_cap
		// events, newest first, at most cooc_history
		r.itemN[op.Item] += d
		n := 0
		met := map[string]bool{}
		for k := len(log) - 1; k >= 0 && k >= len(log)-r.opt.UserLogCap && n < r.opt.CoocHistory; k-- {
			j := log[k]
			if j == op.Item || met[j] {
				continue
			}
			met[j] = true
			addf(r.cooc, op.Item, j, d)
			addf(r.cooc, j, op.Item, d)
			n++
		}
	}
	r.userLog[op.User] = append(log, op.Item)
}

func zmap(t *testing.T, rdb *redis.Client, key string) map[string]float64 {
	t.Helper()
	zs, err := rdb.ZRangeWithScores(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, z := range zs {
		out[z.Member.(string)] = z.Score
	}
	return out
}

// userState reads u's state blob (empty when there is none).
func userState(t *testing.T, rdb *redis.Client, k store.Keys, u string) store.UserState {
	t.Helper()
	b, err := rdb.Get(context.Background(), k.UserState(u)).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.UserState{}
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.DecodeUserState(b)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// scoredMap returns the map of ss.
func scoredMap(ss []store.Scored) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		out[s.ID] = s.Score
	}
	return out
}

// coocMap reads item's co-occurrence row as the scorer does (folded).
func coocMap(t *testing.T, st *store.Store, item string) map[string]float64 {
	t.Helper()
	rows, err := st.ItemNeighbours(context.Background(), []string{item}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, z := range rows[item] {
		out[z.ID] = z.Score
	}
	return out
}

// nextMap reads item's next-item row as the scorer does (folded), with
// the purchase parts under "<item> bought".
func nextMap(t *testing.T, st *store.Store, item string) map[string]float64 {
	t.Helper()
	rows, err := st.NextItems(context.Background(), []string{item}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, z := range rows[item] {
		out[z.ID] = z.Score
		if z.Bought > 0 {
			out[z.ID+" bought"] = z.Bought
		}
	}
	return out
}

func close(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func compareMap(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d entries, want %d", what, len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		if !ok || !close(g, w) {
			if bad < 3 {
				t.Errorf("%s[%s] = %v (present %v), want %v", what, k, g, ok, w)
			}
			bad++
		}
	}
}

func (r *refModel) check(t *testing.T, st *store.Store, rdb *redis.Client) {
	t.Helper()
	k := st.Keys()
	for u, w := range r.userW {
		us := userState(t, rdb, k, u)
		compareMap(t, "user weights "+u, scoredMap(us.Weights), w)
		want := map[string]float64{}
		for it, ts := range r.purchased[u] {
			want[it] = float64(ts)
		}
		compareMap(t, "purchased "+u, scoredMap(us.Purchased), want)
	}
	for it, us := range r.itemUsers {
		want := map[string]float64{}
		for u, ts := range us {
			want[u] = float64(ts)
		}
		compareMap(t, "item users "+it, zmap(t, rdb, k.ItemUsers(it)), want)
		meta, err := rdb.HGetAll(context.Background(), k.ItemMeta(it)).Result()
		if err != nil {
			t.Fatal(err)
		}
		pop, _ := strconv.ParseFloat(meta["pop"], 64)
		n, _ := strconv.ParseFloat(meta["n"], 64)
		if !close(pop, r.itemPop[it]) || !close(n, r.itemN[it]) {
			t.Errorf("item %s: pop %v n %v, want %v %v", it, pop, n, r.itemPop[it], r.itemN[it])
		}
		compareMap(t, "cooc "+it, coocMap(t, st, it), r.cooc[it])
		compareMap(t, "next "+it, nextMap(t, st, it), r.next[it])
	}
	compareMap(t, "trending", zmap(t, rdb, k.Trending()), r.trending)
}

type partitioned struct {
	p   int32
	ops []store.Op
}

// genLog makes a deterministic log over nparts partitions, users keyed to
// partitions by hash, offsets consecutive per partition.
func genLog(n, users, items, nparts int, seed uint64) []partitioned {
	g := loadgen.New(loadgen.Options{Users: users, Items: items, Seed: seed, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: 37 * time.Second})
	parts := make([]partitioned, nparts)
	for p := range parts {
		parts[p].p = int32(p)
	}
	for i := 0; i < n; i++ {
		ev := g.Next()
		h := 0
		for _, c := range ev.UserID {
			h = h*31 + int(c)
		}
		p := (h%nparts + nparts) % nparts
		parts[p].ops = append(parts[p].ops, store.Op{Offset: int64(len(parts[p].ops)), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS})
	}
	return parts
}

func bigCaps() store.Options {
	return testopts.Store(func(o *store.Options) {
		o.Prefix = "t:"
		o.UserItemsCap = 100000
		o.UserLogCap = 100000
		o.ItemUsersCap = 100000
		o.CoocCap = 100000
		o.CoocHistory = 8
		o.NextCap = 100000
		o.TrendingCap = 100000
	})
}

func reference(st *store.Store, log []partitioned) *refModel {
	ref := newRef(st.Options(), st.Decay)
	for _, pl := range log {
		for _, op := range pl.ops {
			ref.apply(op)
		}
	}
	return ref
}

func applyInBatches(t *testing.T, st *store.Store, log []partitioned, rng *rand.Rand, maxBatch int) {
	t.Helper()
	ctx := context.Background()
	for _, pl := range log {
		for i := 0; i < len(pl.ops); {
			n := 1 + rng.IntN(maxBatch)
			j := min(i+n, len(pl.ops))
			if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err != nil {
				t.Fatal(err)
			}
			i = j
		}
	}
}

func TestApplyMatchesBatchReference(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	log := genLog(4000, 120, 90, 3, 7)
	applyInBatches(t, st, log, rand.New(rand.NewPCG(1, 2)), 300)
	reference(st, log).check(t, st, rdb)
}

// A replay after a crash, with other batch boundaries and a crash between
// the user and item phases, ends in the same state as one clean pass: with
// logs that hold every event, and with short logs (user_log_cap 10, users
// with about 75 events each), where a new pair's earlier items come from
// the user's last user_log_cap events only. A replayed event gets the
// history it first got while fewer than user_log_cap newer events of its
// user were applied (store/userstate.go), so there batches and replays
// stay shorter than that.
func TestReplayWithOtherBatchingIsIdempotent(t *testing.T) {
	t.Run("long_logs", func(t *testing.T) {
		replayWithOtherBatching(t, bigCaps(), genLog(3000, 80, 60, 2, 11), 200, 50)
	})
	t.Run("short_logs", func(t *testing.T) {
		opt := bigCaps()
		opt.UserLogCap, opt.CoocHistory = 10, 4
		replayWithOtherBatching(t, opt, genLog(3000, 40, 60, 2, 19), 6, 4)
	})
}

func replayWithOtherBatching(t *testing.T, opt store.Options, log []partitioned, maxBatch, back int) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, opt)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, pl := range log {
		i := 0
		for i < len(pl.ops) {
			n := 1 + rng.IntN(maxBatch)
			j := min(i+n, len(pl.ops))
			switch rng.IntN(4) {
			case 0: // crash after the user phase, then replay from an earlier point
				st.FailAfterUsers()
				if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err == nil {
					t.Fatal("simulated crash did not fail")
				}
				from := max(0, i-rng.IntN(back))
				if _, err := st.Apply(ctx, pl.p, pl.ops[from:j]); err != nil {
					t.Fatal(err)
				}
			case 1: // applied twice (a retried command, a replay after a lost commit)
				for k := 0; k < 2; k++ {
					if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err != nil {
						t.Fatal(err)
					}
				}
			default:
				if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err != nil {
					t.Fatal(err)
				}
			}
			i = j
		}
	}
	reference(st, log).check(t, st, rdb)
}

// Item work collected over several batches (ingest.item_window) and
// written together ends in the same state as batch by batch: with batches
// retried into the same work, windows lost to a crash and replayed from
// the last written offset, and windows whose items were only partly
// written before the crash (their fences then lie inside the replay).
func TestItemWindowsMatchReference(t *testing.T) {
	defer store.SetItemChunk(7)() // several pipelines per window, partial answers in each
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	log := genLog(4000, 80, 60, 2, 13)
	rng := rand.New(rand.NewPCG(5, 6))
	crashes, partial := 0, 0
	for _, pl := range log {
		w := store.NewItemWork(pl.p)
		written := 0 // ops before this index have their items written
		for i := 0; i < len(pl.ops); {
			j := min(i+1+rng.IntN(100), len(pl.ops))
			for k := 0; k < 1+rng.IntN(2); k++ { // sometimes retried
				if _, err := st.ApplyUsers(ctx, pl.p, pl.ops[i:j], w); err != nil {
					t.Fatal(err)
				}
			}
			i = j
			switch rng.IntN(6) {
			case 0, 1: // the window is written
				if err := st.ApplyItems(ctx, w); err != nil {
					t.Fatal(err)
				}
				if w.Events() != 0 {
					t.Fatalf("written item work still holds %d events", w.Events())
				}
				written = i
			case 2: // crash: the window is lost, replayed from the last written offset
				w = store.NewItemWork(pl.p)
				i = written
				crashes++
			case 3: // crash while writing: only the items of a prefix were written
				cut := written + rng.IntN(i-written+1)
				part := store.NewItemWork(pl.p)
				if _, err := st.ApplyUsers(ctx, pl.p, pl.ops[written:cut], part); err != nil {
					t.Fatal(err)
				}
				if err := st.ApplyItems(ctx, part); err != nil {
					t.Fatal(err)
				}
				w = store.NewItemWork(pl.p)
				i = written
				partial++
			}
		}
		if err := st.ApplyItems(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if crashes == 0 || partial == 0 {
		t.Fatalf("%d crashes, %d partial writes: the test exercised too little", crashes, partial)
	}
	reference(st, log).check(t, st, rdb)
}

// A batch that holds offsets again, as a consumer that restarted a
// partition after a rebalance delivers them (from the committed offset,
// into the batch it is collecting), counts each event once: users by their
// fences, items by the item work taking each offset once.
func TestRedeliveredOffsetsCountOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	log := genLog(3000, 60, 50, 2, 17)
	rng := rand.New(rand.NewPCG(9, 10))
	again := 0
	for _, pl := range log {
		w := store.NewItemWork(pl.p)
		committed := 0 // the offset a restarted partition is delivered from
		for i := 0; i < len(pl.ops); {
			j := min(i+1+rng.IntN(80), len(pl.ops))
			batch := slices.Clone(pl.ops[i:j])
			if rng.IntN(3) == 0 && j > committed {
				// delivered again from the committed offset, into this batch
				from := committed + rng.IntN(j-committed)
				batch = append(batch, pl.ops[from:j]...)
				again++
			}
			if _, err := st.ApplyUsers(ctx, pl.p, batch, w); err != nil {
				t.Fatal(err)
			}
			i = j
			if rng.IntN(2) == 0 {
				if err := st.ApplyItems(ctx, w); err != nil {
					t.Fatal(err)
				}
				committed = i
			}
		}
		if err := st.ApplyItems(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if again == 0 {
		t.Fatal("no batch held offsets again: the test checks nothing")
	}
	reference(st, log).check(t, st, rdb)
}

// A zombie writing an old batch after the new owner moved on changes nothing.
func TestZombieBatchIsFenced(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	log := genLog(800, 30, 20, 1, 5)
	ops := log[0].ops
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	before := dump(t, rdb)
	res, err := st.Apply(ctx, 0, ops[100:400])
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Fenced != 300 {
		t.Fatalf("zombie batch: applied %d fenced %d, want 0 and 300", res.Applied, res.Fenced)
	}
	if after := dump(t, rdb); after != before {
		t.Fatal("zombie batch changed the state")
	}
}

// Events of one user arriving on two partitions (mis-keyed) are fenced per
// partition: each applies once.
func TestMisKeyedEventsFencedPerPartition(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	ts := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	a := []store.Op{{Offset: 10, User: "u", Item: "a", Type: event.Click, TS: ts}}
	b := []store.Op{{Offset: 3, User: "u", Item: "b", Type: event.Browse, TS: ts + 1000}}
	for k := 0; k < 2; k++ {
		if _, err := st.Apply(ctx, 0, a); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(ctx, 5, b); err != nil {
			t.Fatal(err)
		}
	}
	ref := newRef(st.Options(), st.Decay)
	ref.apply(a[0])
	ref.apply(b[0])
	ref.check(t, st, rdb)
}

// A mis-keyed user's replayed event is answered from its own log entry,
// not from the one another partition wrote at the same offset.
func TestMisKeyedReplayFindsItsOwnEntry(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	ts := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	op := func(off int64, item string, k int64) store.Op {
		return store.Op{Offset: off, User: "u", Item: item, Type: event.Click, TS: ts + k*1000}
	}
	p0 := []store.Op{op(0, "a", 0), op(1, "b", 1), op(2, "x", 4)}
	p5 := []store.Op{op(0, "c", 2), op(1, "d", 3), op(2, "a", 5)}
	apply := func(p int32, ops []store.Op) {
		t.Helper()
		if _, err := st.Apply(ctx, p, ops); err != nil {
			t.Fatal(err)
		}
	}
	apply(0, p0[:2])
	apply(5, p5[:2])
	st.FailAfterUsers() // x applied to the user, not yet to the items
	if _, err := st.Apply(ctx, 0, p0[2:]); err == nil {
		t.Fatal("simulated crash did not fail")
	}
	apply(5, p5[2:]) // a second entry at offset 2, newer, not new for the user
	res, err := st.Apply(ctx, 0, p0[2:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Fenced != 1 || res.Lost != 0 {
		t.Fatalf("replay: fenced %d lost %d, want 1 and 0", res.Fenced, res.Lost)
	}
	ref := newRef(st.Options(), st.Decay)
	for _, o := range []store.Op{p0[0], p0[1], p5[0], p5[1], p0[2], p5[2]} {
		ref.apply(o)
	}
	ref.check(t, st, rdb)
}

// Caps bound every structure.
func TestCapsBind(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	opt := testopts.Store(func(o *store.Options) {
		o.Prefix = "c:"
		o.UserItemsCap = 5
		o.UserLogCap = 7
		o.ItemUsersCap = 4
		o.CoocCap = 3
		o.CoocHistory = 2
		o.TrendingCap = 6
		o.UserTTL = time.Hour
	})
	st := store.New(rdb, opt)
	log := genLog(2000, 50, 40, 1, 9)
	half := []partitioned{{0, log[0].ops[:1000]}}
	rest := []partitioned{{0, log[0].ops[1000:]}}
	rng := rand.New(rand.NewPCG(5, 6))
	applyInBatches(t, st, half, rng, 100)
	ctx := context.Background()
	k := st.Keys()
	// The size bounds the item meta hashes keep (item.lua) lost, as
	// in state written by an older version: unknown, not zero.
	metas, _ := rdb.Keys(ctx, "c:*}:m").Result()
	for _, m := range metas {
		rdb.HDel(ctx, m, "c")
	}
	applyInBatches(t, st, rest, rng, 100)
	keys, _ := rdb.Keys(ctx, "c:*").Result()
	for _, key := range keys {
		var n int64
		var cap int64
		switch {
		case strings.HasSuffix(key, "}:s"):
			us := userState(t, rdb, k, strings.TrimSuffix(strings.TrimPrefix(key, "c:{u:"), "}:s"))
			n, cap = int64(len(us.Weights)), 5
			// The log keeps 2·user_log_cap entries: the history of an
			// event replayed after a crash reads up to user_log_cap
			// entries older than it (store/userstate.go).
			if l := len(us.Log); l > 14 {
				t.Errorf("%s holds %d log entries, cap %d", key, l, 14)
			}
		case strings.HasSuffix(key, "}:u"):
			n, cap = rdb.ZCard(ctx, key).Val(), 4
		case strings.HasSuffix(key, "}:cl"):
			// Folded, the row holds at most cooc_cap items in one entry.
			item := strings.TrimSuffix(strings.TrimPrefix(key, "c:{i:"), "}:cl")
			if err := st.FoldCooc(ctx, []string{item}); err != nil {
				t.Fatal(err)
			}
			if l := rdb.LLen(ctx, key).Val(); l > 1 {
				t.Errorf("%s holds %d entries after folding", key, l)
			}
			n, cap = int64(len(coocMap(t, st, item))), 3
		case key == k.Trending():
			n, cap = rdb.ZCard(ctx, key).Val(), 6
		default:
			continue
		}
		if n > cap {
			t.Errorf("%s holds %d, cap %d", key, n, cap)
		}
		if key != k.Trending() {
			if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("%s ttl %v, want (0, 1h]", key, ttl)
			}
		}
	}
}

// An item's recent users are those whose last interaction with it (event
// time) is within user_ttl of its newest event, at most item_users_cap of
// them, the newest kept: the same whether items are written per batch or
// per window, and when the size and age bounds the meta hash keeps are lost
// (state written by an older version, a meta hash that expired first).
func TestItemUsersRetentionAndCap(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ucap, ttl = 6, 2 * time.Hour
	opt := bigCaps()
	opt.ItemUsersCap, opt.UserTTL = ucap, ttl
	st := store.New(rdb, opt)
	ctx := context.Background()
	log := genLog(3000, 60, 40, 1, 17) // 37 s apart: 31 h, against a 2 h retention
	ops := log[0].ops
	last := map[string]map[string]int64{} // item -> user -> last event time
	newest := map[string]int64{}
	for i, op := range ops {
		if i > 0 && op.TS <= ops[i-1].TS {
			t.Fatal("the generated log's event times do not ascend")
		}
		if last[op.Item] == nil {
			last[op.Item] = map[string]int64{}
		}
		last[op.Item][op.User] = op.TS
		newest[op.Item] = op.TS
	}
	rng := rand.New(rand.NewPCG(7, 8))
	w := store.NewItemWork(0)
	for i := 0; i < len(ops); {
		j := min(i+1+rng.IntN(60), len(ops))
		if _, err := st.ApplyUsers(ctx, 0, ops[i:j], w); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(3) == 0 {
			if err := st.ApplyItems(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(20) == 0 {
			for it := range last {
				rdb.HDel(ctx, st.Keys().ItemMeta(it), "c", "o")
			}
		}
		i = j
	}
	if err := st.ApplyItems(ctx, w); err != nil {
		t.Fatal(err)
	}
	swept := 0
	for it, us := range last {
		type ut struct {
			u  string
			ts int64
		}
		var keep []ut
		for u, ts := range us {
			if ts >= newest[it]-ttl.Milliseconds() {
				keep = append(keep, ut{u, ts})
			}
		}
		swept += len(us) - len(keep)
		sort.Slice(keep, func(a, b int) bool { return keep[a].ts > keep[b].ts })
		want := map[string]float64{}
		for _, x := range keep[:min(len(keep), ucap)] {
			want[x.u] = float64(x.ts)
		}
		compareMap(t, "item users "+it, zmap(t, rdb, st.Keys().ItemUsers(it)), want)
	}
	if swept == 0 {
		t.Fatal("no user aged out: the test exercised too little")
	}

	// A late event (older than the retention before the newest one written
	// with it) does not stay in the index.
	off, t0 := int64(len(ops)), ops[len(ops)-1].TS
	late := func(user string, ts int64) store.Op {
		off++
		return store.Op{Offset: off, User: user, Item: "late", Type: event.Click, TS: ts}
	}
	for _, batch := range [][]store.Op{
		{late("a", t0)},
		{late("c", t0+time.Hour.Milliseconds()), late("b", t0-2*time.Hour.Milliseconds())},
	} {
		if _, err := st.Apply(ctx, 0, batch); err != nil {
			t.Fatal(err)
		}
	}
	compareMap(t, "item users late", zmap(t, rdb, st.Keys().ItemUsers("late")),
		map[string]float64{"a": float64(t0), "c": float64(t0 + time.Hour.Milliseconds())})
}

func TestDecayIsEventTime(t *testing.T) {
	st := store.New(nil, testopts.Store(func(o *store.Options) { o.HalfLife, o.Epoch = time.Hour, time.Unix(0, 0) }))
	if got := st.Decay(time.Hour.Milliseconds()); !close(got, 2) {
		t.Fatalf("decay after one half-life = %v, want 2", got)
	}
	if got := st.Decay(3*time.Hour.Milliseconds()) / st.Decay(time.Hour.Milliseconds()); !close(got, 4) {
		t.Fatalf("ratio over two half-lives = %v, want 4", got)
	}
}

func TestRecentEventsAndLists(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "r:" }))
	ctx := context.Background()
	ts := time.Now().UnixMilli()
	ops := []store.Op{
		{Offset: 1, User: "u|1", Item: "x|y", Type: event.Click, TS: ts},
		{Offset: 2, User: "u|1", Item: "z", Type: event.Purchase, TS: ts + 1},
	}
	if _, err := st.Apply(ctx, 2, ops); err != nil {
		t.Fatal(err)
	}
	evs, err := st.RecentEvents(ctx, "u|1", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]store.LoggedEvent{
		{Partition: 2, Offset: 2, Type: "purchase", TS: ts + 1, New: true, Item: "z"},
		{Partition: 2, Offset: 1, Type: "click", TS: ts, New: true, Item: "x|y"},
	})
	if fmt.Sprint(evs) != want {
		t.Fatalf("recent events %v, want %v", evs, want)
	}
	// A later batch reads the earlier items back from the log, '|' and all.
	if _, err := st.Apply(ctx, 2, []store.Op{{Offset: 3, User: "u|1", Item: "w", Type: event.Click, TS: ts + 2}}); err != nil {
		t.Fatal(err)
	}
	if co := coocMap(t, st, "w"); len(co) != 2 || co["x|y"] == 0 || co["z"] == 0 {
		t.Fatalf("co-occurrence row of w %v, want x|y and z", co)
	}
	l := store.List{User: "u|1", Model: "m", GeneratedAt: ts, Items: []store.ListItem{{Item: "a", Score: 1, Source: "item_knn", Reason: "because you viewed z"}}}
	if err := st.WriteLists(ctx, []store.List{l}, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, found, err := st.ReadList(ctx, "u|1")
	if err != nil || !found || got.Version != store.ListFormatVersion || got.Items[0].Reason != "because you viewed z" {
		t.Fatalf("read list %+v found %v err %v", got, found, err)
	}
	if ttl := rdb.TTL(ctx, st.Keys().UserList("u|1")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("list ttl %v", ttl)
	}
}

func dump(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%x\n", k, v)
	}
	return b.String()
}
