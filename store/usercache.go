package store

import (
	"container/list"
	"context"
	"fmt"
	"maps"
	"math"
	"runtime/metrics"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// userCache keeps the copies of the users of one source partition
// between its batches, at most max of them (the least recently used go
// first). Its lock is held while a batch of the partition is applied, so
// one batch of a partition applies at a time and a copy is never used by
// two. Copies also go when no batch used them for Options.CopyIdle,
// when the process nears its memory limit, and all of them when the
// partition is no longer assigned to the process (trimUserCopies,
// AssignedPartitions).
type userCache struct {
	mu    sync.Mutex
	max   int
	m     *UserMetrics
	now   int64      // unix ns: when the batch being applied started, the use time of its copies
	gone  bool       // the partition is no longer assigned: nothing is kept
	order *list.List // of *cachedUser, most recently used first
	byID  map[string]*list.Element
}

type cachedUser struct {
	id   string
	st   *userState
	used int64 // unix ns: when the batch that last used it started
}

func newUserCache(max int, m *UserMetrics) *userCache {
	return &userCache{max: max, m: m, order: list.New(), byID: make(map[string]*list.Element)}
}

// get returns the copy of u, or nil.
func (c *userCache) get(u string) *userState {
	e, ok := c.byID[u]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	cu := e.Value.(*cachedUser)
	cu.used = c.now
	return cu.st
}

// put keeps st as the copy of u.
func (c *userCache) put(u string, st *userState) {
	if c.max <= 0 || c.gone {
		return
	}
	if e, ok := c.byID[u]; ok {
		cu := e.Value.(*cachedUser)
		cu.st, cu.used = st, c.now
		c.order.MoveToFront(e)
		return
	}
	c.byID[u] = c.order.PushFront(&cachedUser{id: u, st: st, used: c.now})
	c.m.Copies.Inc()
	n := 0
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
		n++
	}
	c.evicted("count", n)
}

// drop forgets the copy of u.
func (c *userCache) drop(u string) {
	if e, ok := c.byID[u]; ok {
		c.remove(e)
	}
}

func (c *userCache) remove(e *list.Element) {
	c.order.Remove(e)
	delete(c.byID, e.Value.(*cachedUser).id)
	c.m.Copies.Dec()
}

// evicted counts n copies dropped for reason.
func (c *userCache) evicted(reason string, n int) {
	if n > 0 {
		c.m.Evicted.WithLabelValues(reason).Add(float64(n))
	}
}

// dropUsedBefore drops, least recently used first, the copies last used
// before t, and then up to *ties of those last used at t (taking them
// from *ties); it counts them as dropped for reason.
func (c *userCache) dropUsedBefore(t int64, ties *int, reason string) {
	n := 0
	for e := c.order.Back(); e != nil; e = c.order.Back() {
		used := e.Value.(*cachedUser).used
		if used > t || used == t && *ties <= 0 {
			break
		}
		if used == t {
			*ties--
		}
		c.remove(e)
		n++
	}
	c.evicted(reason, n)
}

// clear drops every copy, counting them as dropped for reason.
func (c *userCache) clear(reason string) {
	n := c.order.Len()
	for e := c.order.Back(); e != nil; e = c.order.Back() {
		c.remove(e)
	}
	c.evicted(reason, n)
}

// len returns the number of copies kept.
func (c *userCache) len() int { return c.order.Len() }

// userCacheOf returns the cache of source partition p's users.
func (s *Store) userCacheOf(p int32) *userCache {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	c := s.caches[p]
	if c == nil {
		if s.caches == nil {
			s.caches = make(map[int32]*userCache)
		}
		c = newUserCache(s.opt.UserCache, s.opt.UserMetrics)
		s.caches[p] = c
	}
	return c
}

// userCaches returns the cache of every partition, in partition order.
func (s *Store) userCaches() []*userCache {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	out := make([]*userCache, 0, len(s.caches))
	for _, p := range slices.Sorted(maps.Keys(s.caches)) {
		out = append(out, s.caches[p])
	}
	return out
}

// AssignedPartitions tells the store the source partitions this process
// consumes now (the ingest consumer calls it when its group assigns
// partitions): the copies of every other partition are dropped. A batch
// of another partition applied later (one fetched before the assignment
// changed) keeps its copies again, until they are idle.
func (s *Store) AssignedPartitions(partitions []int) {
	s.cacheMu.Lock()
	var revoked []*userCache
	for p, c := range s.caches {
		if !slices.Contains(partitions, int(p)) {
			revoked = append(revoked, c)
			delete(s.caches, p)
		}
	}
	s.cacheMu.Unlock()
	for _, c := range revoked {
		if c.mu.TryLock() {
			c.revoke()
			c.mu.Unlock()
			continue
		}
		// A batch of the partition is being applied, perhaps retried
		// through an outage: its copies go when it ends, without holding
		// up the caller (the Kafka group's goroutine, which heartbeats).
		go func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.revoke()
		}()
	}
}

