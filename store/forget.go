package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/retry"
)

var (
	//go:embed lua/forget_user.lua
	forgetUserLua string
	//go:embed lua/forget_item.lua
	forgetItemLua string
	//go:embed lua/forget_trending.lua
	forgetTrendingLua string

	forgetUserScript     = redis.NewScript(forgetUserLua)
	forgetItemScript     = redis.NewScript(forgetItemLua)
	forgetTrendingScript = redis.NewScript(forgetTrendingLua)
)

// AuditStreamMaxLen bounds the audit stream (approximate trimming).
const AuditStreamMaxLen = 100000

// ForgetOptions configures one erasure.
type ForgetOptions struct {
	// TombstoneTTL is how long events of the user stamped at or before the
	// erasure are dropped (in-flight batches, replays); default 1h.
	TombstoneTTL time.Duration
	// Sweep scans every item's recent-user index, not only those of the
	// items still in the user's vector, log and purchases.
	Sweep bool
	// Settle, when positive, repeats the index and list clean-up after this
	// delay, to undo writes of a batch or a rescore already in flight when
	// the user state was erased.
	Settle time.Duration
	// InFlight is how long the item half of batches applied before the
	// erasure may still wait to be written (an ingest item window and its
	// write, ingest.item_window): the user's contributions to items are
	// computed at once but subtracted, and the user removed from item
	// indexes, after it, so that they are there to subtract.
	InFlight time.Duration
	// MaxNeighbours bounds the users returned for rescoring; default 1000.
	MaxNeighbours int
	Now           func() time.Time
	Source        string // audit: what asked (cli, control topic)
	Request       string // audit: the caller's reference (ticket id)
}

// ForgetResult says what an erasure removed.
type ForgetResult struct {
	KeysDeleted    int64    `json:"keys_deleted"`    // user keys deleted (state, meta, list, shown items, attribution log)
	Events         int64    `json:"events"`          // events the user had applied
	LoggedEvents   int      `json:"logged_events"`   // of which still in the user log: their contributions were subtracted
	WindowComplete bool     `json:"window_complete"` // the log held every event of the user
	Items          int      `json:"items"`           // items whose index, co-occurrence, degree and popularity were corrected
	Pairs          int      `json:"pairs"`           // co-occurrence entries queued for reduction
	Trending       int      `json:"trending"`        // trending entries reduced (or removed)
	IndexRemovals  int      `json:"index_removals"`  // recent-user index entries removed
	Swept          int      `json:"swept"`           // item indexes scanned by the sweep
	Neighbours     []string `json:"-"`               // users who shared items with the user: rescore them
	AuditID        string   `json:"audit_id"`        // id of the audit stream entry
}

// AuditStream is the Redis stream of erasure audit records.
func (k Keys) AuditStream() string { return k.Prefix + "{g}:audit" }

// forgetGuard is the one-shot guard of one erasure on one item.
func (k Keys) forgetGuard(item, erasure string) string {
	return k.Prefix + "{i:" + item + "}:fg:" + erasure
}

// forgetTrendingGuard is the one-shot guard of one erasure on Trending.
func (k Keys) forgetTrendingGuard(erasure string) string {
	return k.Prefix + "{g}:trend:fg:" + erasure
}

