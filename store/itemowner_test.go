package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/store"
)

// repartition is the repartition topic of the item-owner tests: one
// partition, messages in the order sent (encoded and decoded, as on the
// wire).
type repartition struct {
	t    *testing.T
	msgs []store.ItemUpdate
	dups int
}

func (r *repartition) send(us []store.ItemUpdate, rng *rand.Rand) {
	r.t.Helper()
	b, err := store.EncodeItemUpdates(us)
	if err != nil {
		r.t.Fatal(err)
	}
	us, err = store.DecodeItemUpdates(b)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, u := range us {
		r.msgs = append(r.msgs, u)
		if rng.IntN(8) == 0 { // delivered twice
			r.msgs = append(r.msgs, u)
			r.dups++
		}
	}
}

// ingestToTopic applies the log's user half in random batches, two
// source partitions interleaved, and sends each batch's item half to the
// topic. Some batches crash between the user write and the sends: the
// batch's item half is lost and the partition is replayed from an
// earlier offset with other batch boundaries (its user half fenced,
// answered from the user log).
func ingestToTopic(t *testing.T, st *store.Store, log []partitioned, rng *rand.Rand) (*repartition, int) {
	t.Helper()
	ctx := context.Background()
	topic := &repartition{t: t}
	pos := make([]int, len(log))
	crashes := 0
	for {
		var open []int
		for k := range log {
			if pos[k] < len(log[k].ops) {
				open = append(open, k)
			}
		}
		if len(open) == 0 {
			break
		}
		k := open[rng.IntN(len(open))]
		pl := log[k]
		i := pos[k]
		j := min(i+1+rng.IntN(60), len(pl.ops))
		w := store.NewItemWork(pl.p)
		if _, err := st.ApplyUsers(ctx, pl.p, pl.ops[i:j], w); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(6) == 0 {
			// crash after the user write, before the sends: replayed
			// from the committed offset (i) or earlier
			crashes++
			pos[k] = max(0, i-rng.IntN(20))
			continue
		}
		topic.send(w.TakeUpdates(), rng)
		pos[k] = j
	}
	return topic, crashes
}

func newOwner(st *store.Store) (*store.ItemOwner, *store.ItemOwnerMetrics) {
	return newOwnerCap(st, 0)
}

// newOwnerCap is newOwner keeping at most max items' copies.
func newOwnerCap(st *store.Store, max int) (*store.ItemOwner, *store.ItemOwnerMetrics) {
	m := store.NewItemOwnerMetrics(nil)
	return st.NewItemOwner(store.ItemOwnerOptions{MaxItems: max, Metrics: m}), m
}

// The item owner's state after a random log equals the brute-force
// reference: with batches replayed with other boundaries after crashes
// between the user write and the sends, messages delivered twice, flushes
// at random points, owners killed before a flush or between its item
// writes and its trending write (restarted from the last committed
// message) and zombie owners (an owner that lost its
// partition flushing after the new owner wrote: refused, read again, the
// fences skip what was applied).
func TestItemOwnerMatchesReference(t *testing.T) {
	defer store.SetItemChunk(7)()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	log := genLog(4000, 80, 60, 2, 23)
	rng := rand.New(rand.NewPCG(7, 8))
	topic, crashes := ingestToTopic(t, st, log, rng)
	if crashes == 0 || topic.dups == 0 {
		t.Fatalf("%d crashes, %d duplicates: the test exercised too little", crashes, topic.dups)
	}

	// Half the owners keep at most 7 of the 60 items between flushes (and
	// during a flush, one chunk of 7 more): most flushes read items again.
	owners := func() (*store.ItemOwner, *store.ItemOwnerMetrics) {
		return newOwnerCap(st, 7*rng.IntN(2))
	}
	owner, m := owners()
	committed := 0 // the next message after the last flush
	kills, zombies := 0, 0
	refused := 0.0
	for i := committed; i < len(topic.msgs); {
		j := min(i+1+rng.IntN(40), len(topic.msgs))
		for _, u := range topic.msgs[i:j] {
			owner.Add(0, u)
		}
		i = j
		switch rng.IntN(7) {
		case 0, 1, 2: // flushed, committed
			if err := owner.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			committed = i
		case 3: // killed before the flush: the next owner replays
			owner, m = owners()
			i = committed
			kills++
		case 4: // frozen: a new owner takes over and writes, then the old one flushes
			zombie, zm := owner, m
			owner, m = owners()
			for _, u := range topic.msgs[committed:i] {
				owner.Add(0, u)
			}
			if err := owner.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := zombie.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			refused += testutil.ToFloat64(zm.Writes.WithLabelValues("refused"))
			committed = i
			zombies++
		case 5: // killed after writing the items, before trending
			owner.FailBeforeTrending()
			if err := owner.Flush(ctx); err == nil {
				t.Fatal("simulated crash did not fail")
			}
			owner, m = owners()
			i = committed
			kills++
		}
	}
	if err := owner.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if kills == 0 || zombies == 0 || refused == 0 {
		t.Fatalf("%d kills, %d zombies, %v refused zombie writes: the test exercised too little", kills, zombies, refused)
	}
	checkOwned(t, st, rdb, log)
}

