package store

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
)

// TestUserStateMigration runs one random log of two partitions through a
// store whose users were written by the version before the state blob
// (the reference script, testdata/user.lua, which keeps the weights, log
// and purchases in {u}:w, :log and :buy and the meta hash's k and c) and
// through a store that wrote blobs from the start. Before any write of
// this version the scorer's reads (profiles, vectors, recent events, the
// user scan) and an erasure read the old keys and answer as the blob
// store does; then the rest of the log is applied to both by this
// version: every answer equals the blob store's, the first write of each
// user replaces its old keys with the blob (and drops k and c), and the
// keys and reads of both stores are equal.
func TestUserStateMigration(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	ref := refUserScript(t)
	clock := time.Unix(1_700_000_000, 0)
	opts := func(prefix string) Options {
		o := OptionsFromConfig(config.Default())
		o.Prefix, o.UserTTL = prefix, time.Hour
		o.UserItemsCap, o.UserLogCap, o.NextWindow = 6, 5, 3
		o.Attribution = AttributionOptions{Window: 10 * time.Second, NoListFallback: true, ShownCap: 4}
		o.Now = func() time.Time { return clock }
		return o
	}
	old, blob := New(rdb, opts("o:")), New(rdb, opts("n:"))
	rng := rand.New(rand.NewPCG(5, 8))
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	types := []event.Type{event.Browse, event.Click, event.AddToCart, event.Purchase, event.Impression}
	var parts [2][]Op
	ts := clock.UnixMilli()
	for p := range parts {
		for off := range 160 {
			ts += 500 * rng.Int64N(4)
			op := Op{Offset: int64(off), User: users[rng.IntN(len(users))], Type: types[rng.IntN(len(types))], TS: ts}
			if op.Type == event.Impression {
				op.Shown = &event.Shown{Variant: "A", Items: []string{fmt.Sprintf("i%d", rng.IntN(12))}, Sources: []string{"trending"}}
			} else {
				op.Item = fmt.Sprintf("i%d", rng.IntN(12))
			}
			parts[p] = append(parts[p], op)
		}
	}
	// apply applies ops[from:to] of both partitions in batches of up to 9:
	// to o: with the reference script (byScript) or this version, to n:
	// with this version, checking that this version's answers agree.
	apply := func(from, to int, byScript bool) {
		t.Helper()
		for start := from; start < to; {
			end := min(to, start+1+rng.IntN(9))
			for p := range parts {
				batch := parts[p][start:end]
				res := ApplyResult{Users: make(map[string]int64)}
				bu, byUser := groupByUser(batch, &res, false)
				var want []userReply
				if byScript {
					want = refApply(t, ctx, old, ref, int32(p), batch, bu, byUser)
				} else {
					var err error
					if want, err = old.applyUserHalf(ctx, old.userCacheOf(int32(p)), int32(p), batch, bu, byUser); err != nil {
						t.Fatal(err)
					}
				}
				got, err := blob.applyUserHalf(ctx, blob.userCacheOf(int32(p)), int32(p), batch, bu, byUser)
				if err != nil {
					t.Fatal(err)
				}
				for k, u := range bu {
					w, g := want[k], got[k]
					if !slices.Equal(w.codes, g.codes) || !slices.Equal(w.log, g.log) || !slices.Equal(w.recs, g.recs) || !slices.Equal(w.attlog, g.attlog) {
						t.Fatalf("partition %d, offsets %d..%d, user %s: answers differ\nold:  %+v\nblob: %+v", p, start, end-1, u, want[k], got[k])
					}
				}
			}
			start = end
			clock = clock.Add(time.Duration(rng.IntN(40)) * time.Second)
		}
	}
	// reads returns what the scorer and the admin read of every user.
	reads := func(s *Store) string {
		t.Helper()
		var out string
		for _, n := range []int{0, 3} {
			ps, err := s.Profiles(ctx, users, n, 4)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := s.UserVectors(ctx, users, n)
			if err != nil {
				t.Fatal(err)
			}
			out += fmt.Sprintf("profiles %d: %+v\nvectors %d: %v\n", n, ps, n, vs)
		}
		for _, u := range users {
			evs, err := s.RecentEvents(ctx, u, 3)
			if err != nil {
				t.Fatal(err)
			}
			out += fmt.Sprintf("recent %s: %+v\n", u, evs)
		}
		var scanned []string
		if err := s.ScanUsers(ctx, 2, func(us []string) error { scanned = append(scanned, us...); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(scanned)
		return out + fmt.Sprintf("scanned %v\n", slices.Compact(scanned))
	}

	apply(0, 80, true)
	for _, u := range users {
		if rdb.Exists(ctx, old.keys.UserState(u)).Val() != 0 || rdb.Exists(ctx, old.keys.UserWeights(u), old.keys.UserLog(u)).Val() != 2 {
			t.Fatalf("user %s: not in the old keys only", u)
		}
		if rdb.Exists(ctx, blob.keys.UserState(u)).Val() != 1 || rdb.Exists(ctx, blob.keys.UserWeights(u), blob.keys.UserLog(u), blob.keys.UserPurchased(u)).Val() != 0 {
			t.Fatalf("user %s: not in the blob only", u)
		}
	}
	if r, w := reads(old), reads(blob); r != w {
		t.Fatalf("reads of the old keys differ from the blob's:\nold:\n%s\nblob:\n%s", r, w)
	}

	// An erasure reads what it subtracts from either.
	erase := func(s *Store) (erasedUser, ForgetResult) {
		t.Helper()
		var res ForgetResult
		e, err := s.eraseUser(ctx, "u0", ts-60_000, time.Hour, &res)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(e.items)
		slices.Sort(e.bought)
		return e, res
	}
	eo, ro := erase(old)
	eb, rb := erase(blob)
	if len(eo.log) == 0 || len(eo.items) == 0 || !reflect.DeepEqual(eo, eb) || ro.Events != rb.Events || ro.LoggedEvents != rb.LoggedEvents {
		t.Fatalf("erasures differ:\nold:  %+v %+v\nblob: %+v %+v", eo, ro, eb, rb)
	}
	for _, s := range []*Store{old, blob} {
		k := s.keys
		if n := rdb.Exists(ctx, k.UserState("u0"), k.UserWeights("u0"), k.UserLog("u0"), k.UserPurchased("u0")).Val(); n != 0 {
			t.Fatalf("%s: %d keys of the erased user left", k.Prefix, n)
		}
	}

	// This version writes both.
	apply(80, 160, false)
	for _, u := range users {
		ok, ot := userKeyContents(t, ctx, rdb, old.keys, u, true)
		bk, bt := userKeyContents(t, ctx, rdb, blob.keys, u, true)
		if !maps.Equal(ok, bk) {
			t.Fatalf("user %s: keys differ after the migration\nold:  %v\nblob: %v", u, ok, bk)
		}
		for name := range ot {
			if (ot[name] > 0) != (bt[name] > 0) {
				t.Fatalf("user %s, key %s: TTL %v, blob store's %v", u, name, ot[name], bt[name])
			}
		}
		if f := rdb.HMGet(ctx, old.keys.UserMeta(u), "k", "c").Val(); f[0] != nil || f[1] != nil {
			t.Fatalf("user %s: meta fields k, c left: %v", u, f)
		}
	}
	if r, w := reads(old), reads(blob); r != w {
		t.Fatalf("reads differ after the migration:\nold:\n%s\nblob:\n%s", r, w)
	}
}

// BenchmarkUserStateDecode decodes one user's top n weights in the
// process, as a reader does after the round trip: the weights after the
// n-th and the rest of the blob (a log of 2·64 entries) are not read; 200
// and 100 weights. (The DUMP payload of a weight zset, which readers
// decoded before the blob: docs/benchmarks.md, 36.)
func BenchmarkUserStateDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	log := make([]string, 128)
	for i := range log {
		log[i] = fmt.Sprintf("%d|3|click|1764400000%03d|1|i%d", 100000+i, i, rng.IntN(50000))
	}
	for _, size := range []int{200, 100} {
		w := make(map[string]float64, size)
		for len(w) < size {
			w["i"+fmt.Sprint(rng.IntN(50000))] = rng.Float64() * 1e4
		}
		blob := encodeUserBlob(w, nil, log)
		for _, n := range []int{200, 50} {
			b.Run(fmt.Sprintf("blob/size=%d/n=%d", size, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(blob)))
				for b.Loop() {
					if _, err := decodeUserBlob(blob, viewWant{weights: n, log: -1}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
