package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

// BenchmarkApply applies one partition batch of 1,000 synthetic events
// (default caps) per iteration against a real redis-server; offsets keep
// growing, so every batch is applied, none fenced. ns/op is per batch.
// Sub-benchmarks vary model.cooc_history (20 is the default), the number of
// earlier items a new (user, item) pair co-occurs with.
func BenchmarkApply(b *testing.B) {
	for _, h := range []int{20, 5, 1} {
		b.Run("cooc_history="+strconv.Itoa(h), func(b *testing.B) { benchApply(b, h) })
	}
}

func benchApply(b *testing.B, history int) {
	runApplyBench(b, testopts.Store(func(o *store.Options) { o.Prefix, o.CoocHistory = "b:", history }),
		loadgen.Options{Users: 10000, Items: 5000, Seed: 1, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: time.Second},
		1000, 20, false, 0)
}

// runApplyBench applies warm batches of the generator's events, then one
// batch per iteration (offsets keep growing: every batch is applied, none
// fenced), stopping each Apply after its user phase when usersOnly, or,
// with window > 0, applying each batch's user half and writing the item
// half once window events are collected (ingest.item_window); it reports
// the time, Redis CPU and Redis commands per event.
func runApplyBench(b *testing.B, opt store.Options, gen loadgen.Options, batch, warm int, usersOnly bool, window int) {
	runApplyBenchSetup(b, opt, gen, batch, warm, usersOnly, window, nil)
}

// runApplyBenchWith is the default case of BenchmarkApply with setup run
// on the store first.
func runApplyBenchWith(b *testing.B, opt store.Options, gen loadgen.Options, setup func(*store.Store)) {
	runApplyBenchSetup(b, opt, gen, 1000, 20, false, 0, setup)
}

func runApplyBenchSetup(b *testing.B, opt store.Options, gen loadgen.Options, batch, warm int, usersOnly bool, window int, setup func(*store.Store)) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	st := store.New(rdb, opt)
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		b.Fatal(err)
	}
	if setup != nil {
		setup(st)
	}
	g := loadgen.New(gen)
	off := int64(0)
	next := func() []store.Op {
		ops := make([]store.Op, batch)
		for i := range ops {
			ev := g.Next()
			ops[i] = store.Op{Offset: off, User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS}
			off++
		}
		return ops
	}
	// Warm up: some history, so that co-occurrence work is realistic.
	for i := 0; i < warm; i++ {
		if _, err := st.Apply(ctx, 0, next()); err != nil {
			b.Fatal(err)
		}
	}
	w := store.NewItemWork(0)
	cpu0, calls0 := redisCost(b, rdb)
	stats0 := commandStats(b, rdb)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ops := next()
		if usersOnly {
			st.FailAfterUsers()
		}
		b.StartTimer()
		if window > 0 {
			if _, err := st.ApplyUsers(ctx, 0, ops, w); err != nil {
				b.Fatal(err)
			}
			if w.Events() >= window {
				if err := st.ApplyItems(ctx, w); err != nil {
					b.Fatal(err)
				}
			}
			continue
		}
		if _, err := st.Apply(ctx, 0, ops); err != nil && !usersOnly {
			b.Fatal(err)
		}
	}
	if err := st.ApplyItems(ctx, w); err != nil {
		b.Fatal(err)
	}
	cpu1, calls1 := redisCost(b, rdb)
	events := float64(b.N * batch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric((cpu1-cpu0)*1e6/events, "redis-cpu-µs/event")
	b.ReportMetric(float64(calls1-calls0)/events, "redis-cmds/event")
	printCommandStats(b, rdb, stats0, events)
}

// printCommandStats prints, with RECSTREAM_BENCH_CMDSTATS set, Redis's
// calls and µs per event of each command since stats0.
func printCommandStats(b *testing.B, rdb *redis.Client, stats0 map[string][2]float64, events float64) {
	if os.Getenv("RECSTREAM_BENCH_CMDSTATS") == "" {
		return
	}
	stats1 := commandStats(b, rdb)
	names := make([]string, 0, len(stats1))
	for name := range stats1 {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s0, s1 := stats0[name], stats1[name]
		if d := s1[0] - s0[0]; d > 0 {
			fmt.Fprintf(os.Stderr, "%s: %-18s %6.3f calls/event %7.2f µs/event\n", b.Name(), name, d/events, (s1[1]-s0[1])/events)
		}
	}
}

