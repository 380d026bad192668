package scorer

import (
	"context"
	"sync"
	"time"

	"github.com/recstream/recstream/store"
)

// zsetCache keeps other entities' sorted sets (neighbour vectors,
// co-occurrence rows, recent users of items) for a short time, so that the
// many users of one rescoring batch, and of batches close in time, share one
// read. The rescored user's own profile is never cached.
type zsetCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	n     int // entries read per id
	m     map[string]cachedZset
	swept time.Time // when expired entries were last dropped
}

type cachedZset struct {
	v  []store.Scored
	at time.Time
}

const zsetCacheMax = 200000 // entries; the cache is dropped when full

func newZsetCache(ttl time.Duration) *zsetCache {
	return &zsetCache{ttl: ttl, m: make(map[string]cachedZset)}
}

// get returns the sets of ids, reading the ones missing or expired with
// fetch (n entries each).
func (c *zsetCache) get(ctx context.Context, now time.Time, ids []string, n int,
	fetch func(context.Context, []string, int) (map[string][]store.Scored, error)) (map[string][]store.Scored, error) {
	if c == nil || c.ttl <= 0 {
		return fetch(ctx, ids, n)
	}
	out := make(map[string][]store.Scored, len(ids))
	var miss []string
	c.mu.Lock()
	if c.n != n {
		c.m, c.n = make(map[string]cachedZset), n
	}
	for _, id := range ids {
		if z, ok := c.m[id]; ok && now.Sub(z.at) < c.ttl {
			out[id] = z.v
		} else {
			miss = append(miss, id)
		}
	}
	c.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	got, err := fetch(ctx, miss, n)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if now.Sub(c.swept) >= c.ttl {
		// Expired entries are never served again: drop them once per TTL
		// instead of keeping them until the cache is full (they were most
		// of the scorer's heap).
		for id, z := range c.m {
			if now.Sub(z.at) >= c.ttl {
				delete(c.m, id)
			}
		}
		c.swept = now
	}
	if len(c.m)+len(got) > zsetCacheMax {
		c.m = make(map[string]cachedZset)
	}
	for id, v := range got {
		out[id] = v
		c.m[id] = cachedZset{v: v, at: now}
	}
	c.mu.Unlock()
	return out, nil
}