// revoke drops every copy and keeps none from now on.
func (c *userCache) revoke() {
	c.gone = true
	c.clear("revoked")
}

// userSweepEvery is how often TrimUserCopies looks at the copies' ages
// and the memory in use.
const userSweepEvery = time.Second

// TrimUserCopies drops users' copies until ctx ends: once a second, the
// copies no batch used for Options.CopyIdle and, when the live heap
// (as of the last garbage collection) exceeds three quarters of the Go
// runtime's memory limit (run.memory_limit_mb or GOMEMLIMIT), the least
// recently used quarter of all partitions' copies, at most once per
// collection. Without a limit only the idle copies go.
func (s *Store) TrimUserCopies(ctx context.Context) {
	t := time.NewTicker(userSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.trimUserCopies()
		}
	}
}

// heapReading is what trimUserCopies reads of the Go runtime.
type heapReading struct {
	live   uint64 // heap bytes marked live by the last collection
	limit  uint64 // the soft memory limit; math.MaxInt64 for none
	cycles uint64 // collections so far
}

// pressed reports whether a memory limit is set and the live heap is
// over three quarters of it.
func (h heapReading) pressed() bool {
	return h.limit > 0 && h.limit < math.MaxInt64 && h.live > h.limit/4*3
}

var heapSamples = []string{"/gc/heap/live:bytes", "/gc/gomemlimit:bytes", "/gc/cycles/total:gc-cycles"}