// commandStats returns INFO commandstats as command -> {calls, usec}. The
// usec of a script call includes the commands it ran, which are also
// counted under their own names.
func commandStats(b *testing.B, rdb *redis.Client) map[string][2]float64 {
	b.Helper()
	txt, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := make(map[string][2]float64)
	for _, line := range strings.Split(txt, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(k, "cmdstat_") || k == "cmdstat_info" {
			continue
		}
		var st [2]float64
		for _, f := range strings.Split(v, ",") {
			fk, fv, _ := strings.Cut(f, "=")
			switch fk {
			case "calls":
				st[0], _ = strconv.ParseFloat(fv, 64)
			case "usec":
				st[1], _ = strconv.ParseFloat(fv, 64)
			}
		}
		out[strings.TrimPrefix(k, "cmdstat_")] = st
	}
	return out
}

// redisCost returns Redis's CPU seconds (user+sys) and the commands it ran
// (INFO commandstats, script calls included; INFO itself excluded).
func redisCost(b *testing.B, rdb *redis.Client) (float64, int64) {
	b.Helper()
	ctx := context.Background()
	txt, err := rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var cpu float64
	var calls int64
	for _, line := range strings.Split(txt, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_user" || k == "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		case strings.HasPrefix(k, "cmdstat_") && k != "cmdstat_info":
			c, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			n, _ := strconv.ParseInt(c, 10, 64)
			calls += n
		}
	}
	return cpu, calls
}

func benchList(n int) store.List {
	l := store.List{Version: store.ListFormatVersion, User: "u12345", GeneratedAt: 1764400000123, Model: "hybrid-v1", EventTS: 1764400000001}
	for i := 0; i < n; i++ {
		l.Items = append(l.Items, store.ListItem{Item: "i" + strconv.Itoa(1000+i), Score: 1.0 / float64(i+1), Source: "item_knn", Reason: "because you viewed i" + strconv.Itoa(42+i)})
	}
	return l
}

