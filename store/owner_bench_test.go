package store_test

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// BenchmarkItemOwner measures what Redis would do per event under the
// item-owner design, a route to the ingest target (docs/benchmarks.md,
// "Ingest" under "Limits"): a measurement of that design's cost, not code the
// processor runs. On the full bench's shape (100,000 users, 50,000 items,
// batches of 125 events, 200,000 events of warm-up), each batch's user
// half is applied by the user scripts as now; its item half is summed
// (store.ItemWork) and merged into the state of one owner that keeps every
// item in memory (co-occurrence row capped at model.cooc_cap, popularity,
// degree), which writes each item changed in the last window events whole,
// with plain pipelined commands and no script: the row as one folded entry
// (SET), the window's recent users (ZADD, trimmed past the cap), the meta
// (HSET of the fence, popularity and degree), EXPIRE on keys it writes
// first; and one ZADD for trending. window=250000 is 5 s of events at
// 50,000/s. Reported: Redis CPU and commands per event (user scripts and
// owner writes together), and the owner's own time per event (merging,
// ranking, encoding; its pipelines' round trips left out).
//
// "users_too" keeps the user half in memory as well (weights, log and
// history computed in the process, as an owner of the partition's users
// would) and writes each changed user behind at the same windows: its
// changed weights (ZADD, trimmed past the cap), its new log entries
// (LPUSH, LTRIM), its meta with the fence (HSET), EXPIRE on keys it
// writes first. Redis then runs no script at all.
func BenchmarkItemOwner(b *testing.B) {
	for _, usersToo := range []bool{false, true} {
		for _, window := range []int{50000, 250000} {
			name := "window=" + strconv.Itoa(window)
			if usersToo {
				name = "users_too/" + name
			}
			b.Run(name, func(b *testing.B) { benchItemOwner(b, window, usersToo) })
		}
	}
}

// ownedUser is a user's state in the owner of its partition.
type ownedUser struct {
	w       map[string]float64
	log     []string // items, oldest first, the last 2·user_log_cap
	entries []any    // log entries of the window, oldest first
	changed map[string]bool
	written bool
	card    int // weights written, a bound on the zset's size
}

// ownedItem is an item's state in the owner; items are numbered once.
type ownedItem struct {
	row      map[uint32]float64
	pop, deg float64
	users    int // recent users written, a bound on the zset's size
	written  bool
	changed  bool
}

