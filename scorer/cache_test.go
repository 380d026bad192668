package scorer

import (
	"context"
	"testing"
	"time"

	"github.com/recstream/recstream/store"
)

// The cache serves reads younger than its TTL, rereads older ones and only
// the missing ids, and reads everything when disabled.
func TestZsetCache(t *testing.T) {
	ctx := context.Background()
	version := 1
	var asked [][]string
	fetch := func(_ context.Context, ids []string, n int) (map[string][]store.Scored, error) {
		asked = append(asked, ids)
		out := make(map[string][]store.Scored)
		for _, id := range ids {
			out[id] = []store.Scored{{ID: id, Score: float64(version)}}
		}
		return out, nil
	}
	t0 := time.Unix(1000, 0)
	c := newReadCache[string, []store.Scored](time.Second, readCacheMax)
	got, _ := c.get(ctx, t0, []string{"a", "b"}, 5, fetch)
	version = 2
	got2, _ := c.get(ctx, t0.Add(500*time.Millisecond), []string{"a", "c"}, 5, fetch)
	if got["a"][0].Score != 1 || got2["a"][0].Score != 1 || got2["c"][0].Score != 2 {
		t.Fatalf("within the TTL: %v %v", got, got2)
	}
	if len(asked) != 2 || len(asked[1]) != 1 || asked[1][0] != "c" {
		t.Fatalf("reads: %v, want [a b] then [c]", asked)
	}
	got3, _ := c.get(ctx, t0.Add(1100*time.Millisecond), []string{"a"}, 5, fetch)
	if got3["a"][0].Score != 2 {
		t.Fatalf("after the TTL: %v", got3)
	}
	got4, _ := c.get(ctx, t0.Add(1200*time.Millisecond), []string{"a"}, 7, fetch) // other n: reread
	if len(asked) != 4 || got4["a"] == nil {
		t.Fatalf("a different n must reread: %v", asked)
	}
	off := newReadCache[string, []store.Scored](-1, readCacheMax)
	off.get(ctx, t0, []string{"a"}, 5, fetch)
	off.get(ctx, t0, []string{"a"}, 5, fetch)
	if len(asked) != 6 {
		t.Fatalf("disabled cache reads every time: %v", asked)
	}
}

// Expired entries are dropped from memory once per TTL, not kept until the
// cache is full.
func TestZsetCacheDropsExpired(t *testing.T) {
	ctx := context.Background()
	fetch := func(_ context.Context, ids []string, n int) (map[string][]store.Scored, error) {
		out := make(map[string][]store.Scored)
		for _, id := range ids {
			out[id] = []store.Scored{{ID: id, Score: 1}}
		}
		return out, nil
	}
	t0 := time.Unix(1000, 0)
	c := newReadCache[string, []store.Scored](time.Second, readCacheMax)
	c.get(ctx, t0, []string{"a", "b", "c"}, 5, fetch)
	c.get(ctx, t0.Add(400*time.Millisecond), []string{"d"}, 5, fetch)
	if len(c.m) != 4 {
		t.Fatalf("within the TTL: %d entries, want 4", len(c.m))
	}
	c.get(ctx, t0.Add(1200*time.Millisecond), []string{"e"}, 5, fetch)
	if len(c.m) != 2 || c.m["d"].v == nil || c.m["e"].v == nil {
		t.Fatalf("after a TTL: entries %v, want d and e only", c.m)
	}
}