// BenchmarkEncodeList is the JSON encoding of one 20-item list payload.
func BenchmarkEncodeList(b *testing.B) {
	l := benchList(20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteLists encodes and writes 64 lists (one scorer chunk) with
// one pipelined SET each against a real redis-server.
func BenchmarkWriteLists(b *testing.B) {
	srv := redistest.Start(b)
	st := store.New(srv.Client(b), testopts.Store(func(o *store.Options) { o.Prefix = "b:" }))
	lists := make([]store.List, 64)
	for i := range lists {
		lists[i] = benchList(20)
		lists[i].User = loadgen.UserID(i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := st.WriteLists(ctx, lists, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPairUpdate measures the cheapest ways Redis can take
// co-occurrence pair updates, against rows of 200 members (the default
// model.cooc_cap): ns/op and the Redis CPU are per pair update.
//   - zincrby: one pipelined ZINCRBY per pair (what the scripts' sums cost
//     Redis without Lua and without fences);
//   - zadd: absolute scores, 10 members per pipelined ZADD (a writer that
//     knows each pair's total, such as one that owns the item's row);
//   - blob: a whole row of 200 numbered pairs (1,600 bytes) per pipelined
//     SET, counted as 200 pair updates when every member changed and as
//     one when one did.
func BenchmarkPairUpdate(b *testing.B) {
	for _, mode := range []string{"zincrby", "zadd", "blob"} {
		b.Run(mode, func(b *testing.B) { benchPairUpdate(b, mode) })
	}
}

func benchPairUpdate(b *testing.B, mode string) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	const rows, cols = 5000, 200
	member := func(j int) string { return "i" + strconv.Itoa(j) }
	pipe := rdb.Pipeline()
	for r := 0; r < rows; r++ {
		z := make([]redis.Z, cols)
		for j := range z {
			z[j] = redis.Z{Score: 1e3 * float64(j+1) / 3, Member: member((r*7 + j*13) % 50000)}
		}
		pipe.ZAdd(ctx, "row:"+strconv.Itoa(r), z...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	blob := strings.Repeat("x", 8*cols)
	const perOp = 1000 // pair updates per pipeline
	k := 0
	cpu0, _ := redisCost(b, rdb)
	b.ReportAllocs()
	for b.Loop() {
		pipe := rdb.Pipeline()
		switch mode {
		case "zincrby":
			for i := 0; i < perOp; i++ {
				k++
				pipe.ZIncrBy(ctx, "row:"+strconv.Itoa(k%rows), 0.123456789*float64(k%97), member(((k%rows)*7+(k%cols)*13)%50000))
			}
		case "zadd":
			for i := 0; i < perOp; i += 10 {
				k++
				z := make([]redis.Z, 10)
				for j := range z {
					z[j] = redis.Z{Score: 0.123456789 * float64(k+j), Member: member(((k%rows)*7 + ((k+j)%cols)*13) % 50000)}
				}
				pipe.ZAdd(ctx, "row:"+strconv.Itoa(k%rows), z...)
			}
		case "blob":
			for i := 0; i < perOp; i += cols {
				k++
				pipe.Set(ctx, "blob:"+strconv.Itoa(k%rows), blob, 0)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cpu1, _ := redisCost(b, rdb)
	updates := float64(b.N * perOp)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/updates, "ns/update")
	b.ReportMetric((cpu1-cpu0)*1e6/updates, "redis-cpu-µs/update")
	if mode == "blob" {
		b.ReportMetric((cpu1-cpu0)*1e6/(updates/cols), "redis-cpu-µs/row")
	}
}

// BenchmarkCoocWindow measures the workload, not code: how many
// co-occurrence pair updates the bench's clickstream (100,000 users, 50,000
// items, 500,000 events, model.cooc_history 20) asks for per event, and how
// many of them would remain if every window of events were summed before it
// reaches Redis: distinct pairs and distinct item rows per event, for
// windows of events per partition. Run with -benchtime 1x.
func BenchmarkCoocWindow(b *testing.B) {
	for _, c := range []struct{ parts, window int }{{8, 125}, {8, 1000}, {8, 6250}, {1, 50000}, {1, 250000}} {
		b.Run(fmt.Sprintf("partitions=%d/window=%d", c.parts, c.window), func(b *testing.B) {
			for b.Loop() {
				benchCoocWindow(b, c.parts, c.window)
			}
		})
	}
}

func benchCoocWindow(b *testing.B, parts, window int) {
	const events, history = 500000, 20
	g := loadgen.New(loadgen.Options{Users: 100000, Items: 50000, Clusters: 10, Seed: 1, Start: time.Unix(0, 0), Step: time.Millisecond})
	type pair struct{ a, b string }
	type win struct {
		n     int
		pairs map[pair]struct{}
		rows  map[string]struct{}
	}
	wins := make([]win, parts)
	var updates, pairs, rows int
	flush := func(w *win) {
		pairs += len(w.pairs)
		rows += len(w.rows)
		*w = win{pairs: map[pair]struct{}{}, rows: map[string]struct{}{}}
	}
	for i := range wins {
		flush(&wins[i])
	}
	log := map[string][]string{} // user -> items, oldest first
	seen := map[pair]struct{}{}  // (user, item) pairs
	for k := 0; k < events; k++ {
		ev := g.Next()
		u, _ := strconv.Atoi(strings.TrimPrefix(ev.UserID, "u"))
		w := &wins[u%parts]
		if _, ok := seen[pair{ev.UserID, ev.ItemID}]; !ok {
			seen[pair{ev.UserID, ev.ItemID}] = struct{}{}
			h := log[ev.UserID]
			took := map[string]bool{ev.ItemID: true}
			for j := len(h) - 1; j >= 0 && len(took) <= history; j-- {
				if took[h[j]] {
					continue
				}
				took[h[j]] = true
				updates += 2
				w.pairs[pair{ev.ItemID, h[j]}] = struct{}{}
				w.pairs[pair{h[j], ev.ItemID}] = struct{}{}
				w.rows[h[j]] = struct{}{}
				w.rows[ev.ItemID] = struct{}{}
			}
		}
		log[ev.UserID] = append(log[ev.UserID], ev.ItemID)
		if w.n++; w.n == window {
			flush(w)
		}
	}
	for i := range wins {
		flush(&wins[i])
	}
	b.ReportMetric(float64(updates)/events, "pair-updates/event")
	b.ReportMetric(float64(pairs)/events, "distinct-pairs/event")
	b.ReportMetric(float64(rows)/events, "rows/event")
}

// BenchmarkApplyPhases splits a partition batch's Redis cost between the
// user scripts and the rest (item scripts and trending), on the full
// bench's shape: 100,000 users, 50,000 items, batches of 125 events (a
// 1,000-event batch over 8 partitions), after 200,000 events of warm-up.
// "users" stops each Apply after its user phase, as a crash there would;
// "window=N" writes the item half once per N events (ingest.item_window:
// 1,000 is 8,000 events over 8 partitions). "users_long_history" is
// "users" for 1,000 users with 200 events each of warm-up: every log full
// (2·model.user_log_cap entries), as for long-standing users.
func BenchmarkApplyPhases(b *testing.B) {
	for _, mode := range []string{"all", "users", "window=1000", "window=8000", "users_long_history"} {
		b.Run(mode, func(b *testing.B) {
			window := 0
			if v, ok := strings.CutPrefix(mode, "window="); ok {
				window, _ = strconv.Atoi(v)
			}
			users := 100000
			if mode == "users_long_history" {
				users = 1000
			}
			benchApplyPhases(b, users, strings.HasPrefix(mode, "users"), window)
		})
	}
}

func benchApplyPhases(b *testing.B, users int, usersOnly bool, window int) {
	const batch = 125
	runApplyBench(b, testopts.Store(func(o *store.Options) { o.Prefix = "b:" }),
		loadgen.Options{Users: users, Items: 50000, Clusters: 10, Seed: 1, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: time.Millisecond},
		batch, 200000/batch, usersOnly, window)
}

// BenchmarkUserWeights reads the weights of 64 users per pipeline, as a
// rescore reads its users' own vectors (all of them, n=200 at the default
// cap) and its neighbours' (the top 50), from their state blobs (each
// decoded up to the n-th weight; the blob holds a log of 2·64 entries
// too, as a user's does once it has 64 events); users of 200 weights and
// of 100. (Before the blob, weight zsets were read with DUMP, or with
// ZREVRANGE for the top n < 100: docs/benchmarks.md, 36.)
func BenchmarkUserWeights(b *testing.B) {
	for _, size := range []int{200, 100} {
		for _, n := range []int{200, 50} {
			b.Run(fmt.Sprintf("blob/size=%d/n=%d", size, n), func(b *testing.B) { benchUserWeights(b, size, n) })
		}
	}
}

func benchUserWeights(b *testing.B, size, n int) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	st := store.New(rdb, testopts.Store(nil))
	const users, perRead = 2000, 64
	rng := rand.New(rand.NewPCG(1, 2))
	pipe := rdb.Pipeline()
	log := make([]string, 128)
	for i := range log {
		log[i] = fmt.Sprintf("%d|3|click|1764400000%03d|1|i%d", 100000+i, i, rng.IntN(50000))
	}
	for u := range users {
		z := make([]redis.Z, size)
		w := make(map[string]float64, size)
		for j := range z { // scaled weights as the store keeps them
			z[j] = redis.Z{Score: rng.Float64() * 1e4, Member: "i" + strconv.Itoa(rng.IntN(50000))}
			w[z[j].Member.(string)] = z[j].Score
		}
		pipe.Set(ctx, st.Keys().UserState("u"+strconv.Itoa(u)), store.EncodeUserState(w, nil, log), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	names := make([]string, perRead)
	k := 0
	cpu0, _ := redisCost(b, rdb)
	b.ReportAllocs()
	for b.Loop() {
		for i := range names {
			names[i] = "u" + strconv.Itoa(k%users)
			k += 7
		}
		if _, err := st.UserVectors(ctx, names, n); err != nil {
			b.Fatal(err)
		}
	}
	cpu1, _ := redisCost(b, rdb)
	reads := float64(b.N * perRead)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/reads, "ns/user")
	b.ReportMetric((cpu1-cpu0)*1e6/reads, "redis-cpu-µs/user")
}

// BenchmarkApplyAttribution is BenchmarkApply's default case with
// attribution off, on without lists (as with impressions only) and on
// with a 20-item list stored for every user (the fallback to the current
// list reads it for every click, cart and purchase of a user without
// impressions).
func BenchmarkApplyAttribution(b *testing.B) {
	gen := loadgen.Options{Users: 10000, Items: 5000, Seed: 1, Start: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Step: time.Second}
	for _, c := range []struct {
		name   string
		window time.Duration
		lists  bool
	}{{"off", 0, false}, {"on", 24 * time.Hour, false}, {"on_with_lists", 24 * time.Hour, true}} {
		b.Run(c.name, func(b *testing.B) {
			opt := testopts.Store(func(o *store.Options) { o.Prefix, o.Attribution.Window = "b:", c.window })
			if c.lists {
				opt.Prefix = "bl:"
			}
			runApplyBenchWith(b, opt, gen, func(st *store.Store) {
				if !c.lists {
					return
				}
				var ls []store.List
				for u := 0; u < gen.Users; u++ {
					l := store.List{Version: 1, User: loadgen.UserID(u), EventTS: gen.Start.UnixMilli()}
					for k := 0; k < 20; k++ {
						l.Items = append(l.Items, store.ListItem{Item: loadgen.ItemID((u*7 + k*13) % gen.Items), Score: 1, Source: "item_knn", Reason: "because you viewed i1"})
					}
					ls = append(ls, l)
				}
				if err := st.WriteLists(context.Background(), ls, time.Hour); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkUserCopyBytes measures the heap a user's copy costs the
// ingest role (ingest.user_cache): it applies 8 and 16 times 4,000
// synthetic events (4,000 users, 50,000 items, the default
// configuration, attribution on) in batches of 1,000 with every copy
// kept, collects, drops the copies and collects again; bytes/copy is the
// live heap given back divided by the copies dropped (users with events:
// events/copy each on average). Run it once:
// go test -run '^$' -bench UserCopyBytes -benchtime 1x ./store/
func BenchmarkUserCopyBytes(b *testing.B) {
	for _, perUser := range []int{8, 16} {
		b.Run(fmt.Sprintf("events=%d", 4000*perUser), func(b *testing.B) {
			const users = 4000
			rdb := redistest.Start(b).Client(b)
			ctx := context.Background()
			gen := loadgen.New(loadgen.Options{Users: users, Items: 50000, Seed: 3, Start: time.Now().Add(-time.Hour), Step: time.Millisecond})
			var ops []store.Op
			for i := range users * perUser {
				ev := gen.Next()
				ops = append(ops, store.Op{Offset: int64(i), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS})
			}
			for range b.N {
				opt := store.OptionsFromConfig(config.Default())
				opt.Prefix, opt.UserCache = fmt.Sprintf("cb%d:", perUser), users
				opt.UserMetrics = store.NewUserMetrics(nil)
				st := store.New(rdb, opt)
				for from := 0; from < len(ops); from += 1000 {
					if _, err := st.Apply(ctx, 0, ops[from:min(from+1000, len(ops))]); err != nil {
						b.Fatal(err)
					}
				}
				copies := testutil.ToFloat64(opt.UserMetrics.Copies)
				with := liveHeap()
				st.AssignedPartitions(nil)
				without := liveHeap()
				b.ReportMetric(float64(with-without)/copies, "bytes/copy")
				b.ReportMetric(copies, "copies")
				b.ReportMetric(float64(len(ops))/copies, "events/copy")
				runtime.KeepAlive(st)
			}
		})
	}
}

// liveHeap collects and returns the live heap.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