func benchItemOwner(b *testing.B, window int, usersToo bool) {
	const batch = 125
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "b:" }))
	opt, k := st.Options(), st.Keys()
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	g := loadgen.New(loadgen.Options{Users: 100000, Items: 50000, Clusters: 10, Seed: 1, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: time.Millisecond})
	off := int64(0)
	ids := map[string]uint32{}
	var names []string
	var items []*ownedItem
	var changed []uint32
	id := func(name string) uint32 {
		n, ok := ids[name]
		if !ok {
			n = uint32(len(names))
			ids[name] = n
			names = append(names, name)
			items = append(items, &ownedItem{row: map[uint32]float64{}})
		}
		return n
	}
	var ranked []store.Scored
	users := map[string][]redis.Z{} // the window's recent users per item
	var owner time.Duration         // the owner's own work
	inWindow := 0
	w := store.NewItemWork(0)
	owned := map[string]*ownedUser{}
	var changedUsers []string
	// applyUsers is the user half in memory: weights, log, history.
	applyUsers := func(ops []store.Op) {
		for _, op := range ops {
			u := owned[op.User]
			if u == nil {
				u = &ownedUser{w: map[string]float64{}, changed: map[string]bool{}}
				owned[op.User] = u
			}
			if len(u.changed) == 0 && len(u.entries) == 0 {
				changedUsers = append(changedUsers, op.User)
			}
			d := st.Decay(op.TS)
			weight := opt.Weights[op.Type] * d
			_, seen := u.w[op.Item]
			var hist []string
			if !seen {
				for j := len(u.log) - 1; j >= 0 && j >= len(u.log)-opt.UserLogCap && len(hist) < opt.CoocHistory; j-- {
					if it := u.log[j]; it != op.Item && !slices.Contains(hist, it) {
						hist = append(hist, it)
					}
				}
			}
			u.w[op.Item] += weight
			u.changed[op.Item] = true
			if u.log = append(u.log, op.Item); len(u.log) > 2*opt.UserLogCap {
				u.log = u.log[len(u.log)-2*opt.UserLogCap:]
			}
			isNew := "0"
			if !seen {
				isNew = "1"
			}
			u.entries = append(u.entries, strconv.FormatInt(op.Offset, 10)+"|0|"+op.Type.String()+"|"+strconv.FormatInt(op.TS, 10)+"|"+isNew+"|"+op.Item)
			w.Add(op, weight, d, !seen, hist)
		}
	}
	// writeUsers writes each changed user behind.
	writeUsers := func(pipe redis.Pipeliner, fence string, exec func(redis.Pipeliner)) {
		n := 0
		for _, name := range changedUsers {
			u := owned[name]
			z := make([]redis.Z, 0, len(u.changed))
			for it := range u.changed {
				z = append(z, redis.Z{Score: u.w[it], Member: it})
			}
			pipe.ZAdd(ctx, k.UserWeights(name), z...)
			if u.card += len(z); u.card > opt.UserItemsCap {
				pipe.ZRemRangeByRank(ctx, k.UserWeights(name), 0, int64(u.card-opt.UserItemsCap-1))
				u.card = opt.UserItemsCap
			}
			pipe.LPush(ctx, k.UserLog(name), u.entries...)
			if len(u.log) >= 2*opt.UserLogCap {
				pipe.LTrim(ctx, k.UserLog(name), 0, int64(2*opt.UserLogCap-1))
			}
			pipe.HSet(ctx, k.UserMeta(name), "f:0", fence, "n", len(u.log))
			if !u.written {
				pipe.Expire(ctx, k.UserWeights(name), opt.UserTTL)
				pipe.Expire(ctx, k.UserLog(name), opt.UserTTL)
				pipe.Expire(ctx, k.UserMeta(name), opt.UserTTL)
				u.written = true
			}
			clear(u.changed)
			u.entries = u.entries[:0]
			if n++; n%512 == 0 {
				exec(pipe)
			}
		}
		changedUsers = changedUsers[:0]
	}

	exec := func(pipe redis.Pipeliner) { // Redis's time, not the owner's
		t0 := time.Now()
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		owner -= time.Since(t0)
	}
	write := func() {
		t0 := time.Now()
		pipe := rdb.Pipeline()
		fence := strconv.FormatInt(off-1, 10)
		z := make([]redis.Z, 0, len(changed))
		n := 0
		for _, it := range changed {
			oi, name := items[it], names[it]
			oi.changed = false
			if len(oi.row) > 0 {
				// rank the row, keep its top cooc_cap (ties by name, as
				// readers order them)
				ranked = ranked[:0]
				for c, v := range oi.row {
					ranked = append(ranked, store.Scored{ID: names[c], Score: v})
				}
				slices.SortFunc(ranked, func(a, b store.Scored) int {
					if c := cmp.Compare(b.Score, a.Score); c != 0 {
						return c
					}
					return strings.Compare(b.ID, a.ID)
				})
				if len(ranked) > opt.CoocCap {
					for _, r := range ranked[opt.CoocCap:] {
						delete(oi.row, ids[r.ID])
					}
					ranked = ranked[:opt.CoocCap]
				}
				pipe.Set(ctx, k.ItemCooc(name)+":whole", store.EncodeRow(ranked), opt.UserTTL)
			}
			if us := users[name]; len(us) > 0 {
				pipe.ZAdd(ctx, k.ItemUsers(name), us...)
				if oi.users += len(us); oi.users > opt.ItemUsersCap {
					pipe.ZRemRangeByRank(ctx, k.ItemUsers(name), 0, int64(oi.users-opt.ItemUsersCap-1))
					oi.users = opt.ItemUsersCap
				}
			}
			pipe.HSet(ctx, k.ItemMeta(name), "f:0", fence,
				"pop", strconv.FormatFloat(oi.pop, 'g', 17, 64), "n", strconv.FormatFloat(oi.deg, 'g', 17, 64))
			if !oi.written {
				pipe.Expire(ctx, k.ItemUsers(name), opt.UserTTL)
				pipe.Expire(ctx, k.ItemMeta(name), opt.UserTTL)
				oi.written = true
			}
			z = append(z, redis.Z{Score: oi.pop, Member: name})
			if n++; n%512 == 0 {
				exec(pipe)
			}
		}
		pipe.ZAdd(ctx, k.Trending(), z...)
		if usersToo {
			writeUsers(pipe, fence, exec)
		}
		exec(pipe)
		changed = changed[:0]
		clear(users)
		inWindow = 0
		owner += time.Since(t0)
	}
	step := func() {
		ops := make([]store.Op, batch)
		for i := range ops {
			ev := g.Next()
			ops[i] = store.Op{Offset: off, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS}
			off++
		}
		t0 := time.Now()
		if usersToo {
			applyUsers(ops)
		} else {
			res, err := st.ApplyUsers(ctx, 0, ops, w)
			if err != nil {
				b.Fatal(err)
			}
			if res.Applied != len(ops) {
				b.Fatalf("applied %d of %d events", res.Applied, len(ops))
			}
			t0 = time.Now()
		}
		for _, op := range ops {
			users[op.Item] = append(users[op.Item], redis.Z{Score: float64(op.TS), Member: op.User})
		}
		for name, s := range w.TakeSums() {
			it := id(name)
			oi := items[it]
			oi.pop += s.Pop
			oi.deg += s.Deg
			for c, v := range s.Row {
				oi.row[id(c)] += v
			}
			if !oi.changed {
				oi.changed = true
				changed = append(changed, it)
			}
		}
		owner += time.Since(t0)
		if inWindow += len(ops); inWindow >= window {
			write()
		}
	}

	for i := 0; i < 200000/batch; i++ {
		step()
	}
	owner = 0
	cpu0, calls0 := redisCost(b, rdb)
	stats0 := commandStats(b, rdb)
	for b.Loop() {
		step()
	}
	if inWindow > 0 {
		write()
	}
	cpu1, calls1 := redisCost(b, rdb)
	events := float64(b.N * batch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric((cpu1-cpu0)*1e6/events, "redis-cpu-µs/event")
	b.ReportMetric(float64(calls1-calls0)/events, "redis-cmds/event")
	b.ReportMetric(float64(owner.Nanoseconds())/events, "owner-ns/event")
	printCommandStats(b, rdb, stats0, events)
}

