package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Scored is an id with a score.
type Scored struct {
	ID    string
	Score float64
}

// Profile is what the scorer reads of one user.
type Profile struct {
	User      string
	Items     []Scored        // weights, highest first (scaled; compare within one user only)
	Purchased map[string]bool // purchased items
	LastTS    int64           // newest event time applied (unix ms)
	Recent    []string        // distinct items of the most recent events, newest first
	// Acted is the strongest event type (purchase, add_to_cart, click,
	// browse) of each item of the most recent events.
	Acted map[string]string
}

// Profiles reads the top n weighted items (all when n <= 0), the distinct
// items of the last recent events, purchases and last event time of each
// user in one pipelined round trip (two when a user has no state blob:
// one written before it, userblob.go, or one without state).
func (s *Store) Profiles(ctx context.Context, users []string, n, recent int) ([]Profile, error) {
	recent = max(recent, 1)
	pipe := s.rdb.Pipeline()
	ts := make([]*redis.StringCmd, len(users))
	for i, u := range users {
		ts[i] = pipe.HGet(ctx, s.keys.UserMeta(u), "ts")
	}
	sr := s.queueStates(ctx, pipe, users, viewWant{weights: max(n, 0), log: recent, bought: true})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	vs, err := sr.result(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	out := make([]Profile, len(users))
	for i, u := range users {
		p := Profile{User: u, Items: vs[i].weights}
		if b := vs[i].bought; len(b) > 0 {
			p.Purchased = make(map[string]bool, len(b))
			for _, it := range b {
				p.Purchased[it.ID] = true
			}
		}
		p.LastTS, _ = strconv.ParseInt(ts[i].Val(), 10, 64)
		seen := make(map[string]bool)
		for _, e := range vs[i].log {
			x, err := parseLogEntry(e)
			typ, it := x.Type, x.Item
			if err != nil || it == "" {
				continue
			}
			if !seen[it] {
				seen[it] = true
				p.Recent = append(p.Recent, it)
			}
			if p.Acted == nil {
				p.Acted = make(map[string]string)
			}
			if typeRank(typ) > typeRank(p.Acted[it]) {
				p.Acted[it] = typ
			}
		}
		out[i] = p
	}
	return out, nil
}

// UserVectors reads the top n weighted items of each user (all when
// n <= 0).
func (s *Store) UserVectors(ctx context.Context, users []string, n int) (map[string][]Scored, error) {
	out := make(map[string][]Scored, len(users))
	if len(users) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	sr := s.queueStates(ctx, pipe, users, viewWant{weights: max(n, 0), log: -1})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading user vectors: %w", err)
	}
	vs, err := sr.result(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading user vectors: %w", err)
	}
	for i, u := range users {
		out[u] = vs[i].weights
	}
	return out, nil
}

// ItemNeighbours reads the top n co-occurring items of each item (all when
// n <= 0): its row's entries, folded (cooc.go).
func (s *Store) ItemNeighbours(ctx context.Context, items []string, n int) (map[string][]Scored, error) {
	out := make(map[string][]Scored, len(items))
	if len(items) == 0 {
		return out, nil
	}
	rows, err := s.readCooc(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("reading co-occurrence: %w", err)
	}
	for i, it := range items {
		out[it] = s.rowTop(it, rows[i], n, "left out")
	}
	return out, nil
}

// ItemUsers reads the n most recent users of each item (without their
// times: none of the readers needs them, and each score in a reply is a
// double Redis formats and the client parses).
func (s *Store) ItemUsers(ctx context.Context, items []string, n int) (map[string][]string, error) {
	out := make(map[string][]string, len(items))
	if len(items) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(items))
	for i, it := range items {
		cmds[i] = pipe.ZRevRange(ctx, s.keys.ItemUsers(it), 0, int64(n-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading item users: %w", err)
	}
	for i, it := range items {
		out[it] = cmds[i].Val()
	}
	return out, nil
}

// ItemDegrees reads the decayed distinct-user count n of each item.
func (s *Store) ItemDegrees(ctx context.Context, items []string) (map[string]float64, error) {
	out := make(map[string]float64, len(items))
	if len(items) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(items))
	for i, it := range items {
		cmds[i] = pipe.HGet(ctx, s.keys.ItemMeta(it), "n")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading item degrees: %w", err)
	}
	for i, it := range items {
		f, _ := strconv.ParseFloat(cmds[i].Val(), 64)
		out[it] = f
	}
	return out, nil
}

// TopTrending reads the n items with the highest decayed weight.
func (s *Store) TopTrending(ctx context.Context, n int) ([]Scored, error) {
	v, err := s.rdb.ZRevRangeWithScores(ctx, s.keys.Trending(), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading trending: %w", err)
	}
	return zs(v), nil
}

// WriteLists replaces each user's list (List.User; empty means the trending
// list) with one SET carrying a TTL, pipelined.
func (s *Store) WriteLists(ctx context.Context, lists []List, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	for i := range lists {
		l := &lists[i]
		l.Version = ListFormatVersion
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("encoding list: %w", err)
		}
		key := s.keys.TrendingList()
		if l.User != "" {
			key = s.keys.UserList(l.User)
		}
		pipe.Set(ctx, key, b, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing lists: %w", err)
	}
	return nil
}

// ReadList reads a user's list; found is false when there is none. An empty
// user reads the trending list.
func (s *Store) ReadList(ctx context.Context, user string) (l List, found bool, err error) {
	key := s.keys.TrendingList()
	if user != "" {
		key = s.keys.UserList(user)
	}
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return List{}, false, nil
	}
	if err != nil {
		return List{}, false, fmt.Errorf("reading list: %w", err)
	}
	l, err = DecodeList(b)
	return l, err == nil, err
}

// LoggedEvent is one entry of a user's recent-event log.
type LoggedEvent struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Type      string `json:"type"`
	TS        int64  `json:"ts"`
	New       bool   `json:"new"`
	Item      string `json:"item"`
}

// RecentEvents reads up to n of the user's most recent events (all when
// n <= 0), newest first.
func (s *Store) RecentEvents(ctx context.Context, user string, n int) ([]LoggedEvent, error) {
	pipe := s.rdb.Pipeline()
	sr := s.queueStates(ctx, pipe, []string{user}, viewWant{weights: -1, log: max(n, 0)})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading user log: %w", err)
	}
	vs, err := sr.result(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading user log: %w", err)
	}
	v := vs[0].log
	out := make([]LoggedEvent, 0, len(v))
	for _, e := range v {
		if x, err := parseLogEntry(e); err == nil {
			out = append(out, x) // a malformed entry is left out
		}
	}
	return out, nil
}

// typeRank orders event types by strength: browse < click < add_to_cart
// < purchase; 0 for none or an unknown type.
func typeRank(t string) int {
	switch t {
	case "browse":
		return 1
	case "click":
		return 2
	case "add_to_cart":
		return 3
	case "purchase":
		return 4
	}
	return 0
}

func zs(v []redis.Z) []Scored {
	out := make([]Scored, len(v))
	for i, z := range v {
		m, _ := z.Member.(string)
		out[i] = Scored{ID: m, Score: z.Score}
	}
	return out
}
