package scorer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/recstream/recstream/store"
)

// The cache serves reads younger than its TTL, rereads older ones and only
// the missing ids, and reads everything when disabled.
func TestZsetCache(t *testing.T) {
	ctx := context.Background()
	const a, b, c3, absent = 0, 1, 1000, 7 // c3: past the slices' first growth
	version := 1
	var asked [][]int32
	fetch := func(_ context.Context, ids []int32, n int) (map[int32][]store.Scored, error) {
		asked = append(asked, slices.Clone(ids))
		out := make(map[int32][]store.Scored)
		for _, id := range ids {
			if id != absent {
				out[id] = []store.Scored{{ID: fmt.Sprint(id), Score: float64(version)}}
			}
		}
		return out, nil
	}
	t0 := time.Unix(1000, 0)
	c := newReadCache[[]store.Scored](time.Second, readCacheMax)
	got, _ := c.get(ctx, t0, []int32{a, b, absent}, 5, fetch)
	version = 2
	got2, _ := c.get(ctx, t0.Add(500*time.Millisecond), []int32{c3, a, absent}, 5, fetch)
	if got[0][0].Score != 1 || got[2] != nil || got2[1][0].Score != 1 || got2[0][0].Score != 2 || got2[2] != nil {
		t.Fatalf("within the TTL: %v %v", got, got2)
	}
	// What was not found is read again.
	if len(asked) != 2 || !slices.Equal(asked[1], []int32{c3, absent}) {
		t.Fatalf("reads: %v, want [a b absent] then [c absent]", asked)
	}
	got3, _ := c.get(ctx, t0.Add(1100*time.Millisecond), []int32{a}, 5, fetch)
	if got3[0][0].Score != 2 {
		t.Fatalf("after the TTL: %v", got3)
	}
	got4, _ := c.get(ctx, t0.Add(1200*time.Millisecond), []int32{a}, 7, fetch) // other n: reread
	if len(asked) != 4 || got4[0] == nil || c.len() != 1 {
		t.Fatalf("a different n must reread, and drop the rest: %v, %d entries", asked, c.len())
	}
	off := newReadCache[[]store.Scored](-1, readCacheMax)
	got5, _ := off.get(ctx, t0, []int32{a, absent}, 5, fetch)
	off.get(ctx, t0, []int32{a}, 5, fetch)
	if len(asked) != 6 || got5[0][0].Score != 2 || got5[1] != nil {
		t.Fatalf("disabled cache reads every time: %v %v", asked, got5)
	}
}

// Expired entries are dropped from memory once per TTL, not kept until the
// cache is full.
func TestZsetCacheDropsExpired(t *testing.T) {
	ctx := context.Background()
	fetch := func(_ context.Context, ids []int32, n int) (map[int32][]store.Scored, error) {
		out := make(map[int32][]store.Scored)
		for _, id := range ids {
			out[id] = []store.Scored{{ID: fmt.Sprint(id), Score: 1}}
		}
		return out, nil
	}
	t0 := time.Unix(1000, 0)
	c := newReadCache[[]store.Scored](time.Second, readCacheMax)
	c.get(ctx, t0, []int32{0, 1, 2}, 5, fetch)
	c.get(ctx, t0.Add(400*time.Millisecond), []int32{3}, 5, fetch)
	if c.len() != 4 {
		t.Fatalf("within the TTL: %d entries, want 4", c.len())
	}
	c.get(ctx, t0.Add(1200*time.Millisecond), []int32{4}, 5, fetch)
	if c.len() != 2 || c.vals[3] == nil || c.vals[4] == nil || c.vals[0] != nil || c.at[0] != 0 {
		t.Fatalf("after a TTL: entries %v, want 3 and 4 only", c.held)
	}
}

// A full cache is dropped whole, and fills again.
func TestReadCacheFull(t *testing.T) {
	ctx := context.Background()
	fetch := func(_ context.Context, ids []int32, n int) (map[int32]float64, error) {
		out := make(map[int32]float64)
		for _, id := range ids {
			out[id] = float64(id) + 0.5
		}
		return out, nil
	}
	t0 := time.Unix(1000, 0)
	c := newReadCache[float64](time.Minute, 4)
	c.get(ctx, t0, []int32{0, 1, 2}, 0, fetch)
	got, _ := c.get(ctx, t0, []int32{5, 6, 1}, 0, fetch)
	if !slices.Equal(got, []float64{5.5, 6.5, 1.5}) || c.len() != 2 || c.vals[1] != 0 {
		t.Fatalf("got %v; %d entries %v, want 5 and 6", got, c.len(), c.held)
	}
}