// readHeap reads the live heap, the memory limit and the collections
// from runtime/metrics (no collection, no stop of the world).
func readHeap() heapReading {
	ss := make([]metrics.Sample, len(heapSamples))
	for i, n := range heapSamples {
		ss[i].Name = n
	}
	metrics.Read(ss)
	v := func(i int) uint64 {
		if ss[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ss[i].Value.Uint64()
	}
	return heapReading{live: v(0), limit: v(1), cycles: v(2)}
}

// trimUserCopies drops the idle copies, and the least recently used
// quarter when the live heap is over three quarters of the memory limit
// (TrimUserCopies).
func (s *Store) trimUserCopies() {
	caches := s.userCaches()
	if idle := s.opt.CopyIdle; idle > 0 {
		cut := s.opt.Now().Add(-idle).UnixNano()
		for _, c := range caches {
			none := 0
			c.mu.Lock()
			c.dropUsedBefore(cut, &none, "idle")
			c.mu.Unlock()
		}
	}
	h := s.heap()
	if !h.pressed() || h.cycles == s.trimmedAt {
		return
	}
	s.trimmedAt = h.cycles
	var used []int64
	for _, c := range caches {
		c.mu.Lock()
		for e := c.order.Front(); e != nil; e = e.Next() {
			used = append(used, e.Value.(*cachedUser).used)
		}
		c.mu.Unlock()
	}
	if len(used) == 0 {
		return
	}
	slices.Sort(used)
	k := (len(used) + 3) / 4
	cut := used[k-1]
	older, _ := slices.BinarySearch(used, cut)
	ties := k - older
	for _, c := range caches {
		c.mu.Lock()
		c.dropUsedBefore(cut, &ties, "memory")
		c.mu.Unlock()
	}
}

// maxUserAttempts bounds how often one batch applies a user's events
// again after its write was refused (another writer changed the user's
// guard fields in between each time).
const maxUserAttempts = 8

// applyUserHalf applies the events of each user of one partition's batch
// (byUser[u]: the indexes of u's ops) to the user's copy, from c or read
// from Redis, writes each changed user with one guarded write, and
// returns the answers in the order of users. A refused write (an
// erasure, a zombie, or a writer of another partition of the user got
// there first) drops the copy; the user is read again and its events
// applied again, the fences skipping what was applied.
func (s *Store) applyUserHalf(ctx context.Context, c *userCache, p int32, ops []Op, users []string, byUser map[string][]int) ([]userReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = s.opt.Now().UnixNano()
	cfg := s.userApplyConfig(p)
	fkey := "f:" + cfg.ps
	n := len(users)
	states := make([]*userState, n)
	lists := make([]userList, n)
	keys := make([]userKeys, n)
	replies := make([]userReply, n)
	todo := make([]int, 0, n)
	for k, u := range users {
		keys[k] = s.userKeys(u)
		todo = append(todo, k)
		if st := c.get(u); st != nil && st.ahead(ops, byUser[u], fkey) {
			states[k] = st
			s.opt.UserMetrics.Users.WithLabelValues("memory").Inc()
		} else {
			s.opt.UserMetrics.Users.WithLabelValues("read").Inc()
			// An event the copy would fence or drop is answered from
			// Redis as it is: the copy could predate an erasure.
			c.drop(u)
		}
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxUserAttempts {
			return nil, fmt.Errorf("user %q: its guarded write was refused %d times in a row", users[todo[0]], attempt)
		}
		if err := s.loadMissing(ctx, users, todo, states); err != nil {
			return nil, err
		}
		changes := make([]*userChange, n)
		var needList []int
		apply := func(k int) error {
			r, ch, err := applyUser(cfg, states[k], keys[k], ops, byUser[users[k]], &lists[k])
			if err == errNeedList {
				needList = append(needList, k)
				return nil
			}
			replies[k], changes[k] = r, ch
			return err
		}
		for _, k := range todo {
			if err := apply(k); err != nil {
				return nil, err
			}
		}
		if len(needList) > 0 {
			if err := s.readLists(ctx, users, needList, lists); err != nil {
				return nil, err
			}
			again := needList
			needList = nil
			for _, k := range again {
				if err := apply(k); err != nil {
					return nil, err
				}
			}
			if len(needList) > 0 {
				return nil, fmt.Errorf("user %q: list still needed once read", users[needList[0]])
			}
		}
		var writes []int
		for _, k := range todo {
			if changes[k].write.empty() {
				c.put(users[k], states[k])
				continue
			}
			writes = append(writes, k)
		}
		todo = todo[:0]
		if len(writes) == 0 {
			break
		}
		cmds, err := s.runScripts(ctx, guardedScript, len(writes), func(pipe redis.Pipeliner, j int) *redis.Cmd {
			return changes[writes[j]].write.send(ctx, pipe)
		})
		if err != nil {
			// What was written is unknown: the copies go.
			for _, k := range writes {
				c.drop(users[k])
			}
			return nil, err
		}
		for j, k := range writes {
			ok, _, err := guardedAnswer(cmds[j])
			if err != nil {
				for _, k := range writes {
					c.drop(users[k])
				}
				return nil, err
			}
			if !ok {
				s.opt.UserMetrics.Refused.Inc()
				c.drop(users[k])
				states[k] = nil
				todo = append(todo, k)
				continue
			}
			changes[k].commit(states[k])
			c.put(users[k], states[k])
		}
	}
	return replies, nil
}

// ahead reports whether every event ops[idx] lies after st's fence of
// the partition (fkey) and after the user's erasure, if any: the copy
// applies them all.
func (st *userState) ahead(ops []Op, idx []int, fkey string) bool {
	fence := int64(-1)
	if _, ok := st.meta[fkey]; ok {
		fence = metaInt(st.meta, fkey, -1)
	}
	gone := metaInt(st.meta, "gone", -1)
	for _, i := range idx {
		if ops[i].Offset <= fence || ops[i].TS <= gone {
			return false
		}
	}
	return true
}

// loadMissing reads the copies of the users todo that have none, in one
// transaction.
func (s *Store) loadMissing(ctx context.Context, users []string, todo []int, states []*userState) error {
	var miss []string
	var at []int
	for _, k := range todo {
		if states[k] == nil {
			miss = append(miss, users[k])
			at = append(at, k)
		}
	}
	if len(miss) == 0 {
		return nil
	}
	got, err := s.loadUsers(ctx, miss)
	if err != nil {
		return fmt.Errorf("reading user state: %w", err)
	}
	for j, k := range at {
		states[k] = got[j]
	}
	return nil
}

// readLists reads the current lists of the users at idx.
func (s *Store) readLists(ctx context.Context, users []string, idx []int, lists []userList) error {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(idx))
	for j, k := range idx {
		cmds[j] = pipe.Get(ctx, s.keys.UserList(users[k]))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return fmt.Errorf("reading user lists: %w", err)
	}
	for j, k := range idx {
		v, err := cmds[j].Result()
		switch {
		case err == redis.Nil:
			lists[k] = userList{known: true}
		case err != nil:
			return fmt.Errorf("reading user lists: %w", err)
		default:
			lists[k] = userList{known: true, present: true, raw: v}
		}
	}
	return nil
}