// BenchmarkItemOwnerPath measures the item owners' path in the process,
// per event, on the full bench's shape (100,000 users, 50,000 items,
// batches of 1,000 events after 200,000 events of warm-up): the ingest
// side turning a batch's item half into updates and encoding them
// (ItemWork.TakeUpdates, EncodeItemUpdates), the item owner decoding
// them and queueing them (DecodeItemUpdatesWith, ItemOwner.Add), and a flush
// every 12 batches (about 500 ms at 25,000 events/s), with its writes to
// a real Redis. The user half (ApplyUsers) runs outside the timer.
func BenchmarkItemOwnerPath(b *testing.B) {
	const batch, flushEvery = 1000, 12
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "b:" }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	g := loadgen.New(loadgen.Options{Users: 100000, Items: 50000, Clusters: 10, Seed: 1, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: time.Millisecond})
	owner := st.NewItemOwner(store.ItemOwnerOptions{MaxItems: 100000})
	names := store.NewItemNames(1 << 15) // as consumer.ItemOwner keeps
	off := int64(0)
	w := store.NewItemWork(0)
	step := func(timed func(func())) {
		ops := make([]store.Op, batch)
		for i := range ops {
			ev := g.Next()
			ops[i] = store.Op{Offset: off, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS}
			off++
		}
		if _, err := st.ApplyUsers(ctx, 0, ops, w); err != nil {
			b.Fatal(err)
		}
		timed(func() {
			v, err := store.EncodeItemUpdates(w.TakeUpdates())
			if err != nil {
				b.Fatal(err)
			}
			us, err := store.DecodeItemUpdatesWith(v, names)
			if err != nil {
				b.Fatal(err)
			}
			for _, u := range us {
				owner.Add(0, u)
			}
		})
	}
	flush := func() {
		if err := owner.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		owner.Sweep()
	}
	for i := 0; i < 200; i++ {
		step(func(f func()) { f() })
		if i%flushEvery == flushEvery-1 {
			flush()
		}
	}
	flush()
	cpu0, calls0 := redisCost(b, rdb)
	b.ReportAllocs()
	n, cpu := 0, time.Duration(0)
	for b.Loop() {
		b.StopTimer()
		step(func(f func()) { b.StartTimer(); c := cpuNow(); f(); cpu += cpuNow() - c; b.StopTimer() })
		n++
		b.StartTimer()
		if n%flushEvery == 0 {
			c := cpuNow()
			flush()
			cpu += cpuNow() - c
		}
	}
	flush()
	cpu1, calls1 := redisCost(b, rdb)
	events := float64(n * batch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(cpu.Seconds()*1e6/events, "cpu-µs/event")
	b.ReportMetric((cpu1-cpu0)*1e6/events, "redis-cpu-µs/event")
	b.ReportMetric(float64(calls1-calls0)/events, "redis-cmds/event")
}

// cpuNow is the process's CPU time (user and system) so far.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