// checkOwned compares the state with the reference: trending holds each
// item's popularity.
func checkOwned(t *testing.T, st *store.Store, rdb *redis.Client, log []partitioned) {
	t.Helper()
	reference(st, log).check(t, st, rdb)
}

// A zombie owner's write of an item another owner wrote since its copy
// was read changes nothing: its guarded write is refused. (Unguarded, the
// zombie would write its state of the first two parts of the log over the
// new owner's state of all three.)
func TestItemOwnerZombieWriteRefused(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, bigCaps())
	ctx := context.Background()
	log := genLog(900, 20, 10, 1, 29)
	var parts [3][]store.ItemUpdate
	for k := range parts {
		w := store.NewItemWork(0)
		if _, err := st.ApplyUsers(ctx, 0, log[0].ops[300*k:300*(k+1)], w); err != nil {
			t.Fatal(err)
		}
		parts[k] = w.TakeUpdates()
	}
	add := func(o *store.ItemOwner, us ...[]store.ItemUpdate) {
		for _, u := range us {
			for _, x := range u {
				o.Add(0, x)
			}
		}
	}
	zombie, zm := newOwner(st)
	add(zombie, parts[0])
	if err := zombie.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The new owner replays from the same point and goes on.
	owner, _ := newOwner(st)
	add(owner, parts[:]...)
	if err := owner.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := dump(t, rdb)
	// The zombie, its copies older than the new owner's writes, flushes
	// the second part.
	add(zombie, parts[1])
	if err := zombie.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(zm.Writes.WithLabelValues("refused")); n == 0 {
		t.Fatal("no zombie write was refused")
	}
	if got := dump(t, rdb); got != want {
		t.Fatal("the zombie's flush changed the state")
	}
	reference(st, log).check(t, st, rdb)
}

