package scorer

import (
	"context"
	"sync"
	"time"
)

// readCache keeps what the scorer read of other entities (neighbour
// vectors, co-occurrence rows, recent users and degrees of items) for a
// short time, so that the many users of one rescoring batch, and of batches
// close in time, share one read. The rescored user's own profile is never
// cached.
type readCache[K comparable, V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int // entries; the cache is dropped when full
	n     int // entries read per id
	m     map[K]cachedRead[V]
	swept time.Time // when expired entries were last dropped
}

type cachedRead[V any] struct {
	v  V
	at time.Time
}

// readCacheMax is the most entries a cache of rows or vectors holds.
const readCacheMax = 200000

func newReadCache[K comparable, V any](ttl time.Duration, max int) *readCache[K, V] {
	return &readCache[K, V]{ttl: ttl, max: max, m: make(map[K]cachedRead[V])}
}

// get returns the values of ids, reading the ones missing or expired with
// fetch (n entries each, for sorted sets); with ttl <= 0 it reads them all.
func (c *readCache[K, V]) get(ctx context.Context, now time.Time, ids []K, n int,
	fetch func(context.Context, []K, int) (map[K]V, error)) (map[K]V, error) {
	if c == nil || c.ttl <= 0 {
		return fetch(ctx, ids, n)
	}
	out := make(map[K]V, len(ids))
	var miss []K
	c.mu.Lock()
	if c.n != n {
		c.m, c.n = make(map[K]cachedRead[V]), n
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
	if len(c.m)+len(got) > c.max {
		c.m = make(map[K]cachedRead[V])
	}
	for id, v := range got {
		out[id] = v
		c.m[id] = cachedRead[V]{v: v, at: now}
	}
	c.mu.Unlock()
	return out, nil
}