// Forget erases a user: their keys (state, meta, list, attribution),
// their entries in item recent-user indexes, and their contribution to
// co-occurrence, degrees, popularity and trending as far as the user log
// still records it. It leaves a tombstone (the meta key holding only the fences
// and the erasure time, for TombstoneTTL) so that no event stamped before the
// erasure brings the state back, and appends an audit record to
// AuditStream holding a SHA-256 digest of the id, never the id.
func (s *Store) Forget(ctx context.Context, user string, opt ForgetOptions) (ForgetResult, error) {
	var res ForgetResult
	if r := event.ValidateID(user, 0); r != "" {
		return res, fmt.Errorf("forget: invalid user id %q: %s", user, r)
	}
	if opt.TombstoneTTL <= 0 {
		opt.TombstoneTTL = time.Hour
	}
	if opt.MaxNeighbours <= 0 {
		opt.MaxNeighbours = 1000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	now := opt.Now().UnixMilli()
	erasure := randomID()

	// 1. The user's key group, atomically.
	erased, err := s.eraseUser(ctx, user, now, opt.TombstoneTTL, &res)
	if err != nil {
		return res, err
	}
	// 2. What the logged events contributed to each item.
	fix := s.contributions(erased.log)
	for _, it := range append(erased.items, erased.bought...) {
		fix.of(it)
	}
	order := fix.items()
	res.Items = len(order)

	// Batches applied before step 1 may still hold their item half in an
	// ingest item window; once it is written there is all to subtract.
	// (Their replays after step 1 drop the user's events.)
	if err := wait(ctx, opt.InFlight); err != nil {
		return res, err
	}
	// Users who share the items: their user-kNN neighbourhoods included
	// this user; they are returned for rescoring.
	res.Neighbours, err = s.sharers(ctx, user, order, opt.MaxNeighbours)
	if err != nil {
		return res, fmt.Errorf("forget: reading item indexes: %w", err)
	}
	// 3. Each item's key group and trending, once per erasure (guard keys).
	guardTTL := int64((opt.TombstoneTTL + opt.Settle) / time.Second)
	if err := s.correctItems(ctx, user, erasure, order, fix, guardTTL, &res); err != nil {
		return res, err
	}
	if err := s.correctTrending(ctx, erasure, order, fix, guardTTL, &res); err != nil {
		return res, err
	}
	// 4. Every other item's index (entries of items that left the user's
	// capped vector and log).
	if opt.Sweep {
		n, removed, err := s.sweepItemIndexes(ctx, user)
		if err != nil {
			return res, fmt.Errorf("forget: sweeping item indexes: %w", err)
		}
		res.Swept, res.IndexRemovals = n, res.IndexRemovals+removed
	}
	// 5. A batch or a rescore in flight during step 1 may still add the
	// user to an index or write their list: clean both again.
	if opt.Settle > 0 {
		if err := s.settleForget(ctx, user, order, opt.Settle); err != nil {
			return res, err
		}
	}
	// 6. The audit record.
	res.AuditID, err = s.auditForget(ctx, user, now, opt, res)
	return res, err
}

// erasedUser is what the erasure script read before deleting the user's keys.
type erasedUser struct {
	log           []string // the user log, newest first
	items, bought []string // the items of the weights vector and the purchases
}

// eraseUser reads what the item corrections need, deletes the user's keys
// and leaves the tombstone, in one script; it fills res's counts of keys
// and events.
func (s *Store) eraseUser(ctx context.Context, user string, now int64, tombstone time.Duration, res *ForgetResult) (erasedUser, error) {
	k := s.keys
	v, err := s.evalRetry(ctx, forgetUserScript,
		[]string{k.UserState(user), k.UserMeta(user), k.UserList(user), k.UserWeights(user), k.UserLog(user), k.UserPurchased(user),
			k.UserShownAt(user), k.UserShown(user), k.UserAttribution(user)},
		now, int64(tombstone/time.Second))
	if err != nil {
		return erasedUser{}, fmt.Errorf("forget: erasing user state: %w", err)
	}
	arr, _ := v.([]any)
	if len(arr) != 6 {
		return erasedUser{}, errors.New("forget: malformed script answer")
	}
	// The blob, or the keys of a user written before it.
	e := erasedUser{log: toStrings(arr[1]), items: toStrings(arr[2]), bought: toStrings(arr[3])}
	if blob, ok := arr[0].(string); ok {
		st, err := decodeUserBlob([]byte(blob), wantAll)
		if err != nil {
			return erasedUser{}, fmt.Errorf("forget: reading the erased user state: %w", err)
		}
		e = erasedUser{log: st.log, items: make([]string, len(st.weights)), bought: make([]string, len(st.bought))}
		for i, w := range st.weights {
			e.items[i] = w.ID
		}
		for i, b := range st.bought {
			e.bought[i] = b.ID
		}
	}
	nStr, _ := arr[4].(string)
	res.Events, _ = strconv.ParseInt(nStr, 10, 64)
	res.KeysDeleted, _ = arr[5].(int64)
	res.LoggedEvents = len(e.log)
	res.WindowComplete = int64(len(e.log)) >= res.Events
	return e, nil
}

// itemFix is what an erased user's logged events added to one item: to its
// degree, its popularity (and trending), its co-occurrence row and its
// next-item row.
type itemFix struct {
	deg, pop float64
	co       map[string]float64
	next     map[string]float64
}

// itemFixes are the corrections of an erasure, by item.
type itemFixes map[string]*itemFix

func (f itemFixes) of(it string) *itemFix {
	x := f[it]
	if x == nil {
		x = &itemFix{co: map[string]float64{}, next: map[string]float64{}}
		f[it] = x
	}
	return x
}

// items returns the corrected items, sorted.
func (f itemFixes) items() []string {
	out := make([]string, 0, len(f))
	for it := range f {
		out = append(out, it)
	}
	sort.Strings(out)
	return out
}

// contributions recomputes from the user log (newest first) what each
// event added: weight·decay to its item's popularity and to its trending
// weight (lua/trending.lua adds the same term); an event that made its
// item new added decay to the item's degree and, with each of the user's
// distinct earlier items still in the log (at most CoocHistory), decay to
// both co-occurrence rows. Each event also added its transitions from the
// user's NextWindow latest distinct earlier items (next.go).
func (s *Store) contributions(log []string) itemFixes {
	fix := itemFixes{}
	entries := make([]LoggedEvent, 0, len(log))
	for _, e := range log {
		if x, err := parseLogEntry(e); err == nil {
			entries = append(entries, x) // a malformed entry is left out
		}
	}
	weights := map[string]float64{}
	for t, w := range s.opt.Weights {
		weights[t.String()] = w
	}
	for i, e := range entries {
		d := s.Decay(e.TS)
		it := fix.of(e.Item)
		it.pop += weights[e.Type] * d
		s.forgetNext(entries[i:], weights[e.Type]*d, func(from, to string, v float64) { fix.of(from).next[to] += v })
		if !e.New {
			continue
		}
		it.deg += d
		seen := map[string]bool{}
		for _, h := range entries[i+1:] {
			if len(seen) >= s.opt.CoocHistory {
				break
			}
			if h.Item == e.Item || seen[h.Item] {
				continue
			}
			seen[h.Item] = true
			it.co[h.Item] += d
			fix.of(h.Item).co[e.Item] += d
		}
	}
	return fix
}

// correctItems runs the item script on each item's key group: the user
// leaves the recent-user index, and the degree, popularity,
// co-occurrence and transition sums are subtracted, once per erasure (guard key).
func (s *Store) correctItems(ctx context.Context, user, erasure string, order []string, fix itemFixes, guardTTL int64, res *ForgetResult) error {
	k := s.keys
	for start := 0; start < len(order); start += 500 {
		chunk := order[start:min(start+500, len(order))]
		cmds, err := s.runScripts(ctx, nil, len(chunk), func(pipe redis.Pipeliner, j int) *redis.Cmd {
			it := chunk[j]
			f := fix[it]
			others := make([]string, 0, len(f.co))
			for o := range f.co {
				others = append(others, o)
			}
			sort.Strings(others)
			entry := ""
			if len(others) > 0 {
				entry = erasureEntry(erasure, others, f.co)
			}
			next := ""
			if len(f.next) > 0 {
				to := make([]string, 0, len(f.next))
				for o := range f.next {
					to = append(to, o)
				}
				sort.Strings(to)
				next = erasureEntry(erasure, to, f.next)
			}
			args := []any{user, fmtFloat(f.deg), fmtFloat(f.pop), guardTTL, entry, next}
			return forgetItemScript.EvalSha(ctx, pipe, []string{k.ItemUsers(it), k.ItemCooc(it), k.ItemMeta(it), k.forgetGuard(it, erasure), k.ItemNext(it)}, args...)
		})
		if err != nil {
			return fmt.Errorf("forget: correcting items: %w", err)
		}
		for j, c := range cmds {
			r, _ := c.Slice()
			if len(r) == 2 {
				rem, _ := r[0].(int64)
				queued, _ := r[1].(int64)
				res.IndexRemovals += int(rem)
				if queued == 1 {
					res.Pairs += len(fix[chunk[j]].co)
				}
			}
		}
	}
	return nil
}

// correctTrending subtracts the same weight·decay sums as popularity from
// trending, once per erasure (guard key).
func (s *Store) correctTrending(ctx context.Context, erasure string, order []string, fix itemFixes, guardTTL int64, res *ForgetResult) error {
	targs := []any{guardTTL}
	for _, it := range order {
		if p := fix[it].pop; p > 0 {
			targs = append(targs, it, fmtFloat(p))
		}
	}
	if len(targs) == 1 {
		return nil
	}
	v, err := s.evalRetry(ctx, forgetTrendingScript, []string{s.keys.Trending(), s.keys.forgetTrendingGuard(erasure)}, targs...)
	if err != nil {
		return fmt.Errorf("forget: correcting trending: %w", err)
	}
	n, _ := v.(int64)
	res.Trending = int(n)
	return nil
}

// settleForget waits settle, then deletes the user's list and index
// entries again.
func (s *Store) settleForget(ctx context.Context, user string, order []string, settle time.Duration) error {
	if err := wait(ctx, settle); err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.keys.UserList(user))
	for _, it := range order {
		pipe.ZRem(ctx, s.keys.ItemUsers(it), user)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("forget: settling: %w", err)
	}
	return nil
}

