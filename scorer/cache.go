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
// cached. Entities are cached by their number (numbered's tables), in
// slices indexed by it: a rescore looks up thousands of them, and a map's
// hashing was a tenth of the scorer's CPU.
type readCache[V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int       // entries; the cache is dropped when full
	n     int       // entries read per id
	vals  []V       // by number
	at    []int64   // when vals[id] was read, Unix ns; 0: no entry
	held  []int32   // the numbers with an entry
	swept time.Time // when expired entries were last dropped
}

// readCacheMax is the most entries a cache of rows or vectors holds.
const readCacheMax = 200000

func newReadCache[V any](ttl time.Duration, max int) *readCache[V] {
	return &readCache[V]{ttl: ttl, max: max}
}

// get returns the values of ids, in their order (the zero value for those
// not found), reading the ones missing or expired with fetch (n entries
// each, for sorted sets); with ttl <= 0 it reads them all.
func (c *readCache[V]) get(ctx context.Context, now time.Time, ids []int32, n int,
	fetch func(context.Context, []int32, int) (map[int32]V, error)) ([]V, error) {
	out := make([]V, len(ids))
	if c == nil || c.ttl <= 0 {
		got, err := fetch(ctx, ids, n)
		if err != nil {
			return nil, err
		}
		for i, id := range ids {
			out[i] = got[id]
		}
		return out, nil
	}
	t, ttl := now.UnixNano(), c.ttl.Nanoseconds()
	var miss []int32
	var missAt []int // their places in ids
	c.mu.Lock()
	if c.n != n {
		c.clearLocked()
		c.n = n
	}
	for i, id := range ids {
		if int(id) < len(c.at) && c.at[id] != 0 && t-c.at[id] < ttl {
			out[i] = c.vals[id]
		} else {
			miss = append(miss, id)
			missAt = append(missAt, i)
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
	for k, id := range miss {
		out[missAt[k]] = got[id]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.swept) >= c.ttl {
		// Expired entries are never served again: drop them once per TTL
		// instead of keeping them until the cache is full (they were most
		// of the scorer's heap).
		kept := c.held[:0]
		var zero V
		for _, id := range c.held {
			if t-c.at[id] >= ttl {
				c.vals[id], c.at[id] = zero, 0
			} else {
				kept = append(kept, id)
			}
		}
		c.held = kept
		c.swept = now
	}
	if len(c.held)+len(got) > c.max {
		c.clearLocked()
	}
	for id, v := range got {
		if int(id) >= len(c.at) {
			m := max(int(id)+1, 2*len(c.at))
			c.vals = append(c.vals, make([]V, m-len(c.vals))...)
			c.at = append(c.at, make([]int64, m-len(c.at))...)
		}
		if c.at[id] == 0 {
			c.held = append(c.held, id)
		}
		c.vals[id], c.at[id] = v, t
	}
	return out, nil
}

// clearLocked drops every entry.
func (c *readCache[V]) clearLocked() {
	var zero V
	for _, id := range c.held {
		c.vals[id], c.at[id] = zero, 0
	}
	c.held = c.held[:0]
}

// len returns the number of entries held.
func (c *readCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}
