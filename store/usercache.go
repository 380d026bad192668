package store

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// userCache keeps the copies of the users of one source partition
// between its batches, at most max of them (the least recently used go
// first). Its lock is held while a batch of the partition is applied, so
// one batch of a partition applies at a time and a copy is never used by
// two.
type userCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cachedUser, most recently used first
	byID  map[string]*list.Element
}

type cachedUser struct {
	id string
	st *userState
}

func newUserCache(max int) *userCache {
	return &userCache{max: max, order: list.New(), byID: make(map[string]*list.Element)}
}

// get returns the copy of u, or nil.
func (c *userCache) get(u string) *userState {
	e, ok := c.byID[u]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*cachedUser).st
}

// put keeps st as the copy of u.
func (c *userCache) put(u string, st *userState) {
	if c.max <= 0 {
		return
	}
	if e, ok := c.byID[u]; ok {
		e.Value.(*cachedUser).st = st
		c.order.MoveToFront(e)
		return
	}
	c.byID[u] = c.order.PushFront(&cachedUser{id: u, st: st})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byID, old.Value.(*cachedUser).id)
	}
}

// drop forgets the copy of u.
func (c *userCache) drop(u string) {
	if e, ok := c.byID[u]; ok {
		c.order.Remove(e)
		delete(c.byID, u)
	}
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
		c = newUserCache(s.opt.UserCache)
		s.caches[p] = c
	}
	return c
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
