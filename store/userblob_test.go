package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

// TestUserStateRoundTrip encodes the weights of each sorted set of
// weightCases (integer-like, binary and long members, ties, infinite and
// huge scores) with
// purchases and a log, and decodes them: the weights come back in
// ZREVRANGE WITHSCORES's order with the very scores Redis holds, the
// purchases in ZRANGE's, the log as it was.
func TestUserStateRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, c := range weightCases() {
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

// weightCase is a sorted set to write and read back.
type weightCase struct {
	name    string
	members []redis.Z
}

// weightCases are sorted sets of every kind of member and score the store
// may meet: small and large sets; members that look like integers, long,
// incompressible and binary ones; scores fractional, integral, negative,
// tied, huge and infinite.
func weightCases() []weightCase {
	rng := rand.New(rand.NewPCG(7, 9))
	mk := func(n int, member func(i int) string, score func(i int) float64) []redis.Z {
		zs := make([]redis.Z, n)
		for i := range zs {
			zs[i] = redis.Z{Member: member(i), Score: score(i)}
		}
		return zs
	}
	frac := func(int) float64 { return rng.Float64() * 1e6 }
	plain := func(i int) string { return fmt.Sprintf("item-%d", i) }
	ints := []string{"0", "7", "-1", "127", "128", "-129", "4095", "-4096", "32767", "32768", "-32769",
		"8388607", "8388608", "2147483647", "2147483648", "-2147483649", "9223372036854775807", "007", "1e3", "+5", "-0"}
	intScores := []float64{0, 5, -5, 127, 128, 4095, -4096, 40000, -40000, 1e7, -1e7, 3e9, -3e9, 4503599627370495, 4503599627370496, 1e300, -1e-300, math.Inf(1), math.Inf(-1), 0.5, -2.25}
	return []weightCase{
		{"one", mk(1, plain, frac)},
		{"small", mk(5, plain, frac)},
		{"listpack full", mk(128, plain, frac)},
		{"skiplist", mk(129, plain, frac)},
		{"skiplist at the cap", mk(200, plain, frac)},
		{"large", mk(600, plain, frac)},
		{"ties", mk(150, plain, func(i int) float64 { return float64(i % 3) })},
		{"ties small", mk(40, plain, func(i int) float64 { return float64(i%4) / 3 })},
		{"integer members", mk(len(ints), func(i int) string { return ints[i] }, frac)},
		{"integer members skiplist", mk(200, func(i int) string {
			if i < len(ints) {
				return ints[i]
			}
			return strconv.Itoa(i*7919 - 500000)
		}, frac)},
		{"integer scores", mk(len(intScores), plain, func(i int) float64 { return intScores[i] })},
		{"integer scores skiplist", mk(200, plain, func(i int) float64 { return intScores[i%len(intScores)] * float64(1+i/len(intScores)) })},
		{"long members", mk(60, func(i int) string { return strings.Repeat("abcdef", 4+i) + strconv.Itoa(i) }, frac)},
		{"long members skiplist", mk(200, func(i int) string { return strings.Repeat("xy", 11+i%40) + strconv.Itoa(i) }, frac)},
		{"incompressible members", mk(100, func(i int) string {
			b := make([]byte, 21+i)
			for k := range b {
				b[k] = byte(33 + rng.IntN(90))
			}
			return string(b)
		}, frac)},
		{"12-bit and 32-bit lengths", mk(3, func(i int) string { return strings.Repeat(string(rune('a'+i)), []int{70, 3000, 5000}[i]) }, frac)},
		{"binary members", mk(30, func(i int) string { return string([]byte{0, byte(i), 0xff, '\n', '|'}) }, frac)},
	}
}