// The item updates' codec writes what msgpack/v5 writes for the types by
// reflection, and reads it back unchanged.
func TestItemUpdatesCodec(t *testing.T) {
	us := []store.ItemUpdate{
		{Item: "i1", Partition: 3, Contribs: []store.ItemContrib{
			{Offset: 7, User: "u1", TS: 1700000000000, Pop: 2.5, Deg: 1.25, Co: []store.ItemPair{{ID: "i2", V: 1.25}}},
			{Offset: 9, Next: []store.ItemPair{{ID: "i3", V: 0.5}, {ID: "i3\x00b", V: 0.5}}},
		}},
		{Item: "i2", Partition: 0, Contribs: []store.ItemContrib{{Offset: 1 << 40, User: "u2", TS: 5}}},
	}
	// Many pairs of one-byte names: more pairs than the decoder's first
	// slab holds, so that contributions are cut from several slabs.
	long := store.ItemUpdate{Item: "j", Partition: 1}
	for k := range 40 {
		c := store.ItemContrib{Offset: int64(k)}
		for j := range 20 + k%7 {
			c.Co = append(c.Co, store.ItemPair{ID: string(rune('a' + j)), V: float64(k + j)})
		}
		for j := range k % 3 {
			c.Next = append(c.Next, store.ItemPair{ID: string(rune('A' + j)), V: -float64(k)})
		}
		long.Contribs = append(long.Contribs, c)
	}
	us = append(us, long)
	b, err := store.EncodeItemUpdates(us)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.DecodeItemUpdates(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, us) {
		t.Fatalf("decoded %+v, want %+v", got, us)
	}
	var viaReflection []store.ItemUpdate
	if err := msgpack.Unmarshal(b, &viaReflection); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", viaReflection) != fmt.Sprintf("%+v", us) { // empty arrays read as empty slices, not nil
		t.Fatalf("msgpack/v5 reads %+v, want %+v", viaReflection, us)
	}
	if _, err := store.DecodeItemUpdates(b[:len(b)-3]); err == nil {
		t.Fatal("a cut message decoded")
	}
}

// Decoding through an ItemNames table gives the same updates, whatever
// the table's size, with each name it keeps read once: the same name in
// two messages is one string.
func TestItemUpdatesCodecWithNames(t *testing.T) {
	us := []store.ItemUpdate{
		{Item: "i1", Partition: 3, Contribs: []store.ItemContrib{
			{Offset: 7, User: "u1", TS: 1700000000000, Pop: 2.5, Deg: 1.25, Co: []store.ItemPair{{ID: "i2", V: 1.25}, {ID: "i3", V: 1}}},
			{Offset: 9, Next: []store.ItemPair{{ID: "i3", V: 0.5}, {ID: "", V: 0.5}, {ID: "i1", V: 2}}},
		}},
		{Item: "i2", Partition: 0, Contribs: []store.ItemContrib{{Offset: 1 << 40, User: "u2", TS: 5, Co: []store.ItemPair{{ID: "i1", V: 3}}}}},
	}
	b, err := store.EncodeItemUpdates(us)
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{1, 2, 3, 100} {
		names := store.NewItemNames(max)
		for round := range 3 {
			got, err := store.DecodeItemUpdatesWith(b, names)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, us) {
				t.Fatalf("table of %d, round %d: decoded %+v, want %+v", max, round, got, us)
			}
		}
		if _, err := store.DecodeItemUpdatesWith(b[:len(b)-3], names); err == nil {
			t.Fatalf("table of %d: a cut message decoded", max)
		}
	}
	names := store.NewItemNames(100)
	first, err := store.DecodeItemUpdatesWith(b, names)
	if err != nil {
		t.Fatal(err)
	}
	second, err := store.DecodeItemUpdatesWith(b, names)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	if !same(first[0].Item, second[0].Item) || !same(first[0].Contribs[0].Co[1].ID, second[0].Contribs[1].Next[0].ID) ||
		!same(first[1].Contribs[0].Co[0].ID, first[0].Item) {
		t.Fatal("a name the table keeps was read twice")
	}
	if plain, _ := store.DecodeItemUpdates(b); same(plain[0].Item, first[0].Item) {
		t.Fatal("decoding without a table shared a name")
	}

	// A string's length past the message's is refused before anything
	// is allocated for it.
	bad := []byte{0x91, 0x93, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'} // [[str32 of 2^31-1 bytes ...
	if _, err := store.DecodeItemUpdatesWith(bad, store.NewItemNames(10)); err == nil || !strings.Contains(err.Error(), "bytes in a message") {
		t.Fatalf("a name longer than its message: %v", err)
	}
}

