package store_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

// Folding a row changes neither what its readers see nor the brute-force
// reference's values, however often it happens: every second entry, or
// never (all entries stay appended).
func TestCoocFoldingKeepsTheSums(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	log := genLog(3000, 60, 40, 2, 21)
	for _, fold := range []int{2, 1 << 30} {
		opt := bigCaps()
		opt.CoocFold = fold
		st := store.New(rdb, opt)
		if err := rdb.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		applyInBatches(t, st, log, rand.New(rand.NewPCG(1, 2)), 50)
		reference(st, log).check(t, st, rdb)
		long := 0
		for _, key := range rdb.Keys(context.Background(), "t:*}:cl").Val() {
			if rdb.LLen(context.Background(), key).Val() > 3 {
				long++
			}
		}
		if fold == 2 && long > 0 || fold > 2 && long == 0 {
			t.Errorf("fold every %d entries: %d rows longer than 3 entries", fold, long)
		}
	}
}

// A fold that read a row another process then folded (and appended to)
// writes nothing: the other fold and the new entries stand. A fold whose
// row only grew meanwhile replaces what it read and keeps the new entries.
func TestCoocStaleFoldWritesNothing(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	log := genLog(2400, 40, 20, 1, 8)
	ops := log[0].ops
	for _, otherFolds := range []bool{true, false} {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		opt := bigCaps()
		opt.CoocFold = 1 << 30 // folds only when the test asks
		other := store.New(rdb, opt)
		opt.CoocMetrics = store.NewCoocMetrics(nil)
		slow := store.New(rdb, opt)
		for i := 0; i < 1200; i += 100 { // rows of several entries
			if _, err := slow.Apply(ctx, 0, ops[i:i+100]); err != nil {
				t.Fatal(err)
			}
		}
		var items []string
		for _, key := range rdb.Keys(ctx, "t:*}:cl").Val() {
			items = append(items, strings.TrimSuffix(strings.TrimPrefix(key, "t:{i:"), "}:cl"))
		}
		hooked := false
		slow.SetFoldHook(func() {
			hooked = true
			if otherFolds {
				if err := other.FoldCooc(ctx, items); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := other.Apply(ctx, 0, ops[1200:]); err != nil {
				t.Fatal(err)
			}
		})
		if err := slow.FoldCooc(ctx, items); err != nil {
			t.Fatal(err)
		}
		if !hooked {
			t.Fatal("no row to fold")
		}
		rows := 0
		for _, it := range items {
			es := rdb.LRange(ctx, "t:{i:"+it+"}:cl", 0, -1).Val()
			if len(es) > 0 && es[0][0] == 's' {
				rows++
			}
		}
		if rows == 0 {
			t.Fatal("no row was folded")
		}
		written := testutil.ToFloat64(opt.CoocMetrics.Folds.WithLabelValues("written"))
		lost := testutil.ToFloat64(opt.CoocMetrics.Folds.WithLabelValues("lost"))
		if otherFolds && (written != 0 || lost == 0) || !otherFolds && (written == 0 || lost != 0) {
			t.Errorf("other process folds %v: slow process's folds written %v, lost %v", otherFolds, written, lost)
		}
		reference(slow, log).check(t, slow, rdb)
	}
}

func TestCoocEntries(t *testing.T) {
	got, err := store.CoocEntries([]string{
		"c0:1|0.5|a\nb",
		"c0:2|0.25|a\nc",
		"c1:7|1|b",
		"ex|a\t0.75\nb\t0.5\nz\t1", // a to zero (removed), b to 1, z absent
		"c0:3|2|a",
		"d0:4-9|" + pair("c", 0.5) + pair("d", 3), // summed contributions
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"a": 2, "b": 1, "c": 0.75, "d": 3}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range [][]string{{""}, {"c0:1|x|a"}, {"c0:1"}, {"ex|a"}, {"ex|a\tq"}, {"q"}, {"c0:1|1|a", "s"}, {"s\x05ab"}, {"s\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01abcdefgh"}, {"d0:4-9" + pair("c", 1)}, {"d0:4-9|\x05ab"}} {
		if _, err := store.CoocEntries(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// pair is a binary (name, value) pair of a row entry.
func pair(name string, v float64) string {
	b := binary.AppendUvarint(nil, uint64(len(name)))
	b = append(b, name...)
	return string(binary.LittleEndian.AppendUint64(b, math.Float64bits(v)))
}

// A malformed entry in a row (only a bug or a hand edit makes one) is left
// out by readers and dropped by the next fold; it blocks neither.
func TestCoocMalformedEntryIsLeftOut(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	opt := bigCaps()
	opt.CoocFold = 1 << 30
	opt.CoocMetrics = store.NewCoocMetrics(nil)
	st := store.New(rdb, opt)
	log := genLog(600, 20, 10, 1, 4)
	if _, err := st.Apply(ctx, 0, log[0].ops); err != nil {
		t.Fatal(err)
	}
	keys := rdb.Keys(ctx, "t:*}:cl").Val()
	if len(keys) == 0 {
		t.Fatal("no rows")
	}
	item := strings.TrimSuffix(strings.TrimPrefix(keys[0], "t:{i:"), "}:cl")
	want := coocMap(t, st, item)
	for _, bad := range []string{"zzz", "c0:x|not-a-number|a", "e1|a"} {
		if err := rdb.RPush(ctx, keys[0], bad).Err(); err != nil {
			t.Fatal(err)
		}
	}
	compareMap(t, "row with malformed entries", coocMap(t, st, item), want)
	if n := testutil.ToFloat64(opt.CoocMetrics.Malformed); n != 3 {
		t.Errorf("malformed entries counted %v, want 3", n)
	}
	if err := st.FoldCooc(ctx, []string{item}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, keys[0]).Val(); n != 1 {
		t.Fatalf("folded row holds %d entries, want 1", n)
	}
	compareMap(t, "folded row", coocMap(t, st, item), want)
	es := rdb.LRange(ctx, keys[0], 0, -1).Val()
	if _, err := store.CoocEntries(es); err != nil {
		t.Fatalf("folded row: %v", err)
	}
}
