package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

// TestUserStateRoundTrip encodes the weights of each sorted set of
// dumpCases (every kind of member and score the store could meet: integer
// members, binary and long members, ties, infinite and huge scores) with
// purchases and a log, and decodes them: the weights come back in
// ZREVRANGE WITHSCORES's order with the very scores Redis holds, the
// purchases in ZRANGE's, the log as it was.
func TestUserStateRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, c := range dumpCases() {
		w := map[string]float64{}
		for _, z := range c.members {
			w[z.Member.(string)] = z.Score
		}
		if err := rdb.ZAdd(ctx, "w:"+c.name, c.members...).Err(); err != nil {
			t.Fatal(err)
		}
		want := rdb.ZRevRangeWithScores(ctx, "w:"+c.name, 0, -1).Val()
		bought := map[string]float64{}
		var bz []redis.Z
		for i, z := range c.members[:min(len(c.members), 7)] {
			ts := float64(1_700_000_000_000 + int64(i%3)*1000)
			bought[z.Member.(string)] = ts
			bz = append(bz, redis.Z{Member: z.Member, Score: ts})
		}
		if len(bz) > 0 {
			rdb.ZAdd(ctx, "b:"+c.name, bz...)
		}
		wantB := rdb.ZRangeWithScores(ctx, "b:"+c.name, 0, -1).Val()
		log := []string{"9|3|click|1700|1|a", "", "8|3|browse|1600|0|x|y\x00"}
		got, err := store.DecodeUserState(store.EncodeUserState(w, bought, log))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got.Weights) != len(want) || len(got.Purchased) != len(wantB) || !slices.Equal(got.Log, log) {
			t.Fatalf("%s: %d weights, %d purchases, log %q; want %d, %d, %q", c.name, len(got.Weights), len(got.Purchased), got.Log, len(want), len(wantB), log)
		}
		for i, z := range want {
			if g := got.Weights[i]; g.ID != z.Member.(string) || math.Float64bits(g.Score) != math.Float64bits(z.Score) {
				t.Fatalf("%s, rank %d: %q %v, ZREVRANGE %q %v", c.name, i, g.ID, g.Score, z.Member, z.Score)
			}
		}
		for i, z := range wantB {
			if g := got.Purchased[i]; g.ID != z.Member.(string) || g.Score != z.Score {
				t.Fatalf("%s, purchase %d: %q %v, ZRANGE %q %v", c.name, i, g.ID, g.Score, z.Member, z.Score)
			}
		}
	}
	// Empty state, and the same state encoded twice is the same bytes
	// (map order does not leak into the blob).
	if got, err := store.DecodeUserState(store.EncodeUserState(nil, nil, nil)); err != nil || len(got.Weights)+len(got.Purchased)+len(got.Log) != 0 {
		t.Fatalf("empty state: %+v, %v", got, err)
	}
	w := map[string]float64{}
	for i := range 300 {
		w["i"+strconv.Itoa(i)] = float64(i % 17)
	}
	if a, b := store.EncodeUserState(w, w, nil), store.EncodeUserState(w, w, nil); string(a) != string(b) {
		t.Fatal("one state encoded into two blobs")
	}
}

// TestUserStateRejectsDamage feeds every truncation and many single-byte
// changes of a blob, and blobs of another version or shape, to the
// decoder: an error or a result, never a panic; truncations and unknown
// versions are refused.
func TestUserStateRejectsDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := map[string]float64{}
	for i := range 150 {
		w[fmt.Sprintf("item-%d", i)] = rng.Float64() * 1e4
	}
	p := store.EncodeUserState(w, map[string]float64{"item-3": 1.7e12}, []string{"1|0|click|1|1|item-3", "0|0|browse|0|1|item-4"})
	for cut := 0; cut < len(p); cut++ {
		if _, err := store.DecodeUserState(p[:cut]); err == nil {
			t.Fatalf("blob cut at %d of %d accepted", cut, len(p))
		}
	}
	for range 2000 {
		q := slices.Clone(p)
		q[rng.IntN(len(q))] ^= byte(1 + rng.IntN(255))
		_, _ = store.DecodeUserState(q)
	}
	other := func(vals ...any) []byte {
		b, err := msgpack.Marshal(vals)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"version 2":     other(2, []any{}, []any{}, []any{}),
		"version 0":     other(0, []any{}, []any{}, []any{}),
		"odd weights":   other(1, []any{"a"}, []any{}, []any{}),
		"three fields":  other(1, []any{}, []any{}),
		"not an array":  []byte{0xa1, 'x'},
		"string weight": other(1, []any{"a", "1.5"}, []any{}, []any{}),
	} {
		if _, err := store.DecodeUserState(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
