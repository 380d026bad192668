package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

// dumpCase is a sorted set to write and read back.
type dumpCase struct {
	name    string
	members []redis.Z
}

// dumpCases are sorted sets whose DUMP payloads use every encoding the
// decoder reads: listpack and skiplist sets; members raw, integer-encoded
// (8, 16, 32-bit; listpack 7, 13, 16, 24, 32, 64-bit), LZF-compressed, and
// of 6-bit, 12-bit and 32-bit listpack lengths; scores fractional, integral
// (stored as integers in a listpack), negative, tied, huge and infinite.
func dumpCases() []dumpCase {
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
	return []dumpCase{
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

// TestZSetDumpMatchesZRevRange decodes the DUMP payload of each case, as
// listpack and as skiplist where its size allows both, and compares it with
// ZREVRANGE WITHSCORES for several n.
func TestZSetDumpMatchesZRevRange(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(srv.Options())
	defer rdb.Close()
	ctx := context.Background()
	for _, maxLP := range []int{128, 1024} {
		if err := rdb.ConfigSet(ctx, "zset-max-listpack-entries", strconv.Itoa(maxLP)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ConfigSet(ctx, "zset-max-listpack-value", strconv.Itoa(min(maxLP, 10000))).Err(); err != nil {
			t.Fatal(err)
		}
		encodings := map[string]int{}
		for _, c := range dumpCases() {
			key := fmt.Sprintf("z:%d:%s", maxLP, c.name)
			if err := rdb.ZAdd(ctx, key, c.members...).Err(); err != nil {
				t.Fatal(err)
			}
			enc := rdb.ObjectEncoding(ctx, key).Val()
			encodings[enc]++
			payload, err := rdb.Dump(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 3, 50, 128, 200, 0} {
				stop := int64(n - 1)
				want, err := rdb.ZRevRangeWithScores(ctx, key, 0, stop).Result()
				if err != nil {
					t.Fatal(err)
				}
				got, err := store.DecodeZSetDump([]byte(payload), n)
				if err != nil {
					t.Fatalf("%s (%s), n=%d: %v", c.name, enc, n, err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s (%s), n=%d: %d members, ZREVRANGE %d", c.name, enc, n, len(got), len(want))
				}
				for i, w := range want {
					if got[i].ID != w.Member.(string) || math.Float64bits(got[i].Score) != math.Float64bits(w.Score) {
						t.Fatalf("%s (%s), n=%d, rank %d: %q %v, ZREVRANGE %q %v", c.name, enc, n, i, got[i].ID, got[i].Score, w.Member, w.Score)
					}
				}
			}
		}
		if encodings["listpack"] == 0 || (maxLP == 128 && encodings["skiplist"] == 0) {
			t.Fatalf("zset-max-listpack-entries %d: encodings %v, want both", maxLP, encodings)
		}
	}
}

// TestZSetDumpRejectsDamage feeds every truncation and many single-byte
// changes of real payloads to the decoder: it returns an error or a result,
// never panics, and a truncated payload is never accepted.
func TestZSetDumpRejectsDamage(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(srv.Options())
	defer rdb.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range dumpCases() {
		if err := rdb.ZAdd(ctx, c.name, c.members...).Err(); err != nil {
			t.Fatal(err)
		}
		p, err := rdb.Dump(ctx, c.name).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		for cut := 0; cut < len(p)-10; cut += 1 + len(p)/300 {
			// the footer (version, CRC) is not checked: cut the object
			q := append(append([]byte{}, p[:cut]...), p[len(p)-10:]...)
			if _, err := store.DecodeZSetDump(q, 0); err == nil {
				t.Fatalf("%s: payload cut at %d of %d accepted", c.name, cut, len(p))
			}
		}
		for range 300 {
			q := append([]byte{}, p...)
			q[rng.IntN(len(q))] ^= byte(1 + rng.IntN(255))
			_, _ = store.DecodeZSetDump(q, rng.IntN(60))
		}
	}
	for _, p := range [][]byte{nil, {5}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {17, 0xc3, 1, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := store.DecodeZSetDump(p, 0); err == nil {
			t.Fatalf("payload %v accepted", p)
		}
	}
}