// auditForget appends the erasure's audit record and returns its id.
func (s *Store) auditForget(ctx context.Context, user string, now int64, opt ForgetOptions, res ForgetResult) (string, error) {
	sum := sha256.Sum256([]byte(user))
	id, err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.keys.AuditStream(),
		MaxLen: AuditStreamMaxLen,
		Approx: true,
		Values: []any{
			"action", "forget",
			"subject_sha256", hex.EncodeToString(sum[:]),
			"at", now,
			"source", opt.Source,
			"request", opt.Request,
			"keys_deleted", res.KeysDeleted,
			"events", res.Events,
			"logged_events", res.LoggedEvents,
			"window_complete", strconv.FormatBool(res.WindowComplete),
			"items", res.Items,
			"pairs", res.Pairs,
			"trending", res.Trending,
			"index_removals", res.IndexRemovals,
			"swept", res.Swept,
		},
	}).Result()
	if err != nil {
		return "", fmt.Errorf("forget: writing audit record: %w", err)
	}
	return id, nil
}

// sharers returns up to max users (other than user) in the recent-user
// indexes of items.
func (s *Store) sharers(ctx context.Context, user string, items []string, max int) ([]string, error) {
	got, err := s.ItemUsers(ctx, items, 200)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, it := range items {
		for _, u := range got[it] {
			if u != user {
				set[u] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Strings(out)
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// sweepItemIndexes removes user from every item recent-user index, scanning
// every master of a Cluster.
func (s *Store) sweepItemIndexes(ctx context.Context, user string) (scanned, removed int, err error) {
	pattern := s.keys.Prefix + "{i:*}:u"
	one := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			pipe := c.Pipeline()
			cmds := make([]*redis.IntCmd, len(batch))
			for i, k := range batch {
				cmds[i] = pipe.ZRem(ctx, k, user)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			for _, c := range cmds {
				removed += int(c.Val())
			}
			scanned += len(batch)
			batch = batch[:0]
			return nil
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) >= 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		var mu = make(chan struct{}, 1)
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu <- struct{}{} // the counters are shared: one master at a time
			defer func() { <-mu }()
			return one(ctx, n)
		})
	case *redis.Client:
		err = one(ctx, c)
	default:
		err = fmt.Errorf("unsupported client %T", s.rdb)
	}
	return scanned, removed, err
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// wait waits d (nothing when d <= 0) or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	if !retry.Sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}