// An erasure with item owners ends, once the events after it are
// written, in the state of a log that never held the user: the erasure
// changes the items' version (and degree and popularity), so the owner's
// copies read before it fail their guarded writes and are read again;
// trending then follows the items' popularity.
func TestItemOwnerForgetEqualsNeverSeen(t *testing.T) {
	e := newErasureLog(t)
	rdb, a, b, ops, without, items, target := e.rdb, e.a, e.b, e.ops, e.without, e.items, e.target
	ctx := context.Background()
	ownerA, mA := newOwner(a)
	ownerB, _ := newOwner(b)
	apply := func(st *store.Store, o *store.ItemOwner, ops []store.Op) {
		for i := 0; i < len(ops); i += 250 {
			w := store.NewItemWork(0)
			if _, err := st.ApplyUsers(ctx, 0, ops[i:min(i+250, len(ops))], w); err != nil {
				t.Fatal(err)
			}
			for _, u := range w.TakeUpdates() {
				o.Add(0, u)
			}
			if err := o.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	cut := len(ops) - 500
	apply(a, ownerA, ops[:cut])
	if _, err := a.Forget(ctx, target, store.ForgetOptions{Sweep: true, Source: "test"}); err != nil {
		t.Fatal(err)
	}
	apply(a, ownerA, ops[cut:]) // the target's events are dropped as erased
	apply(b, ownerB, without)
	if n := testutil.ToFloat64(mA.Writes.WithLabelValues("refused")); n == 0 {
		t.Error("no copy read before the erasure was refused")
	}
	sameItemState(t, itemState(t, rdb, a, items), itemState(t, rdb, b, items))
}

// An item owner folds the rows it appends to once they pass
// model.cooc_fold entries, counting them in the meta hash (rl, nl) rather
// than reading their lengths; an item whose meta hash does not count them
// (written by the item scripts) is folded after its first owner write.
// The folded rows hold the sums of every contribution.
func TestItemOwnerFoldsRows(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix, o.CoocFold = "t:", 4 }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	k := st.Keys()
	rowLen := func(item string) (int64, int64) {
		r, err := rdb.LLen(ctx, k.ItemCooc(item)).Result()
		if err != nil {
			t.Fatal(err)
		}
		n, err := rdb.LLen(ctx, k.ItemNext(item)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return r, n
	}
	items := []string{"i", "old"}
	want, wantNext := map[string]float64{}, map[string]float64{}
	owner, _ := newOwner(st)
	stripped := false
	for off := range int64(30) {
		id := "j" + strconv.Itoa(int(off%3))
		for _, item := range items {
			owner.Add(0, store.ItemUpdate{Item: item, Partition: 0, Contribs: []store.ItemContrib{{
				Offset: off, Co: []store.ItemPair{{ID: id, V: 1}}, Next: []store.ItemPair{{ID: id, V: 0.5}}}}})
		}
		want[id]++
		wantNext[id] += 0.5
		if err := owner.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			if r, n := rowLen(item); r > 5 || n > 5 {
				t.Fatalf("after offset %d: %s's rows hold %d and %d entries, want at most 5 (folded past 4)", off, item, r, n)
			}
		}
		if r, _ := rowLen("old"); !stripped && r == 4 {
			// as the item scripts leave an item: no counts; a new owner
			// reads it
			if err := rdb.HDel(ctx, k.ItemMeta("old"), "rl", "nl").Err(); err != nil {
				t.Fatal(err)
			}
			owner, _ = newOwner(st)
			stripped = true
		}
	}
	if !stripped {
		t.Fatal("old's row never held 4 entries after a flush")
	}
	for _, item := range items {
		r, n := rowLen(item)
		counts, err := rdb.HMGet(ctx, k.ItemMeta(item), "rl", "nl").Result()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(counts) != fmt.Sprint([]any{strconv.Itoa(int(r)), strconv.Itoa(int(n))}) {
			t.Errorf("%s: meta rl, nl %v, rows hold %d and %d entries", item, counts, r, n)
		}
	}
	got, err := st.ItemNeighbours(ctx, items, 0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := st.NextItems(ctx, items, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range items {
		gotRow, gotNext := map[string]float64{}, map[string]float64{}
		for _, s := range got[item] {
			gotRow[s.ID] = s.Score
		}
		for _, n := range next[item] {
			gotNext[n.ID] = n.Score
		}
		if !reflect.DeepEqual(gotRow, want) || !reflect.DeepEqual(gotNext, wantNext) {
			t.Errorf("%s: row %v, next %v; want %v and %v", item, gotRow, gotNext, want, wantNext)
		}
	}
}

// An item owner keeps an item's recent users at model.item_users_cap, the
// newest, also when the item's meta hash expired before its recent users
// (their number is read then, not assumed 0).
func TestItemOwnerRecentUsersCap(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix, o.ItemUsersCap = "t:", 5 }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	k := st.Keys()
	const ts0 = 1700000000000
	for u := range 5 {
		rdb.ZAdd(ctx, k.ItemUsers("left"), redis.Z{Score: float64(ts0 + u), Member: "old" + strconv.Itoa(u)})
	}
	owner, _ := newOwner(st)
	off := int64(0)
	for round := range 3 {
		for _, item := range []string{"left", "new"} {
			for u := range 3 {
				owner.Add(0, store.ItemUpdate{Item: item, Partition: 0, Contribs: []store.ItemContrib{{
					Offset: off, User: "u" + strconv.Itoa(round*3+u), TS: ts0 + 1000 + off, Pop: 1, Deg: 1}}})
				off++
			}
		}
		if err := owner.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, item := range []string{"left", "new"} {
			if n := rdb.ZCard(ctx, k.ItemUsers(item)).Val(); n > 5 {
				t.Fatalf("round %d: %s holds %d recent users, over the cap of 5", round, item, n)
			}
		}
	}
	for _, item := range []string{"left", "new"} {
		got, err := rdb.ZRange(ctx, k.ItemUsers(item), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"u4", "u5", "u6", "u7", "u8"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s's recent users %v, want %v", item, got, want)
		}
	}
}

// Near the memory limit an item owner drops the least recently reached
// quarter of its copies at each sweep, once per collection, and reads
// them again when next needed: the items end as with an owner that never
// dropped one.
func TestItemOwnerDropsCopiesForMemory(t *testing.T) {
	e := newErasureLog(t)
	ctx := context.Background()
	ownerA, mA := newOwner(e.a)
	ownerB, _ := newOwner(e.b)
	copies := func() int { return int(testutil.ToFloat64(mA.Items)) }
	dropped := func() int { return int(testutil.ToFloat64(mA.Evicted.WithLabelValues("memory"))) }
	var cycles uint64
	for i := 0; i < len(e.ops); i += 250 {
		batch := e.ops[i:min(i+250, len(e.ops))]
		for _, x := range []struct {
			st *store.Store
			o  *store.ItemOwner
		}{{e.a, ownerA}, {e.b, ownerB}} {
			w := store.NewItemWork(0)
			if _, err := x.st.ApplyUsers(ctx, 0, batch, w); err != nil {
				t.Fatal(err)
			}
			for _, u := range w.TakeUpdates() {
				x.o.Add(0, u)
			}
			if err := x.o.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// Under three quarters of the limit: nothing goes.
		e.a.SetHeap(750, 1000, cycles)
		before, was := copies(), dropped()
		ownerA.Sweep()
		if copies() != before || dropped() != was {
			t.Fatalf("batch %d: %d copies dropped at three quarters of the limit", i/250, before-copies())
		}
		// Over it: a quarter, rounded up, once per collection.
		cycles++
		e.a.SetHeap(751, 1000, cycles)
		ownerA.Sweep()
		if want := before - (before+3)/4; copies() != want || dropped() != was+(before+3)/4 {
			t.Fatalf("batch %d: %d copies left of %d, want %d", i/250, copies(), before, want)
		}
		left := copies()
		ownerA.Sweep()
		if copies() != left {
			t.Fatalf("batch %d: a second sweep after the same collection dropped %d copies", i/250, left-copies())
		}
	}
	if dropped() == 0 {
		t.Fatal("no copy dropped for memory")
	}
	sameItemState(t, itemState(t, e.rdb, e.a, e.items), itemState(t, e.rdb, e.b, e.items))
}

// An item owner names the users whose events reached items it wrote for
// the first time (their lists were computed before the items existed),
// once.
func TestItemOwnerFirstUsers(t *testing.T) {
	srv := redistest.Start(t)
	st := store.New(srv.Client(t), testopts.Store(func(o *store.Options) { o.Prefix = "t:" }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	owner, _ := newOwner(st)
	const ts0 = 1700000000000
	off := int64(0)
	add := func(item, user string, ts int64) {
		owner.Add(0, store.ItemUpdate{Item: item, Partition: 0, Contribs: []store.ItemContrib{{Offset: off, User: user, TS: ts, Pop: 1, Deg: 1}}})
		off++
	}
	flush := func() []string {
		t.Helper()
		if err := owner.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return owner.TakeFirstUsers()
	}
	add("old", "u0", ts0)
	if got, want := flush(), []string{"u0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first flush: %v, want %v", got, want)
	}
	if got := owner.TakeFirstUsers(); len(got) != 0 {
		t.Fatalf("taken twice: %v", got)
	}
	add("new", "u1", ts0+10)
	add("new", "u2", ts0+20)
	add("new", "u1", ts0+30)
	add("old", "u3", ts0+40)
	if got, want := flush(), []string{"u1", "u2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second flush: %v, want %v (u3 reached only an item written before)", got, want)
	}
	add("new", "u4", ts0+50)
	if got := flush(); len(got) != 0 {
		t.Fatalf("third flush: %v, want none (every item written before)", got)
	}
}

// An item owner also folds a row once the entries since its last fold
// hold more pairs than a folded row keeps (model.cooc_cap,
// model.next_cap), counted in the meta hash (rp, np): readers sum every
// entry, so a row written by few large flushes is folded before it
// reaches model.cooc_fold entries.
func TestItemOwnerFoldsRowsByPairs(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix, o.CoocFold, o.CoocCap, o.NextCap = "t:", 32, 5, 5 }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	k := st.Keys()
	owner, _ := newOwner(st)
	ids := []string{"j0", "j1", "j2"}
	for off := range int64(12) {
		var co, next []store.ItemPair
		for _, id := range ids {
			co = append(co, store.ItemPair{ID: id, V: 1})
			next = append(next, store.ItemPair{ID: id, V: 0.5})
		}
		owner.Add(0, store.ItemUpdate{Item: "i", Partition: 0, Contribs: []store.ItemContrib{{Offset: off, Co: co, Next: next}}})
		if err := owner.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// 3 pairs per entry: folded once 6 pairs passed the cap of 5
		r, n := rdb.LLen(ctx, k.ItemCooc("i")).Val(), rdb.LLen(ctx, k.ItemNext("i")).Val()
		if r > 3 || n > 3 {
			t.Fatalf("after offset %d: rows hold %d and %d entries, want at most 3", off, r, n)
		}
	}
	got, err := st.ItemNeighbours(ctx, []string{"i"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := st.NextItems(ctx, []string{"i"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	gotRow, gotNext := map[string]float64{}, map[string]float64{}
	for _, s := range got["i"] {
		gotRow[s.ID] = s.Score
	}
	for _, x := range next["i"] {
		gotNext[x.ID] = x.Score
	}
	want, wantNext := map[string]float64{"j0": 12, "j1": 12, "j2": 12}, map[string]float64{"j0": 6, "j1": 6, "j2": 6}
	if !reflect.DeepEqual(gotRow, want) || !reflect.DeepEqual(gotNext, wantNext) {
		t.Errorf("row %v, next %v; want %v and %v", gotRow, gotNext, want, wantNext)
	}
}
